"""`cargo fetch` timings: a real cargo, an empty CARGO_HOME each time, a 100+ crate project.

The project (tests/fixtures/registry.py `BENCH_PROJECT_DEPS`) is locked once, against the
fixture upstream, so every timed fetch downloads exactly the same index files and crates.
Only the `cargo fetch` itself is timed; starting a server or wiping a cache is not.

Runs alternate between the two sides (A, B, A, B, ...) so that drift on a shared 2-core
machine (page cache, CPU frequency, other tenants) hits both sides alike; medians are reported.

cargo runs with its defaults against the mirror (side A): it offers HTTP/2, which the mirror
takes as its `http2` setting says (`auto`: not from a cargo on its own host while upstream is
near, so over HTTP/1.1 on loopback; over HTTP/2 from an upstream 20 ms away). The reference
(side B: the fixture upstream, nginx) speaks only HTTP/1.1, and there cargo runs with
`multiplexing = false`, its quicker setting against such a server: with multiplexing on,
cargo holds requests back until it learns a connection cannot multiplex (2.73 s against
3.96 s for a direct fetch from an upstream 20 ms away; the same on loopback).
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from tests.cargo_project import CargoProject
from tests.fixtures.registry import BENCH_PROJECT_DEPS

__all__ = ["FetchComparison", "Side", "compare_fetches", "lock_project", "timed_fetch"]

# A side of the comparison: entering it yields the sparse registry URL cargo should use (and
# starts whatever serves it); leaving it stops that again.
Side = Callable[[], AbstractContextManager[str]]


@dataclass
class FetchComparison:
    """Seconds per `cargo fetch`, in run order, for side A (the mirror) and side B (reference)."""

    label_a: str
    label_b: str
    seconds_a: list[float] = field(default_factory=list)
    seconds_b: list[float] = field(default_factory=list)
    crates: int = 0

    @property
    def median_a(self) -> float:
        return statistics.median(self.seconds_a)

    @property
    def median_b(self) -> float:
        return statistics.median(self.seconds_b)

    @property
    def ratio(self) -> float:
        return self.median_a / self.median_b if self.median_b > 0 else float("inf")

    def as_dict(self) -> dict[str, object]:
        return {
            "a": self.label_a,
            "b": self.label_b,
            "a_seconds": [round(s, 3) for s in self.seconds_a],
            "b_seconds": [round(s, 3) for s in self.seconds_b],
            "a_median_s": round(self.median_a, 3),
            "b_median_s": round(self.median_b, 3),
            "ratio": round(self.ratio, 3),
            "locked_crates": self.crates,
        }


def lock_project(workdir: Path, registry_url: str) -> tuple[Path, int]:
    """Create and lock the benchmark project; returns its Cargo.lock and the crate count."""
    project = CargoProject(workdir / "lock", registry_url, BENCH_PROJECT_DEPS, name="bench-app")
    result = project.generate_lockfile()
    if result.returncode != 0:
        raise RuntimeError(f"cargo generate-lockfile failed:\n{result.stderr[-3000:]}")
    count = sum(len(v) for v in project.lock_versions().values())
    return project.dir / "Cargo.lock", count


def timed_fetch(
    workdir: Path, registry_url: str, lockfile: Path, *, multiplexing: bool = True
) -> float:
    """Seconds one `cargo fetch` takes from an empty CARGO_HOME against `registry_url`."""
    shutil.rmtree(workdir, ignore_errors=True)
    project = CargoProject(
        workdir, registry_url, BENCH_PROJECT_DEPS, name="bench-app", multiplexing=multiplexing
    )
    shutil.copyfile(lockfile, project.dir / "Cargo.lock")
    start = time.perf_counter()
    result = project.run("fetch", "--locked")
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"cargo fetch via {registry_url} failed:\n{result.stderr[-3000:]}")
    shutil.rmtree(workdir, ignore_errors=True)
    return elapsed


def compare_fetches(
    workdir: Path,
    lockfile: Path,
    crates: int,
    sides: tuple[tuple[str, Side], tuple[str, Side]],
    rounds: int,
    progress: Callable[[str], None] = lambda _: None,
    *,
    reference_is_mirror: bool = False,
) -> FetchComparison:
    """Alternate B, A, B, A, ... (`rounds` each); side A is the mirror, B the reference
    (an HTTP/1.1 server unless `reference_is_mirror`: then cargo's defaults on both sides)."""
    (label_a, side_a), (label_b, side_b) = sides
    result = FetchComparison(label_a, label_b, crates=crates)
    for i in range(rounds):
        for label, side, into, multiplexing in (
            (label_b, side_b, result.seconds_b, reference_is_mirror),
            (label_a, side_a, result.seconds_a, True),
        ):
            with side() as url:
                seconds = timed_fetch(
                    workdir / f"{label}-{i}", url, lockfile, multiplexing=multiplexing
                )
            into.append(seconds)
            progress(f"{label} run {i + 1}: {seconds:.2f} s")
    return result
