"""`serve --workers 2`: an approval and a revoke apply in every worker for the very next
request (they used to wait for a ~2 s file poll), and each refused request is one line in the
server's own log (it logged no blocks at all)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

REQUESTS = 24  # fresh connections each; SO_REUSEPORT spreads them over both workers


def status_of(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read()
            return resp.status, ""
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mirror", *args], capture_output=True, text=True, check=False
    )


def test_approve_and_revoke_apply_at_once_in_every_worker(
    tmp_path: Path, small_registry: Registry
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    policy = policies / "policy.yaml"
    policy.write_text(
        "version: 2\nrules:\n  capabilities: {mode: block, first_seen: require-approval}\n"
    )
    lock = policies / "capabilities.lock.yaml"
    cache = tmp_path / "cache"
    version = small_registry.versions("itoa")[-1]
    with FakeUpstream(small_registry).in_thread() as upstream:
        mirror = MirrorProcess(
            cache, upstream=upstream.url + "/", policy=policy, extra=["--workers", "2"]
        ).start()
        try:
            url = f"{mirror.url}/api/v1/crates/itoa/{version}/download"
            code, body = status_of(url)
            assert code == 403
            request_id = re.search(r"Request (\w+)\.", body)
            assert request_id is not None, body

            flags = ["--lock", str(lock), "--cache-dir", str(cache)]
            approved = cli("approve", f"itoa@{version}", "--reason", "reviewed", *flags)
            assert approved.returncode == 0, approved.stderr
            assert [status_of(url)[0] for _ in range(REQUESTS)] == [200] * REQUESTS

            revoked = cli("revoke", "itoa", "--reason", "changed our mind", *flags)
            assert revoked.returncode == 0, revoked.stderr
            assert [status_of(url)[0] for _ in range(REQUESTS)] == [403] * REQUESTS
        finally:
            mirror.stop()
        lines = [
            json.loads(line)
            for line in mirror.log_path.read_text().splitlines()
            if line.startswith("{") and request_id.group(1) in line
        ]
        assert [(e["event"], e["level"]) for e in lines] == [("request.blocked", "warning")]
        assert lines[0]["rule"] == "capabilities"
