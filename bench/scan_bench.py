"""Capability-scan throughput over the Debian crate sources, in MB/s of uncompressed source.

    python bench/scan_bench.py [--limit N] [--top K] [--repeat N]

Packs every crate under /usr/share/cargo/registry (tests/fixtures/crates.py), then times
`scan_crate` on each (CPU time of this process, so other load on the machine does not skew
it; wall-clock is printed too). Packing and one warm-up scan are not timed. Prints the total
rate and the slowest crates. No pass/fail: the target on a 2-core machine is 50 MB/s.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mirror.errors import ArchiveError
from mirror.scan.archive import ArchiveLimits, CrateFiles
from mirror.scan.capabilities import scan_crate
from tests.fixtures.crates import DEBIAN_REGISTRY, pack_crate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="scan only the first N crates")
    parser.add_argument("--top", type=int, default=5, help="show the K slowest crates")
    parser.add_argument(
        "--repeat", type=int, default=1, help="scan everything N times (load makes runs vary)"
    )
    args = parser.parse_args()
    dirs = sorted(p for p in DEBIAN_REGISTRY.iterdir() if p.is_dir())
    if args.limit:
        dirs = dirs[: args.limit]
    packed = [(d.name, pack_crate(d)) for d in tqdm(dirs, desc="packing", unit="crate")]
    # Untimed: the first scan in a process imports the reader and compiles its queries and
    # token database (~0.06 s), a one-off a long-running mirror does not pay per crate.
    for _, data in packed[:1]:
        with contextlib.suppress(ArchiveError):  # reported by the timed runs
            scan_crate(data)
    rates = [_run(packed, args.top if run == args.repeat - 1 else 0) for run in range(args.repeat)]
    if args.repeat > 1:
        shown = ", ".join(f"{r:.1f}" for r in rates)
        print(f"runs: {shown} MB/s; median {statistics.median(rates):.1f} MB/s")
    return 0


def _run(packed: list[tuple[str, bytes]], top: int) -> float:
    """Scan every packed crate once; print the totals (and the `top` slowest); the MB/s."""
    total_bytes = 0
    total_time = 0.0
    wall_start = time.perf_counter()
    timings: list[tuple[float, str, int]] = []
    for name, data in tqdm(packed, desc="scanning", unit="crate"):
        try:
            size = _unpacked_bytes(data)
            start = time.process_time()
            scan_crate(data)
            elapsed = time.process_time() - start
        except ArchiveError as e:
            print(f"{name}: rejected: {e}")
            continue
        total_bytes += size
        total_time += elapsed
        timings.append((elapsed, name, size))
    wall = time.perf_counter() - wall_start
    rate = total_bytes / 1e6 / total_time if total_time else 0.0
    print(f"{len(timings)} crates, {total_bytes / 1e6:.1f} MB unpacked in {total_time:.2f} s CPU")
    print(f"throughput: {rate:.1f} MB/s (CPU time); wall-clock {total_bytes / 1e6 / wall:.1f} MB/s")
    for elapsed, name, size in sorted(timings, reverse=True)[:top]:
        print(
            f"  {name}: {elapsed:.3f} s for {size / 1e6:.2f} MB ({size / 1e6 / elapsed:.1f} MB/s)"
        )
    return rate


def _unpacked_bytes(data: bytes) -> int:
    files = CrateFiles(data, ArchiveLimits())
    files.check()
    return files.unpacked_bytes


if __name__ == "__main__":
    sys.exit(main())
