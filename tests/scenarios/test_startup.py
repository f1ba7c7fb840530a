"""`crate-mirror serve` when it cannot start: one clear line, at once, and no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import REPO
from tests.mirror_process import free_port

START_FAILURE_SECONDS = 10.0  # well below a round of upstream retries (connect timeout 10 s)


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The upstream is a port nobody listens on: a mirror that got as far as contacting it
    # would spend its retries there before failing.
    dead_upstream = f"http://127.0.0.1:{free_port()}/"
    return subprocess.run(
        [sys.executable, "-m", "mirror", "serve", "--cache-dir", str(tmp_path / "cache"),
         "--upstream", dead_upstream, *args],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_busy_port_is_one_clear_line_before_serving(tmp_path: Path, workers: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as other:
        port = other.getsockname()[1]
        started = time.monotonic()
        result = _serve(tmp_path, "--host", "127.0.0.1", "--port", str(port), "--workers", workers)
        took = time.monotonic() - started
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in result.stderr
    assert "serving on" not in result.stderr  # never claimed to serve
    assert "Traceback" not in result.stderr
    assert took < START_FAILURE_SECONDS


def test_a_strict_policy_without_its_advisory_db_says_how_to_fetch_it(tmp_path: Path) -> None:
    """The shipped strict policy, with its database path moved to where there is none."""
    policies = tmp_path / "policies"
    policies.mkdir()
    for name in ("popular-crates.txt", "capabilities.lock.yaml"):
        (policies / name).write_bytes((REPO / "policies" / name).read_bytes())
    strict = (REPO / "policies" / "strict.yaml").read_text()
    assert "db: /var/lib/crate-mirror/advisory-db" in strict
    policy = policies / "strict.yaml"
    policy.write_text(strict.replace("/var/lib/crate-mirror/advisory-db", str(tmp_path / "db")))
    result = _serve(tmp_path, "--port", str(free_port()), "--policy", str(policy))
    assert result.returncode == 2
    assert f"does not exist: {tmp_path / 'db'}" in result.stderr
    assert f"crate-mirror advisories update --policy {policy}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_cache_it_cannot_create_is_one_clear_line_and_never_serving(
    tmp_path: Path, workers: str
) -> None:
    """It printed "serving on", then died with a StorageError traceback."""
    taken = tmp_path / "a-file"
    taken.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "mirror", "serve", "--cache-dir", str(taken / "cache"),
         "--offline", "--port", str(free_port()), "--workers", workers],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "crate-mirror: cannot start: " in result.stderr and "cache" in result.stderr
    assert "Traceback" not in result.stderr
    if workers == "1":
        assert "serving on" not in result.stderr  # said only once requests are answered
