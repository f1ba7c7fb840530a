"""Soak and load harness: cargo-like traffic through a real mirror while upstream misbehaves.

    python -m bench.soak --requests 5000 --seed 7          # soak: faults at random, then checks
    python -m bench.soak --load-clients 1000 --load-seconds 60   # plus the load phase

Soak phase: `--requests` index fetches and downloads (cargo-like, `--concurrency` at once,
retrying 5xx like cargo's net.retry) while the fixture upstream injects, drawn from a fixed
seed, 5xx, 429 + Retry-After, resets, truncated and bit-flipped bodies, wrong Content-Length,
stalls past the mirror's read timeout and missing ETags. Every 200 is compared byte for byte
with the registry; afterwards every cached crate must hash to its index cksum. Load phase:
`--load-clients` concurrent clients (warm and cold mix) for `--load-seconds`, sampling the
mirror's RSS. Counts are printed; the exit status is 1 if any invariant failed.

`tests/test_soak.py` runs the same `run_soak` with fewer requests in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from tqdm import tqdm

from mirror.index import etag_of, index_path
from tests.fixtures.faults import Fault, FaultKind, Faults
from tests.fixtures.registry import Registry, build_registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

INDEX_FAULTS: tuple[FaultKind, ...] = (
    "error", "rate_limit", "reset", "truncate", "wrong_length", "stall", "missing_etag",
)  # fmt: skip
# Downloads also get flipped bytes: the index cksum catches them. A flipped *index* body can
# only be caught by TUF (the index is the root of trust without it), so it is injected only
# when TUF is configured, which this harness does not do.
DOWNLOAD_FAULTS: tuple[FaultKind, ...] = (*INDEX_FAULTS, "flip")
MIRROR_ENV = {
    "CRATE_MIRROR_INDEX_TTL": "0",  # every index request revalidates upstream: max exposure
    "CRATE_MIRROR_UPSTREAM_READ_TIMEOUT": "1",  # seconds; stalls last 2 s, past it
    "CRATE_MIRROR_UPSTREAM_CONNECT_TIMEOUT": "2",
    "CRATE_MIRROR_UPSTREAM_RETRIES": "2",
    "CRATE_MIRROR_LOG_LEVEL": "warning",
}
CLIENT_RETRIES = 3  # cargo's default net.retry
STALL_SECONDS = 2.0


class SoakFaults(Faults):
    """Random faults per request kind: bit flips only where the mirror can detect them."""

    def __init__(self, seed: int, rate: float) -> None:
        super().__init__()
        self._rng = random.Random(seed)
        self._rate = rate
        self._lock2 = threading.Lock()
        self.injected: Counter[str] = Counter()

    def each_kind_once(self) -> None:
        """One explicit fault of every kind up front, so no kind is missed by chance."""
        for kind in DOWNLOAD_FAULTS:
            self.add(kind, match="/download", times=1, seconds=STALL_SECONDS)
        for kind in INDEX_FAULTS:
            # Upstream index paths have no prefix; serde*'s are fetched often in every plan.
            self.add(kind, match="/se/rd/", times=1, seconds=STALL_SECONDS)

    def take(self, path: str) -> Fault | None:
        explicit = super().take(path)
        if explicit is not None:
            with self._lock2:
                self.injected[explicit.kind] += 1
            return explicit
        if path == "/config.json":
            return None
        kinds = DOWNLOAD_FAULTS if path.endswith("/download") else INDEX_FAULTS
        with self._lock2:
            if self._rng.random() >= self._rate:
                return None
            kind = self._rng.choice(kinds)
            self.injected[kind] += 1
        return Fault(kind, seconds=STALL_SECONDS, retry_after=1, status=503)


@dataclass
class SoakResult:
    served: int = 0  # requests answered 200/304 with exactly the right bytes
    retried: int = 0  # client retries after a 5xx or a broken connection
    failed_clear: int = 0  # gave up after retries, the last answer a clear crate-mirror error
    failed_unclear: int = 0  # gave up with no explanation (must stay 0)
    wrong_body: int = 0  # a 200 whose bytes differ from the registry's (must stay 0)
    statuses: Counter[int] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # first few problems, for the report

    @property
    def total(self) -> int:
        return self.served + self.failed_clear + self.failed_unclear + self.wrong_body

    def ok(self) -> bool:
        return self.wrong_body == 0 and self.failed_unclear == 0

    def summary(self) -> str:
        return (
            f"requests={self.total} served={self.served} retried={self.retried} "
            f"failed_with_clear_error={self.failed_clear} failed_unclear={self.failed_unclear} "
            f"wrong_body_with_200={self.wrong_body} statuses={dict(sorted(self.statuses.items()))}"
        )


@dataclass(frozen=True)
class Target:
    path: str
    expected: bytes
    etag: str | None = None  # for conditional index requests


def targets(registry: Registry) -> tuple[list[Target], list[Target]]:
    """(index targets, download targets) with the bytes a correct mirror must return."""
    index, downloads = [], []
    for name in registry.names():
        body = registry.read_index(name)
        index.append(Target("/index/" + index_path(name), body, etag_of(body)))
        for version in registry.versions(name):
            data = registry.crate_bytes(name, version)
            downloads.append(Target(f"/api/v1/crates/{name}/{version}/download", data))
    return index, downloads


async def _one(
    session: aiohttp.ClientSession, base: str, target: Target, conditional: bool,
    result: SoakResult,
) -> None:  # fmt: skip
    headers = {"If-None-Match": target.etag} if conditional and target.etag else {}
    last = ""
    for attempt in range(CLIENT_RETRIES + 1):
        if attempt:
            result.retried += 1
            await asyncio.sleep(0.05 * attempt)
        try:
            async with session.get(base + target.path, headers=headers) as resp:
                body = await resp.read()
                result.statuses[resp.status] += 1
                if resp.status == 304 and conditional:
                    if resp.headers.get("ETag") == target.etag:
                        result.served += 1
                    else:
                        _problem(result, "wrong_body", f"304 with ETag {resp.headers.get('ETag')} "
                                 f"for {target.path}")  # fmt: skip
                    return
                if resp.status == 200:
                    if body == target.expected:
                        result.served += 1
                    else:
                        _problem(result, "wrong_body", f"200 with wrong bytes for {target.path}")
                    return
                last = body.decode(errors="replace")
                if resp.status < 500:
                    break  # cargo does not retry a 4xx either
        except (TimeoutError, aiohttp.ClientError) as e:
            last = f"client error: {e!r}"
    if last.startswith("crate-mirror:"):
        result.failed_clear += 1
    else:
        _problem(result, "failed_unclear", f"{target.path}: {last[:200]!r}")


def _problem(result: SoakResult, kind: str, message: str) -> None:
    setattr(result, kind, getattr(result, kind) + 1)
    if len(result.examples) < 10:
        result.examples.append(f"{kind}: {message}")


async def run_soak(
    base_url: str, registry: Registry, *, requests: int, concurrency: int = 32, seed: int = 1,
    download_share: float = 0.5, progress: bool = False,
) -> SoakResult:  # fmt: skip
    """Drive `requests` cargo-like requests through the mirror at `base_url` and count them."""
    index, downloads = targets(registry)
    rng = random.Random(seed)
    plan = [
        (rng.choice(downloads), False) if rng.random() < download_share
        else (rng.choice(index), rng.random() < 0.5)
        for _ in range(requests)
    ]  # fmt: skip
    result = SoakResult()
    queue: asyncio.Queue[tuple[Target, bool]] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)
    bar = tqdm(total=requests, desc="soak", unit="req", disable=not progress)
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                target, conditional = queue.get_nowait()
                await _one(session, base_url, target, conditional, result)
                bar.update(1)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    bar.close()
    return result


def check_cache(cache_dir: Path, known_cksums: set[str]) -> list[str]:
    """Problems with the crate store: a file that does not hash to its name, or is unknown."""
    problems = []
    crates = cache_dir / "crates"
    for path in sorted(crates.rglob("*")) if crates.is_dir() else []:
        if path.is_dir():
            continue
        rel = path.relative_to(crates)
        stem = path.name.removesuffix(".crate")
        if path.suffix != ".crate" or rel.parts[0] != stem[:2]:
            problems.append(f"unexpected file in the store: {rel}")
            continue
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != stem:
            problems.append(f"{rel} hashes to {actual}")
        elif stem not in known_cksums:
            problems.append(f"{rel} is not any index cksum")
    return problems


def known_cksums(registry: Registry) -> set[str]:
    return {e["cksum"] for n in registry.names() for e in registry.entries(n)}


# -- load phase ---------------------------------------------------------------------------------


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    rss_samples: list[int] = field(default_factory=list)  # bytes

    def summary(self) -> str:
        rss = self.rss_samples or [0]
        return (
            f"load requests={self.requests} errors={self.errors} "
            f"statuses={dict(sorted(self.statuses.items()))} rss_start={rss[0] // 2**20}MiB "
            f"rss_max={max(rss) // 2**20}MiB rss_end={rss[-1] // 2**20}MiB"
        )


def rss_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def run_load(
    base_url: str, registry: Registry, pid: int, *, clients: int, seconds: float, seed: int = 2,
) -> LoadResult:  # fmt: skip
    """`clients` concurrent cargo-like clients for `seconds`: index (plain and conditional),
    downloads, and names that do not exist (cold misses); any wrong answer is an error."""
    index, downloads = targets(registry)
    result = LoadResult()
    stop = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)

    async def sample_rss() -> None:
        while time.monotonic() < stop:
            result.rss_samples.append(rss_of(pid))
            await asyncio.sleep(1.0)

    async def client(n: int, session: aiohttp.ClientSession) -> None:
        rng = random.Random(seed * 100_003 + n)
        while time.monotonic() < stop:
            roll = rng.random()
            if roll < 0.05:
                path, expected, want = (
                    f"/index/{index_path(f'nx-{n}-{rng.randrange(50)}')}",
                    None,
                    404,
                )
            elif roll < 0.70:
                t = rng.choice(index)
                path, expected, want = t.path, t.expected, 200
            else:
                t = rng.choice(downloads)
                path, expected, want = t.path, t.expected, 200
            try:
                async with session.get(base_url + path) as resp:
                    body = await resp.read()
                    result.statuses[resp.status] += 1
                    if resp.status != want or (expected is not None and body != expected):
                        result.errors += 1
            except (TimeoutError, aiohttp.ClientError):
                result.errors += 1
            result.requests += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(sample_rss(), *(client(i, session) for i in range(clients)))
    return result


# -- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="Soak the mirror with injected upstream faults, then load it with many "
        "concurrent clients; print the counts and check the cache.",
    )
    parser.add_argument("--requests", type=int, default=5000, help="soak requests (5000)")
    parser.add_argument("--concurrency", type=int, default=32, help="soak clients (32)")
    parser.add_argument("--rate", type=float, default=0.2, help="fault rate per upstream request")
    parser.add_argument("--seed", type=int, default=7, help="seed for plan and faults (7)")
    parser.add_argument("--load-clients", type=int, default=1000, help="load clients (1000)")
    parser.add_argument("--load-seconds", type=float, default=60.0, help="load duration (60)")
    parser.add_argument("--no-load", action="store_true", help="skip the load phase")
    parser.add_argument(
        "--rss-limit-mib", type=int, default=512, help="fail if the mirror's RSS exceeds this"
    )
    parser.add_argument("--workdir", type=Path, help="keep registry and cache here")
    args = parser.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="crate-mirror-soak-"))
    print(f"building the fixture registry in {work} ...", file=sys.stderr)
    registry = build_registry(work / "registry")
    ok = True
    with FakeUpstream(registry).in_thread() as upstream:
        faults = SoakFaults(args.seed, args.rate)
        faults.each_kind_once()
        upstream.faults = faults
        mirror = MirrorProcess(work / "cache", upstream=upstream.url + "/", env=MIRROR_ENV)
        mirror.start()
        try:
            started = time.monotonic()
            soak = asyncio.run(
                run_soak(mirror.url, registry, requests=args.requests,
                         concurrency=args.concurrency, seed=args.seed, progress=True)
            )  # fmt: skip
        finally:
            mirror.stop()
        print(f"soak: {soak.summary()} in {time.monotonic() - started:.0f}s")
        print(f"soak: upstream faults injected {dict(sorted(faults.injected.items()))}")
        problems = check_cache(work / "cache", known_cksums(registry))
        cached = sum(1 for _ in (work / "cache" / "crates").rglob("*.crate"))
        print(f"soak: {cached} cached crates, {len(problems)} cache problems")
        for line in soak.examples + problems[:10]:
            print(f"  {line}")
        ok = soak.ok() and not problems
        if not args.no_load:
            upstream.faults = Faults()  # the load phase counts only real errors
            ok = _load_phase(args, work, registry, upstream) and ok
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def _load_phase(
    args: argparse.Namespace, work: Path, registry: Registry, upstream: FakeUpstream
) -> bool:
    """A fresh cache, so the run starts cold (every crate fetched once) and turns warm."""
    mirror = MirrorProcess(work / "load-cache", upstream=upstream.url + "/", env=MIRROR_ENV)
    mirror.start()
    try:
        assert mirror.proc is not None
        load = asyncio.run(
            run_load(mirror.url, registry, mirror.proc.pid,
                     clients=args.load_clients, seconds=args.load_seconds)
        )  # fmt: skip
    finally:
        mirror.stop()
    rate = load.requests / args.load_seconds
    print(f"load: {args.load_clients} clients for {args.load_seconds:.0f}s: "
          f"{load.summary()} ({rate:.0f} req/s)")  # fmt: skip
    rss_ok = max(load.rss_samples or [0]) < args.rss_limit_mib * 2**20
    if not rss_ok:
        print(f"load: RSS went over the {args.rss_limit_mib} MiB limit")
    return load.errors == 0 and rss_ok


if __name__ == "__main__":
    sys.exit(main())
