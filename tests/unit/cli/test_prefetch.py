"""`crate-mirror prefetch`: lockfiles and explicit crates, through the verified path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mirror.cli import main
from mirror.store import FilesystemStore
from tests import REPO
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream

LOCKFILE = """\
version = 3

[[package]]
name = "app"
version = "0.1.0"
dependencies = ["itoa", "ryu"]

[[package]]
name = "itoa"
version = "{itoa}"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{itoa_sum}"

[[package]]
name = "ryu"
version = "{ryu}"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "local-thing"
version = "0.1.0"
"""


def lockfile(registry: Registry, itoa_sum: str | None = None) -> str:
    itoa = registry.versions("itoa")[0]
    real = hashlib.sha256(registry.crate_bytes("itoa", itoa)).hexdigest()
    return LOCKFILE.format(itoa=itoa, ryu=registry.versions("ryu")[0], itoa_sum=itoa_sum or real)


def test_prefetch_lockfile_and_crates_then_rerun(
    tmp_path: Path, small_registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / "Cargo.lock"
    lock.write_text(lockfile(small_registry))
    cache = tmp_path / "cache"
    serde = f"serde@{small_registry.versions('serde')[0]}"
    with FakeUpstream(small_registry).in_thread() as upstream:
        args = [
            "prefetch",
            "--lockfile",
            str(lock),
            "--crate",
            serde,
            "--no-progress",
            "--cache-dir",
            str(cache),
            "--upstream",
            upstream.url + "/",
        ]
        assert main(args) == 0
        assert "fetched 3, already cached 0, held for review 0, failed 0" in capsys.readouterr().out
        assert len(list(FilesystemStore(cache).iter_crates())) == 3
        before = upstream.requests.count("download")
        assert main(args) == 0  # safe to re-run: nothing is downloaded twice
        assert "fetched 0, already cached 3, held for review 0, failed 0" in capsys.readouterr().out
        assert upstream.requests.count("download") == before


def test_prefetch_reports_failures_and_exits_nonzero(
    tmp_path: Path, small_registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    version = small_registry.versions("itoa")[0]
    with FakeUpstream(small_registry).in_thread() as upstream:
        upstream.faults.add("flip", match="/itoa/")
        code = main(
            [
                "prefetch",
                "--crate",
                f"itoa@{version}",
                "--crate",
                "itoa@99.0.0",
                "--no-progress",
                "--cache-dir",
                str(cache),
                "--upstream",
                upstream.url + "/",
            ]
        )
    out = capsys.readouterr().out
    assert code == 1
    assert "failed 2" in out
    assert f"FAILED itoa@{version}: checksum mismatch" in out
    assert "FAILED itoa@99.0.0: itoa@99.0.0 is not in the upstream index" in out
    assert list(FilesystemStore(cache).iter_crates()) == []


def test_prefetch_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prefetch", "--crate", "not a crate", "--cache-dir", str(tmp_path)]) == 2
    assert "expected name@version" in capsys.readouterr().err
    assert main(["prefetch", "--cache-dir", str(tmp_path)]) == 2
    empty = tmp_path / "Cargo.lock"  # only a path package: "give --lockfile" was wrong
    empty.write_text('version = 3\n[[package]]\nname = "app"\nversion = "0.1.0"\n')
    assert main(["prefetch", "--lockfile", str(empty), "--cache-dir", str(tmp_path)]) == 2
    assert f"{empty} lists no crates.io packages" in capsys.readouterr().err
    for concurrency in ("0", "-1"):  # waited forever; a traceback
        with pytest.raises(SystemExit) as info:
            main(["prefetch", "--crate", "itoa@1.0.0", "--concurrency", concurrency])
        assert info.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_prefetch_records_every_first_sighting_before_it_returns(
    tmp_path: Path,
    small_registry: Registry,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """First sightings are answered before their scan (in the background); a batch command
    waits for all of their records, not only the few seconds a server's shutdown allows
    (here none), so the cache it leaves has every one."""
    monkeypatch.setattr("mirror.serving.open.SETTLE_TIMEOUT", 0.0)
    policy = tmp_path / "policies" / "policy.yaml"
    policy.parent.mkdir()
    policy.write_text("version: 2\nrules:\n  capabilities: {mode: warn, first_seen: trust}\n")
    cache = tmp_path / "cache"
    names = ("itoa", "ryu", "serde")
    crates = [f"--crate={name}@{small_registry.versions(name)[0]}" for name in names]
    with FakeUpstream(small_registry).in_thread() as upstream:
        args = ["prefetch", *crates, "--no-progress", "--cache-dir", str(cache)]
        args += ["--upstream", upstream.url + "/", "--policy", str(policy)]
        assert main(args) == 0
    assert "fetched 3" in capsys.readouterr().out
    recorded = (cache / "state" / "capabilities.tofu.yaml").read_text()
    assert all(f"{name}:" in recorded for name in names), recorded


def test_a_lockfile_checksum_the_index_does_not_list_is_a_failure(
    tmp_path: Path, small_registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prefetch said "failed 0" for a Cargo.lock pinning other bytes, which cargo refuses."""
    lock = tmp_path / "Cargo.lock"
    lock.write_text(lockfile(small_registry, itoa_sum="0" * 64))
    with FakeUpstream(small_registry).in_thread() as upstream:
        code = main(["prefetch", "--lockfile", str(lock), "--no-progress", "--cache-dir",
                     str(tmp_path / "cache"), "--upstream", upstream.url + "/"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1 and "failed 1" in out
    assert "the lockfile's checksum 0000000000000000... is not the one the index lists" in out


@pytest.mark.parametrize("command", ["prefetch", "explain"])
def test_a_cache_that_cannot_be_opened_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """`--cache-dir` inside a regular file (or on a read-only mount) was a traceback."""
    taken = tmp_path / "a-file"
    taken.write_text("")
    argv = {
        "prefetch": ["prefetch", "--crate", "itoa@1.0.0", "--upstream", "http://127.0.0.1:9/",
                     "--no-progress"],
        "explain": ["explain", "itoa", "--policy", str(REPO / "policies" / "default.yaml")],
    }[command]  # fmt: skip
    assert main([*argv, "--cache-dir", str(taken / "cache")]) == 1
    err = capsys.readouterr().err
    assert f"crate-mirror {command}: cannot create cache directory" in err
