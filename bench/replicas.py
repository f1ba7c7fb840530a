"""Replicas: a mirror on the object store beside one on the filesystem, same run, side by side.

    python -m bench.replicas [--quick] [--out DIR]

1. **Warm-hit rate** (wrk, one worker each): every index file and every crate of at most
   64 KiB, in rotation, through a mirror whose store is `S3Store` (a moto bucket behind its
   local cache) and one whose store is the plain `FilesystemStore`. Both are warmed first (one
   request per URL), then measured alternately (filesystem, S3, filesystem, S3, ...); medians
   and their ratio. Target (issue 14): S3 at least 0.9x the filesystem's rate.
2. **Cold `cargo fetch`** of the benchmark project (`BENCH_PROJECT_DEPS`, 113 crates): an
   empty cache each run, and for the S3 side an empty bucket prefix each run (so every crate
   is fetched upstream and uploaded); alternated; medians and their ratio. Target: at most
   1.2x the filesystem's time.
3. **A fresh replica on a warm bucket** (for information): `cargo fetch` through a replica
   with an empty local cache, reading every crate through from the bucket another replica
   filled, against the cold filesystem mirror.

The machine is shared: the load average is recorded before and after every measured run, and
a warning is printed when it is above 1 at the start; re-run on a quiet machine for numbers to
quote. Results: DIR/replicas-<timestamp>.json and .md (default bench/results/).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.cold_fetch import compare_fetches, lock_project, timed_fetch
from bench.load import Target, fetch_all, raise_nofile_limit, run_wrk
from bench.report import machine_info
from bench.run import SMALL_CRATE_MAX, fixture_upstream
from mirror.index import index_path
from tests.fixtures.object_store import ACCESS_KEY, SECRET_KEY, MotoServer, TestBucket
from tests.fixtures.registry import Registry, build_registry
from tests.mirror_process import MirrorProcess

REPO = Path(__file__).resolve().parent.parent
INDEX_TTL = 86400  # seconds: warm runs never revalidate upstream
WARM_HIT_GOAL = 0.9  # S3-backed rate / filesystem rate, at least
COLD_FETCH_GOAL = 1.2  # S3-backed seconds / filesystem seconds, at most


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.replicas",
        description="Warm-hit rate and cold cargo fetch of a mirror on an S3 bucket (moto) "
        "against one on the filesystem, side by side; prints a Markdown report and writes it "
        "with the raw numbers as JSON.",
    )
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s (about 2 min)")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "bench" / "results",
        help="directory for replicas-<timestamp>.json and .md (default bench/results)",
    )
    args = parser.parse_args(argv)
    raise_nofile_limit()
    load_before = os.getloadavg()
    if load_before[0] > 1.0:
        print(
            f"bench: warning: load average {load_before[0]:.1f} before starting; other work "
            "on this machine skews the numbers",
            file=sys.stderr,
        )
    rounds, seconds = (2, 3.0) if args.quick else (5, 10.0)
    with tempfile.TemporaryDirectory(prefix="crate-mirror-replicas-") as tmp:
        results = ReplicaBench(Path(tmp), rounds, seconds).run()
    results["machine"]["loadavg_before"] = [round(x, 2) for x in load_before]
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    markdown = render(results)
    (args.out / f"replicas-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"replicas-{stamp}.md").write_text(markdown)
    print(markdown)
    return 0


def _progress(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


class ReplicaBench:
    def __init__(self, tmp: Path, rounds: int, seconds: float) -> None:
        self.tmp = tmp
        self.rounds = rounds
        self.seconds = seconds
        self.upstream_url = ""
        self.bucket: TestBucket | None = None
        self.moto_pid = 0

    def run(self) -> dict[str, Any]:
        registry = build_registry(self.tmp / "registry")
        results: dict[str, Any] = {
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "settings": {"rounds": self.rounds, "wrk_seconds": self.seconds, "workers": 1},
        }
        moto = MotoServer(self.tmp / "moto.log").start()
        assert moto.pid is not None
        self.moto_pid = moto.pid
        try:
            self.bucket = TestBucket.create(moto)
            with fixture_upstream(registry) as upstream_url:
                self.upstream_url = upstream_url
                lockfile, crates = lock_project(self.tmp / "lock", upstream_url)
                _progress(f"locked {crates} crates")
                results["warm_hits"] = self._warm_hits(registry)
                results["cold_fetch"] = self._cold_fetch(lockfile, crates)
                results["replica_on_warm_bucket"] = self._replica_on_warm_bucket(lockfile)
        finally:
            moto.stop()
        results["targets"] = [
            {
                "target": f"warm-hit rate on S3 >= {WARM_HIT_GOAL}x filesystem",
                "measured": results["warm_hits"]["ratio"],
                "met": results["warm_hits"]["ratio"] >= WARM_HIT_GOAL,
            },
            {
                "target": f"cold fetch through S3 <= {COLD_FETCH_GOAL}x filesystem",
                "measured": results["cold_fetch"]["ratio"],
                "met": results["cold_fetch"]["ratio"] <= COLD_FETCH_GOAL,
            },
        ]
        return results

    # -- servers ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _mirror(self, cache: Path, prefix: str | None) -> Iterator[MirrorProcess]:
        """A mirror on the filesystem (prefix None) or on the bucket under `prefix`."""
        env = {"CRATE_MIRROR_INDEX_TTL": str(INDEX_TTL), "CRATE_MIRROR_LOG_LEVEL": "warning"}
        if prefix is not None:
            assert self.bucket is not None
            env |= {
                "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "CRATE_MIRROR_S3_BUCKET": self.bucket.name,
                "CRATE_MIRROR_S3_ENDPOINT": self.bucket.endpoint,
                "CRATE_MIRROR_S3_PREFIX": prefix,
                "CRATE_MIRROR_REPLICA_ID": "bench",
            }
        mirror = MirrorProcess(cache, upstream=self.upstream_url + "/", env=env).start()
        try:
            yield mirror
        finally:
            mirror.stop()

    def _fresh(self, label: str) -> Path:
        return self.tmp / f"{label}-{uuid.uuid4().hex[:8]}" / "cache"

    # -- 1. warm hits -------------------------------------------------------------------------

    def _warm_hits(self, registry: Registry) -> dict[str, Any]:
        paths = [f"/index/{index_path(n)}" for n in registry.names()]
        paths += [
            f"/api/v1/crates/{c.name}/{c.version}/download"
            for c in registry.crates
            if registry.crate_file(c.name, c.version).stat().st_size <= SMALL_CRATE_MAX
        ]
        targets = [Target(p) for p in paths]
        sides: dict[str, list[dict[str, Any]]] = {"filesystem": [], "s3": []}
        with (
            self._mirror(self._fresh("warm-fs"), None) as fs,
            self._mirror(self._fresh("warm-s3"), "warm-hits") as s3,
        ):
            for mirror in (fs, s3):
                fetch_all(mirror.url, paths)  # warm: one request per URL
                fetch_all(mirror.url, paths)  # and the front door's prepared answers
            for i in range(self.rounds):
                for label, mirror in (("filesystem", fs), ("s3", s3)):
                    before = _load()
                    result = run_wrk(mirror.url, targets, connections=64, duration=self.seconds)
                    row = {**result.as_dict(), "loadavg_before": before, "loadavg_after": _load()}
                    sides[label].append(row)
                    _progress(f"warm hits {label} run {i + 1}: {result.requests_per_s:.0f}/s")
        fs_rate = statistics.median(r["requests_per_s"] for r in sides["filesystem"])
        s3_rate = statistics.median(r["requests_per_s"] for r in sides["s3"])
        return {
            "paths": len(paths),
            "filesystem": sides["filesystem"],
            "s3": sides["s3"],
            "filesystem_median_rps": fs_rate,
            "s3_median_rps": s3_rate,
            "ratio": round(s3_rate / fs_rate, 3) if fs_rate else 0.0,
        }

    # -- 2. cold fetch ------------------------------------------------------------------------

    def _cold_fetch(self, lockfile: Path, crates: int) -> dict[str, Any]:
        runs: list[dict[str, Any]] = []

        def side(prefix: Callable[[], str | None], label: str) -> Any:
            @contextlib.contextmanager
            def cold() -> Iterator[str]:
                before = _load()
                with self._mirror(self._fresh(label), prefix()) as mirror:
                    assert mirror.proc is not None
                    mirror_cpu, store_cpu = tree_cpu(mirror.proc.pid), tree_cpu(self.moto_pid)
                    yield mirror.index_url
                    time.sleep(1.0)  # the background uploads of this run, on its bill
                    runs.append(
                        {
                            "side": label,
                            "mirror_cpu_s": round(tree_cpu(mirror.proc.pid) - mirror_cpu, 2),
                            "moto_cpu_s": round(tree_cpu(self.moto_pid) - store_cpu, 2),
                            "loadavg_before": before,
                            "loadavg_after": _load(),
                        }
                    )

            return cold

        comparison = compare_fetches(
            self.tmp / "fetch",
            lockfile,
            crates,
            (
                ("S3 (empty cache, empty bucket)", side(lambda: f"cold-{uuid.uuid4().hex}", "s3")),
                ("filesystem (empty cache)", side(lambda: None, "fs")),
            ),
            self.rounds,
            _progress,
            reference_is_mirror=True,
        )
        return {**comparison.as_dict(), "runs": runs}

    # -- 3. a fresh replica on a warm bucket ---------------------------------------------------

    def _replica_on_warm_bucket(self, lockfile: Path) -> dict[str, Any]:
        prefix = f"shared-{uuid.uuid4().hex}"
        with self._mirror(self._fresh("filler"), prefix) as filler:
            timed_fetch(self.tmp / "fetch" / "fill", filler.index_url, lockfile)
        seconds = []
        for i in range(self.rounds):
            with self._mirror(self._fresh("replica"), prefix) as replica:
                seconds.append(
                    timed_fetch(self.tmp / "fetch" / f"r{i}", replica.index_url, lockfile)
                )
            _progress(f"fresh replica on a warm bucket run {i + 1}: {seconds[-1]:.2f} s")
        return {
            "seconds": [round(s, 3) for s in seconds],
            "median_s": round(statistics.median(seconds), 3),
        }


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def render(results: dict[str, Any]) -> str:
    warm, cold = results["warm_hits"], results["cold_fetch"]
    machine = results["machine"]
    lines = [
        f"# Replicas on an object store ({results['timestamp']})",
        "",
        f"load average before {machine.get('loadavg_before')}, after "
        f"{machine.get('loadavg_after')} (shared machine: re-run on a quiet one)",
        "",
        "| measurement | filesystem | S3 (moto) | ratio | target | met |",
        "|---|---|---|---|---|---|",
        f"| warm hits, req/s (median of {len(warm['s3'])}, {warm['paths']} URLs) | "
        f"{warm['filesystem_median_rps']:.0f} | {warm['s3_median_rps']:.0f} | {warm['ratio']} | "
        f">= {WARM_HIT_GOAL} | {results['targets'][0]['met']} |",
        f"| cold `cargo fetch`, s ({cold['locked_crates']} crates, median) | "
        f"{cold['b_median_s']} | {cold['a_median_s']} | {cold['ratio']} | "
        f"<= {COLD_FETCH_GOAL} | {results['targets'][1]['met']} |",
        f"| fresh replica on a warm bucket, s (median) | | "
        f"{results['replica_on_warm_bucket']['median_s']} | | | |",
        "",
        "CPU per cold fetch (s): "
        + ", ".join(
            f"{r['side'].split()[0]} mirror {r['mirror_cpu_s']} moto {r['moto_cpu_s']}"
            for r in cold["runs"]
        ),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
