"""Policy reload: a valid change takes effect without restart; an invalid one keeps the old."""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from mirror.index import index_path
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

POLICY = """\
version: 2
rules:
  deny: {mode: block}
deny:
  - crate: itoa
    reason: "testing reloads"
"""


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _eventually(check: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_invalid_policy_is_rejected_and_old_one_kept(
    tmp_path: Path, small_registry: Registry
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    with FakeUpstream(small_registry).in_thread() as upstream:
        mirror = MirrorProcess(tmp_path / "cache", upstream=upstream.url + "/", policy=policy)
        mirror.start()
        try:
            url = mirror.url + "/index/" + index_path("itoa")
            assert _status(url) == 403

            policy.write_text(POLICY.replace("deny: {mode: block}", "deny: {mode: sometimes}"))
            mirror.signal(signal.SIGHUP)
            assert _eventually(lambda: "policy.reload_rejected" in mirror.log())
            assert "rules.deny.mode" in mirror.log()  # the log says where the problem is
            assert _status(url) == 403  # the old policy still applies

            policy.write_text(POLICY.replace("mode: block", "mode: off"))  # no signal: file watch
            assert _eventually(lambda: _status(url) == 200)
        finally:
            mirror.stop()


def test_invalid_policy_refuses_to_start(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 2\nrules:\n  riskk: {mode: block}\n")
    mirror = MirrorProcess(tmp_path / "cache", offline=True, policy=policy)
    try:
        mirror.start()
    except RuntimeError as e:
        assert "rules.riskk" in str(e)
        assert f"{policy}:3" in str(e)
    else:
        mirror.stop()
        raise AssertionError("the mirror started with an invalid policy")


def test_invalid_capability_lock_refuses_to_start(tmp_path: Path) -> None:
    """The lock is part of the policy: a typo in it must stop the server, with the line."""
    (tmp_path / "policy.yaml").write_text("version: 2\nrules:\n  capabilities: {mode: block}\n")
    (tmp_path / "capabilities.lock.yaml").write_text(
        "version: 1\ncrates:\n  serde:\n    - capabilities: [teleport]\n"
        "      approved_by: me\n      approved_at: '2026-01-01T00:00:00Z'\n      reason: x\n"
    )
    mirror = MirrorProcess(tmp_path / "cache", offline=True, policy=tmp_path / "policy.yaml")
    try:
        mirror.start()
    except RuntimeError as e:
        assert "capabilities.lock.yaml:4: crates.serde[0].capabilities" in str(e)
        assert "unknown capability 'teleport'" in str(e)
    else:
        mirror.stop()
        raise AssertionError("the mirror started with an invalid capability lock")
