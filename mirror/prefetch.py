"""Warm the cache for lockfiles and explicit crates, through the same verified path as serving."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mirror.errors import BadRequest, MirrorError
from mirror.gate import Request
from mirror.index import CrateRef, IndexLine
from mirror.request_ids import next_request_id
from mirror.server import Mirror

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


@dataclass(frozen=True)
class FetchedCrate:
    line: IndexLine
    path: Path
    served_index: bytes  # the index file exactly as this mirror serves it (policy applied)
    was_cached: bool


async def fetch_verified(mirror: Mirror, ref: CrateRef, route: str) -> FetchedCrate:
    """One crate through the same steps as serving it: name rules, index, version rules,
    checksum-verified download, capability lock. Raises the same errors a request would."""
    req = Request(next_request_id(), route, route, ref.name, ref.version)
    mirror.gate.check_name(req)
    entry = await mirror.indexes.get(ref.name)
    line = entry.index.find(ref.version)
    if line is None:
        raise BadRequest(f"{ref} is not in the upstream index")
    mirror.gate.check_version(req, entry, line)
    was_cached = mirror.crates.cached_path(line) is not None
    path = await mirror.crates.ensure(line)
    await mirror.gate.check_capabilities(req, line, path)
    served = mirror.gate.served_index(entry)
    return FetchedCrate(line, path, served.body, was_cached)


async def prefetch(
    mirror: Mirror,
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
                fetched = await fetch_verified(mirror, ref, "prefetch")
                outcome = "cached" if fetched.was_cached else "fetched"
                (report.cached if fetched.was_cached else report.fetched).append(ref)
            except MirrorError as e:
                report.failed.append((ref, str(e)))
            finally:
                on_done(ref, outcome)

    unique = sorted(set(refs), key=str)
    await asyncio.gather(*(one(ref) for ref in unique))
    return report
