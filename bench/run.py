"""The benchmark harness: the mirror side by side with nginx and a direct upstream.

    python -m bench.run [--quick] [--out DIR]

Starts the fixture upstream (a subprocess), the mirror (`python -m mirror serve`) and nginx
(serving the same bytes as static files), loads them with wrk, times real `cargo fetch` runs,
runs the policy micro-benchmarks that exist (bench/names_bench.py, scan_bench.py,
audit_bench.py), then prints a Markdown report and writes it, with the raw numbers as JSON, to
DIR/<timestamp>.md and .json. Nothing here passes or fails: targets are printed beside the
measurements. See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.cold_fetch import compare_fetches, lock_project, timed_fetch
from bench.load import (
    LoadResult,
    Target,
    WrkMissing,
    check_same_bytes,
    conditional_targets,
    fetch_all,
    raise_nofile_limit,
    require_tools,
    run_wrk,
)
from bench.micro import run_micro_benchmarks
from bench.nginx import NginxServer
from bench.report import machine_info, render_markdown, summarize_targets
from bench.rss import PeakMemory, process_tree, wait_for_workers
from mirror.index import index_path
from tests.fixtures.registry import Registry, build_registry
from tests.mirror_process import MirrorProcess, free_port

REPO = Path(__file__).resolve().parent.parent
BLOB_CRATE = ("bench-blob", "1.0.0")
BLOB_BYTES = 5 * 2**20  # incompressible payload of the "5 MB crate"
SMALL_CRATE_MAX = 64 * 1024  # bytes; crates at most this big make the "small crate" rotation
INDEX_TTL = 86400  # seconds; the warm runs must never revalidate with upstream
# What a deployment runs (the README's first command): the cold fetch is measured with it too.
DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"
WRK_THREADS = 1  # wrk shares the 2 cores with the server under test; one thread is enough
# The fixture upstream answers in well under a millisecond, so the cold fetch above is the
# mirror's worst case. crates.io is tens of milliseconds away: measured too, for information.
DISTANT_LATENCY = 0.02  # seconds the distant upstream waits before every answer


@dataclass(frozen=True)
class Plan:
    workers: tuple[int, ...]  # mirror worker counts (nginx worker_processes is set equal)
    duration: float  # seconds per measured wrk run
    warmup: float  # seconds of discarded wrk load before each measured run
    connections: int  # for the throughput runs
    rss_connections: int  # for the peak-memory and p99 runs
    fetch_rounds: int  # alternating pairs of cargo fetches
    micro_quick: bool
    p99_runs: int = 1  # runs at rss_connections (issue 16: p99 in each of 3 runs)

    @classmethod
    def of(cls, quick: bool) -> Plan:
        if quick:
            return cls((1,), 3.0, 1.0, 64, 1000, 2, True, 1)
        return cls((1, 2), 10.0, 2.0, 64, 1000, 5, False, 3)


@dataclass(frozen=True)
class Scenario:
    name: str
    describe: str
    conditional: bool  # send each server's own ETag as If-None-Match (expect 304s)
    paths: tuple[str, ...]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark the mirror against nginx (static files) and a direct upstream; "
        "prints a Markdown report and writes it with the raw numbers as JSON.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short runs, workers=1 only, two fetch rounds (about 2 minutes)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "bench" / "results",
        help="directory for <timestamp>.json and .md (default bench/results)",
    )
    parser.add_argument(
        "--skip-micro", action="store_true", help="do not run the policy micro-benchmarks"
    )
    parser.add_argument(
        "--only",
        choices=("fetch", "load"),
        help="run only the cargo fetch comparisons, or only the wrk load runs",
    )
    parser.add_argument(
        "--fetch-rounds", type=int, help="alternating rounds per fetch comparison (default 5)"
    )
    parser.add_argument(
        "--p99-runs", type=int, help="runs at 1,000 connections per worker count (default 3)"
    )
    parser.add_argument(
        "--fetch-dir",
        type=Path,
        help="where cargo's projects and CARGO_HOME go (default: the run's temporary "
        "directory). A tmpfs such as /dev/shm keeps cargo's own unpacking of ~100 crates, "
        "and the page-cache writeback it leaves to the next round, out of the timings",
    )
    args = parser.parse_args(argv)
    try:
        require_tools()
    except WrkMissing as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    raise_nofile_limit()  # inherited by the mirror, nginx and wrk: 1,000 connections need fds
    plan = Plan.of(args.quick)
    if args.fetch_rounds is not None:
        plan = dataclasses.replace(plan, fetch_rounds=args.fetch_rounds)
    if args.p99_runs is not None:
        plan = dataclasses.replace(plan, p99_runs=args.p99_runs)
    load_before = os.getloadavg()
    if load_before[0] > 1.0:
        print(
            f"bench: warning: load average {load_before[0]:.1f} before starting; other work "
            "on this machine will skew the numbers",
            file=sys.stderr,
        )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="crate-mirror-bench-") as tmp:
        harness = Harness(Path(tmp), plan, args.only, args.fetch_dir)
        results = harness.run(skip_micro=args.skip_micro or args.only is not None)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["machine"]["loadavg_before"] = [round(x, 2) for x in load_before]
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(results)
    (args.out / f"{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{stamp}.md").write_text(markdown)
    print(markdown)
    print(f"written: {args.out / stamp}.json and .md", file=sys.stderr)
    return 0


class Harness:
    def __init__(
        self, tmp: Path, plan: Plan, only: str | None = None, fetch_dir: Path | None = None
    ) -> None:
        self.tmp = tmp
        self.plan = plan
        self.only = only  # "fetch" or "load": run just that part
        self.fetch_dir = (
            Path(tempfile.mkdtemp(prefix="crate-mirror-bench-fetch-", dir=fetch_dir))
            if fetch_dir is not None
            else tmp / "fetch"
        )
        steps = 3 + 8 * plan.fetch_rounds + (4 + plan.p99_runs) * len(plan.workers)
        self.bar = tqdm(total=steps, desc="bench", unit="step", file=sys.stderr)
        self.mirror_env = {
            "CRATE_MIRROR_INDEX_TTL": str(INDEX_TTL),
            "CRATE_MIRROR_LOG_LEVEL": "warning",
        }

    def note(self, text: str) -> None:
        self.bar.set_postfix_str(text[:60])
        self.bar.update(1)

    def run(self, skip_micro: bool) -> dict[str, Any]:
        registry = build_registry(self.tmp / "registry")
        rng = random.Random(6)
        blob = rng.randbytes(BLOB_BYTES)  # random bytes: gzip cannot shrink them
        registry.add_crate(*BLOB_CRATE, {"src/blob.bin": blob})
        self.static = registry.copy_to(self.tmp / "static")  # nginx's root
        self.note("registry built")
        results: dict[str, Any] = {
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": self.plan.micro_quick,
            "machine": machine_info(),
            "settings": {
                "wrk_threads": WRK_THREADS,
                "connections": self.plan.connections,
                "rss_connections": self.plan.rss_connections,
                "duration_s": self.plan.duration,
                "warmup_s": self.plan.warmup,
                "mirror_index_ttl_s": INDEX_TTL,
                "fetch_rounds": self.plan.fetch_rounds,
                "fetch_workers": 1,
                "fetch_dir": str(self.fetch_dir),
                "p99_runs": self.plan.p99_runs,
            },
        }
        try:
            with self._upstream(registry) as upstream_url:
                self.upstream_url = upstream_url
                lockfile, crates = lock_project(self.tmp / "lock", upstream_url)
                self.note(f"locked {crates} crates")
                self.warm_cache = self.tmp / "warm" / "cache"
                if self.only != "load":
                    results["cold_fetch"] = self._cold_fetch(lockfile, crates).as_dict()
                    results["cold_fetch_default_policy"] = self._cold_fetch(
                        lockfile, crates, policy=DEFAULT_POLICY
                    ).as_dict()
                    results["warm_fetch"] = self._warm_fetch(lockfile, crates).as_dict()
                    results["cold_fetch_distant"] = self._distant_fetch(
                        registry, lockfile, crates
                    ).as_dict()
                else:
                    self._prime(lockfile)
                if self.only != "fetch":
                    scenarios = self._scenarios(registry)
                    results["load"] = [
                        row for w in self.plan.workers for row in self._load(w, scenarios)
                    ]
        finally:
            if self.fetch_dir.parent != self.tmp:
                shutil.rmtree(self.fetch_dir, ignore_errors=True)
        if not skip_micro:
            results["micro"] = run_micro_benchmarks(
                self.plan.micro_quick, lambda t: self.bar.set_postfix_str(t)
            )
        self.note("micro-benchmarks done")
        self.bar.close()
        results["targets"] = summarize_targets(results, BLOB_BYTES)
        return results

    # -- servers --------------------------------------------------------------------------

    def _upstream(
        self, registry: Registry, latency: float = 0.0
    ) -> contextlib.AbstractContextManager[str]:
        return fixture_upstream(registry, latency)

    @contextlib.contextmanager
    def _mirror(
        self, cache: Path, workers: int, policy: Path | None = None, upstream: str | None = None
    ) -> Iterator[MirrorProcess]:
        mirror = MirrorProcess(
            cache,
            upstream=(upstream or self.upstream_url) + "/",
            policy=policy,
            env=self.mirror_env,
            extra=["--workers", str(workers)],
        )
        mirror.start()
        assert mirror.proc is not None
        pids: list[int] = []
        try:
            # A parent plus `workers` forked children when workers > 1.
            wait_for_workers(mirror.proc.pid, 1 if workers == 1 else workers + 1)
            pids = process_tree(mirror.proc.pid)
            yield mirror
        finally:
            mirror.stop()
            # `serve --workers N` exits on SIGTERM without stopping its forked workers.
            _stop_orphans(pids)

    @contextlib.contextmanager
    def _nginx(self, workers: int) -> Iterator[NginxServer]:
        port = free_port()
        config = {"dl": f"http://127.0.0.1:{port}/api/v1/crates"}
        (self.static.index_dir / "config.json").write_text(json.dumps(config))
        prefix = self.tmp / f"nginx-{port}"
        with NginxServer(self.static.root, prefix, port, workers) as nginx:
            yield nginx

    # -- cargo fetch ----------------------------------------------------------------------

    def _cold_fetch(
        self,
        lockfile: Path,
        crates: int,
        policy: Path | None = None,
        upstream: str | None = None,
        label: str | None = None,
    ) -> Any:
        """Without a policy the mirror is a verifying proxy; with the shipped default policy
        it also decides every request as a deployment does (name checks, evidence, a
        capability scan of each crate it has not seen)."""
        upstream_url = upstream or self.upstream_url

        @contextlib.contextmanager
        def direct() -> Iterator[str]:
            yield upstream_url

        @contextlib.contextmanager
        def cold_mirror() -> Iterator[str]:
            cache = self.tmp / f"cold-cache-{time.monotonic_ns()}" / "cache"
            with self._mirror(cache, 1, policy, upstream_url) as mirror:
                yield mirror.index_url

        if label is None:
            label = (
                "mirror (empty cache)" if policy is None else "mirror (empty cache, default policy)"
            )
        return compare_fetches(
            self.fetch_dir,
            lockfile,
            crates,
            ((label, cold_mirror), ("direct upstream", direct)),
            self.plan.fetch_rounds,
            self.note,
        )

    def _distant_fetch(self, registry: Registry, lockfile: Path, crates: int) -> Any:
        """The same cold fetch, default policy, with upstream DISTANT_LATENCY away (as
        crates.io is): cargo asks one request at a time per connection, so each round trip
        it waits for counts; the mirror fetches ahead what cargo will ask for next."""
        with self._upstream(registry, DISTANT_LATENCY) as distant:
            ms = round(DISTANT_LATENCY * 1000)
            return self._cold_fetch(
                lockfile,
                crates,
                DEFAULT_POLICY,
                distant,
                f"mirror (empty cache, default policy), upstream {ms} ms away",
            )

    def _prime(self, lockfile: Path) -> None:
        """Fill the warm cache the load runs read (what the warm fetch does otherwise)."""
        with self._mirror(self.warm_cache, 1) as mirror:
            timed_fetch(self.fetch_dir / "prime", mirror.index_url, lockfile)

    def _warm_fetch(self, lockfile: Path, crates: int) -> Any:
        with self._mirror(self.warm_cache, 1) as mirror, self._nginx(1) as nginx:
            timed_fetch(self.fetch_dir / "prime", mirror.index_url, lockfile)  # fills cache

            @contextlib.contextmanager
            def via(url: str) -> Iterator[str]:
                yield url

            return compare_fetches(
                self.fetch_dir,
                lockfile,
                crates,
                (
                    ("mirror (warm cache)", lambda: via(mirror.index_url)),
                    ("nginx", lambda: via(nginx.url + "/index")),
                ),
                self.plan.fetch_rounds,
                self.note,
            )

    # -- wrk load -------------------------------------------------------------------------

    def _scenarios(self, registry: Registry) -> list[Scenario]:
        index_paths = tuple(f"/index/{index_path(n)}" for n in registry.names())
        small = tuple(
            f"/api/v1/crates/{c.name}/{c.version}/download"
            for c in registry.crates
            if c.name != BLOB_CRATE[0]
            and registry.crate_file(c.name, c.version).stat().st_size <= SMALL_CRATE_MAX
        )
        blob = (f"/api/v1/crates/{BLOB_CRATE[0]}/{BLOB_CRATE[1]}/download",)
        return [
            Scenario(
                "index_hit", f"warm index hits ({len(index_paths)} files)", False, index_paths
            ),
            Scenario("index_304", "warm index 304 revalidations", True, index_paths),
            Scenario(
                "crate_small",
                f"warm .crate downloads ({len(small)} crates <= 64 KiB)",
                False,
                small,
            ),
            Scenario("crate_5mb", "warm .crate download, 5 MB crate", False, blob),
        ]

    def _load(self, workers: int, scenarios: list[Scenario]) -> list[dict[str, Any]]:
        rows = []
        with self._mirror(self.warm_cache, workers) as mirror, self._nginx(workers) as nginx:
            assert mirror.proc is not None
            for scenario in scenarios:
                fetch_all(mirror.url, scenario.paths)  # one request per URL: the cache is warm
                check_same_bytes(mirror.url, nginx.url, scenario.paths[:3])
            runs: list[tuple[Scenario, int, int | None]] = [
                (s, self.plan.connections, None) for s in scenarios
            ]
            runs += [
                (scenarios[0], self.plan.rss_connections, i + 1) for i in range(self.plan.p99_runs)
            ]
            for scenario, conns, run in runs:
                row: dict[str, Any] = {
                    "scenario": scenario.name,
                    "describe": scenario.describe,
                    "workers": workers,
                    "connections": conns,
                }
                if run is not None:
                    row["run"] = run
                for label, url in (("nginx", nginx.url), ("mirror", mirror.url)):
                    targets = (
                        conditional_targets(url, scenario.paths)
                        if scenario.conditional
                        else [Target(p) for p in scenario.paths]
                    )
                    self._wrk(url, targets, conns, self.plan.warmup)  # discarded
                    with PeakMemory(mirror.proc.pid) as memory:
                        result = self._wrk(url, targets, conns, self.plan.duration)
                    row[label] = result.as_dict()
                    if label == "mirror":
                        row["mirror_memory"] = memory.as_dict()
                row["rps_ratio"] = _ratio(
                    row["mirror"]["requests_per_s"], row["nginx"]["requests_per_s"]
                )
                row["p50_ratio"] = _ratio(row["mirror"]["p50_ms"], row["nginx"]["p50_ms"])
                row["p99_ratio"] = _ratio(row["mirror"]["p99_ms"], row["nginx"]["p99_ms"])
                rows.append(row)
                self.note(f"w={workers} {scenario.name}@{conns}: x{row['rps_ratio']}")
        return rows

    def _wrk(self, url: str, targets: list[Target], conns: int, seconds: float) -> LoadResult:
        return run_wrk(url, targets, connections=conns, duration=seconds, threads=WRK_THREADS)


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


@contextlib.contextmanager
def fixture_upstream(registry: Registry, latency: float = 0.0) -> Iterator[str]:
    """The fixture upstream in its own process, so it never shares a GIL with the harness;
    `latency`: seconds before every answer (a distant upstream)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fixtures.upstream",
            "--registry",
            str(registry.root),
            "--port",
            "0",
            "--latency",
            str(latency),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"fixture upstream did not start (exit {proc.poll()})")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


def _stop_orphans(pids: list[int]) -> None:
    """SIGTERM, then SIGKILL, whichever of these (our own children's) processes still run."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        alive = [pid for pid in pids if _alive(pid)]
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while any(_alive(pid) for pid in alive) and time.monotonic() < deadline:
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Still a running mirror process: not gone, not a zombie, and not a reused pid."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z" and b"mirror\0serve" in cmdline


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
