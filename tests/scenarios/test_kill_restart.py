"""kill -9 at random points of a fetch-heavy run: the cache stays verified, the audit chain holds.

After every kill: the store holds only complete files that hash to their names (and are real
index cksums), and the audit chain verifies or reports exactly a torn last line. After the
restart the writer recovers a torn line (moves it aside, records `audit.recovered`) and the
whole chain verifies again, with the recovery listed, not silently dropped.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.soak import MIRROR_ENV, SoakFaults, check_cache, known_cksums, run_soak
from mirror.audit import verify_chain
from mirror.audit.files import chain_files
from tests import REPO
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess, free_port

pytestmark = pytest.mark.slow

KILLS = 4
SEED = 11


def _audit_verify_cli(audit_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mirror", "audit", "verify", "--dir", str(audit_dir)],
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
    )  # fmt: skip


def _traffic(url: str, registry: Registry, seed: int, stop: threading.Event) -> None:
    """Download-heavy load until the server dies; errors are expected and ignored here."""
    while not stop.is_set():
        try:
            asyncio.run(run_soak(url, registry, requests=200, concurrency=16, seed=seed,
                                 download_share=0.8))  # fmt: skip
        except Exception:
            time.sleep(0.05)


def test_kill_9_at_random_points_then_restart(
    debian_registry_template: Registry, tmp_path: Path
) -> None:
    registry = debian_registry_template.copy_to(tmp_path / "registry")
    cache = tmp_path / "cache"
    audit_dir = cache / "audit"
    cksums = known_cksums(registry)
    rng = random.Random(SEED)
    port = free_port()
    seen_truncated = 0
    with FakeUpstream(registry).in_thread() as upstream:
        # Slow, sometimes stalling upstream: kills land mid-download, not between requests.
        upstream.faults = SoakFaults(SEED, rate=0.1)
        upstream.faults.add("delay", match="/download", seconds=0.05)
        for round_no in range(KILLS):
            mirror = MirrorProcess(cache, upstream=upstream.url + "/", env=MIRROR_ENV, port=port)
            mirror.start()
            stop = threading.Event()
            client = threading.Thread(
                target=_traffic, args=(mirror.url, registry, SEED + round_no, stop), daemon=True
            )
            client.start()
            time.sleep(rng.uniform(0.3, 2.0))
            mirror.kill()
            stop.set()
            client.join(60)

            assert check_cache(cache, cksums) == [], f"after kill {round_no + 1}"
            result = verify_chain(audit_dir)
            if result.broken is not None:
                # The only damage a crash may do is a torn last line, which must be reported.
                assert result.broken.kind == "truncated", str(result.broken)
                seen_truncated += 1
            if round_no == KILLS - 1:
                # Make sure the recovery path runs at least once: tear the last line by hand,
                # exactly what a kill during a write() leaves behind.
                _, last = chain_files(audit_dir)[-1]
                with open(last, "ab") as f:
                    f.write(b'{"action":"allow","crate":"half-writ')
                torn = _audit_verify_cli(audit_dir)
                assert torn.returncode == 1
                assert "truncated" in torn.stdout + torn.stderr

        # Restart, serve a little, stop cleanly: the writer recovered every torn tail.
        final = MirrorProcess(cache, upstream=upstream.url + "/", env=MIRROR_ENV, port=port)
        final.start()
        try:
            upstream.faults.clear()
            after = asyncio.run(run_soak(final.url, registry, requests=100, seed=99))
        finally:
            final.stop()
    assert after.ok() and after.served == 100, after.summary()
    assert check_cache(cache, cksums) == []
    result = verify_chain(audit_dir)
    assert result.ok, str(result.broken)
    assert result.events > 100
    assert len(result.recoveries) >= 1  # the torn line was recorded, not silently ignored
    cli = _audit_verify_cli(audit_dir)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    print(f"\nkill/restart: {KILLS} kills, {seen_truncated} torn tails seen after a kill, "
          f"{len(result.recoveries)} recoveries, {result.events} audit events")  # fmt: skip
