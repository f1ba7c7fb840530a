"""Warm the cache for lockfiles and explicit crates, through the same path as serving them
(`MirrorCore.fetch_crate`): name rules, index, version rules, checksum, capability lock."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mirror.errors import BadRequest, MirrorError
from mirror.index import CrateRef
from mirror.request_ids import next_request_id
from mirror.serving.core import Client, MirrorCore

# Sources that mean "crates.io" in a Cargo.lock; with source replacement cargo still writes these.
CRATES_IO_SOURCES = (
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
)


@dataclass
class PrefetchReport:
    fetched: list[CrateRef] = field(default_factory=list)
    cached: list[CrateRef] = field(default_factory=list)
    failed: list[tuple[CrateRef, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def crates_in_lockfile(path: Path) -> list[CrateRef]:
    """Registry packages of a Cargo.lock (path, git and other registries' packages skipped)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise BadRequest(f"cannot read lockfile {path}: {e}") from e
    refs = []
    for package in data.get("package", []):
        if package.get("source") in CRATES_IO_SOURCES:
            refs.append(CrateRef.parse(f"{package['name']}@{package['version']}"))
    return refs


async def prefetch(
    core: MirrorCore,
    refs: Iterable[CrateRef],
    *,
    concurrency: int = 8,
    on_done: Callable[[CrateRef, str], None] = lambda ref, outcome: None,
) -> PrefetchReport:
    """Fetch index files and crates for `refs`; policy applies exactly as when serving."""
    report = PrefetchReport()
    limit = asyncio.Semaphore(concurrency)

    async def one(ref: CrateRef) -> None:
        async with limit:
            outcome = "failed"
            try:
                client = Client(next_request_id(), "prefetch")
                answer = await core.fetch_crate(ref.name, ref.version, client, route="prefetch")
                was_cached = answer.crate.was_cached
                outcome = "cached" if was_cached else "fetched"
                (report.cached if was_cached else report.fetched).append(ref)
            except MirrorError as e:
                report.failed.append((ref, str(e)))
            finally:
                on_done(ref, outcome)

    unique = sorted(set(refs), key=str)
    await asyncio.gather(*(one(ref) for ref in unique))
    return report
