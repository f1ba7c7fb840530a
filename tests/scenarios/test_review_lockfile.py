"""A 145-crate lockfile, every crate first seen under `first_seen: require-approval`, is
reviewed and approved in two actions: `prefetch --lockfile` lists all it needs in one pass
(cargo stops at the first 403: it took 8 `cargo fetch` rounds for 7 crates), and the one
command it prints approves all of it with one reason."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mirror.cli import main
from mirror.sources.capability_lockfile import load_lock
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream

CRATES = 145
POLICY = "version: 2\nrules:\n  capabilities: {mode: block, first_seen: require-approval}\n"


def lockfile(registry: Registry, names: list[str]) -> str:
    out = ["version = 3"]
    for name in names:
        out += ["", "[[package]]", f'name = "{name}"', f'version = "{registry.versions(name)[-1]}"',
                'source = "registry+https://github.com/rust-lang/crates.io-index"']  # fmt: skip
    return "\n".join(out) + "\n"


def test_a_145_crate_lockfile_is_approved_in_two_actions(
    tmp_path: Path,
    debian_registry: Registry,
    debian_upstream: FakeUpstream,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = sorted(debian_registry.names())[:CRATES]
    assert len(names) == CRATES
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "policy.yaml").write_text(POLICY)
    lock_file = tmp_path / "Cargo.lock"
    lock_file.write_text(lockfile(debian_registry, names))
    cache = tmp_path / "cache"
    prefetch = ["prefetch", "--lockfile", str(lock_file), "--no-progress", "--cache-dir",
                str(cache), "--upstream", debian_upstream.url + "/",
                "--policy", str(policies / "policy.yaml")]  # fmt: skip

    # Action 1: everything the lockfile needs reviewed, in one pass.
    assert main(prefetch) == 1
    out = capsys.readouterr().out
    held = re.findall(r"^  (\S+@\S+)  \(capabilities\)$", out, re.MULTILINE)
    assert len(held) > 100  # most crates have some capability (unsafe, build script, ...)
    assert "FAILED" not in out
    command = next(line.strip() for line in out.splitlines() if "approve --lockfile" in line)

    # Action 2: the printed command, run as printed (from another directory), one reason.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    argv = shlex.split(command.replace('"..."', '"new service, reviewed in SEC-7"'))
    assert main(argv[1:]) == 0
    assert f"{len(held)} approved, 0 not approvable" in capsys.readouterr().out

    lock = load_lock(policies / "capabilities.lock.yaml")
    assert all(lock.approvals(ref.split("@")[0]) for ref in held)
    assert main(prefetch) == 0  # every crate now passes
    assert "held for review 0, failed 0" in capsys.readouterr().out
