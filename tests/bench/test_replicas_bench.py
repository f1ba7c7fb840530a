"""bench/replicas.py's own parts: the CPU accounting it reports beside each cold fetch, and
the report table with its targets."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.replicas import COLD_FETCH_GOAL, WARM_HIT_GOAL, render, tree_cpu


def test_tree_cpu_counts_a_process_and_its_children() -> None:
    """A child that burns CPU is on its parent's bill."""
    before = tree_cpu(os.getpid())
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.4: pass\ntime.sleep(2)",
        ]
    )
    try:
        time.sleep(1.2)
        assert tree_cpu(os.getpid()) - before >= 0.3
    finally:
        child.kill()
        child.wait()


def _results(warm_ratio: float, cold_ratio: float) -> dict[str, object]:
    return {
        "timestamp": "2026-11-27T18:00:00+00:00",
        "machine": {"loadavg_before": [0.2, 0.3, 0.4], "loadavg_after": [0.5, 0.4, 0.4]},
        "warm_hits": {
            "paths": 262,
            "s3": [{}] * 5,
            "filesystem_median_rps": 20000.0,
            "s3_median_rps": 20000.0 * warm_ratio,
            "ratio": warm_ratio,
        },
        "cold_fetch": {
            "locked_crates": 113,
            "a_median_s": 2.0 * cold_ratio,
            "b_median_s": 2.0,
            "ratio": cold_ratio,
            "runs": [{"side": "s3", "mirror_cpu_s": 1.1, "moto_cpu_s": 1.2}],
        },
        "replica_on_warm_bucket": {"median_s": 2.5},
        "targets": [
            {"met": warm_ratio >= WARM_HIT_GOAL},
            {"met": cold_ratio <= COLD_FETCH_GOAL},
        ],
    }


def test_the_report_shows_both_backends_targets_and_load() -> None:
    text = render(_results(0.95, 1.3))
    assert "| 20000 | 19000 | 0.95 | >= 0.9 | True |" in text
    assert "| 2.0 | 2.6 | 1.3 | <= 1.2 | False |" in text
    assert "load average before [0.2, 0.3, 0.4]" in text
    assert "s3 mirror 1.1 moto 1.2" in text
