"""Policy seen through real cargo: a typosquat is refused with a reason, an allow entry and a
reload let it through, and a denied range makes cargo pick the newest allowed version."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from mirror.audit import read_events, read_near_names
from tests.cargo_project import CargoProject
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

pytestmark = pytest.mark.e2e
POLICIES = Path(__file__).resolve().parents[2] / "policies"

POLICY = """\
version: 2
rules:
  risk: {{mode: block, protect_top: 3000, corpus: popular-crates.txt}}
  deny: {{mode: block}}
allow: {allow}
deny: {deny}
"""


def _write_policy(path: Path, allow: str = "[]", deny: str = "[]") -> None:
    path.write_text(POLICY.format(allow=allow, deny=deny))


def _wait_for(predicate: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.2)


def test_new_look_alike_quarantined_then_allowed_after_reload(
    tmp_path: Path, debian_registry: Registry
) -> None:
    debian_registry.add_crate("rustdecimal", "1.0.0", {"src/lib.rs": b"pub fn steal() {}\n"})
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    shutil.copy(POLICIES / "popular-crates.txt", policy_dir)
    policy = policy_dir / "policy.yaml"
    _write_policy(policy)
    cache = tmp_path / "cache"
    with FakeUpstream(debian_registry).in_thread() as upstream:
        mirror = MirrorProcess(cache, upstream=upstream.url + "/", policy=policy).start()
        try:
            project = CargoProject(tmp_path / "app", mirror.index_url, {"rustdecimal": "1"})
            result = project.generate_lockfile()
            assert result.returncode != 0
            # cargo prints the mirror's 403 body: the reason and the way out.
            # cargo prints the mirror's 403 body: the evidence, when it lifts, the way out.
            assert "`rustdecimal` is quarantined" in result.stderr
            assert "looks like `rust_decimal` (separators removed) +3" in result.stderr
            assert "Held until " in result.stderr and "add it to `allow`" in result.stderr
            # The mirror fetched and scanned the crate to judge it; cargo never got it.
            assert not list(project.cargo_home.glob("registry/cache/*/rustdecimal-*.crate"))

            _write_policy(policy, allow='[{crate: rustdecimal, reason: "reviewed in SEC-1"}]')
            mirror.signal(signal.SIGHUP)
            _wait_for(lambda: project.generate_lockfile().returncode == 0)
            assert project.lock_versions()["rustdecimal"] == ["1.0.0"]
        finally:
            mirror.stop()
    actions = [
        (e["action"], e["rule"])
        for e in read_events(cache / "audit")
        if e.get("crate") == "rustdecimal"
    ]
    assert ("quarantine", "risk") in actions
    assert ("allow", "allow") in actions
    feed = list(read_near_names(cache / "audit"))
    assert {f["crate"] for f in feed} == {"rustdecimal"}
    assert feed[0]["protected"] == "rust_decimal"


def test_denied_range_makes_cargo_pick_newest_allowed(
    tmp_path: Path, debian_registry: Registry
) -> None:
    debian_registry.add_crate("itoa", "1.0.90", {"src/lib.rs": b""})
    debian_registry.add_crate("itoa", "1.0.91", {"src/lib.rs": b""})
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    shutil.copy(POLICIES / "popular-crates.txt", policy_dir)
    policy = policy_dir / "policy.yaml"
    _write_policy(policy, deny='[{crate: "itoa@>=1.0.91", reason: "compromised release"}]')
    with FakeUpstream(debian_registry).in_thread() as upstream:
        mirror = MirrorProcess(tmp_path / "cache", upstream=upstream.url + "/", policy=policy)
        mirror.start()
        try:
            project = CargoProject(tmp_path / "app", mirror.index_url, {"itoa": "1"})
            result = project.generate_lockfile()
            assert result.returncode == 0, result.stderr
            assert project.lock_versions()["itoa"] == ["1.0.90"]
            # Asking for the denied version explicitly: cargo cannot even see it.
            pinned = CargoProject(tmp_path / "pinned", mirror.index_url, {"itoa": "=1.0.91"})
            result = pinned.generate_lockfile()
            assert result.returncode != 0
        finally:
            mirror.stop()
