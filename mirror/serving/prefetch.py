"""Warm the cache for lockfiles and explicit crates, through the same path as serving them
(`MirrorCore.fetch_crate`): name rules, index, version rules, checksum, capability lock."""

from __future__ import annotations

import asyncio
import dataclasses
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mirror.errors import BadRequest, Blocked, MirrorError
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
    # Refused by a rule a person can lift (capabilities, risk, ...): (crate, rule, why).
    held: list[tuple[CrateRef, str, str]] = field(default_factory=list)
    failed: list[tuple[CrateRef, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.held


def crates_in_lockfile(path: Path) -> list[CrateRef]:
    """Registry packages of a Cargo.lock (path, git and other registries' packages skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BadRequest(f"cannot read lockfile {path}: {e}") from e
    return crates_in_lockfile_text(text, str(path))


def crates_in_lockfile_text(text: str, where: str) -> list[CrateRef]:
    """The same, from a lockfile's text (pasted into the console); BadRequest if malformed."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BadRequest(f"cannot read {where}: {e}") from e
    packages = data.get("package", [])
    if not isinstance(packages, list):
        raise BadRequest(f"cannot read {where}: `package` is not a list of tables")
    refs = []
    for package in packages:
        if not isinstance(package, dict) or package.get("source") not in CRATES_IO_SOURCES:
            continue
        name, version = package.get("name"), package.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            raise BadRequest(f"cannot read {where}: a package without a name or version")
        ref = CrateRef.parse(f"{name}@{version}")
        checksum = package.get("checksum")
        refs.append(
            dataclasses.replace(ref, checksum=checksum) if isinstance(checksum, str) else ref
        )
    return refs


def check_locked(ref: CrateRef, cksum: str) -> None:
    """BadRequest when the lockfile pins `ref` to other bytes than the index lists: cargo
    would refuse the crate, so it is not counted as ready (nor bundled)."""
    if ref.checksum is not None and ref.checksum != cksum:
        raise BadRequest(
            f"{ref}: the lockfile's checksum {ref.checksum[:16]}... is not the one the index "
            f"lists ({cksum[:16]}...): cargo would refuse it; was the lockfile made against "
            "another registry, or edited?"
        )


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
                check_locked(ref, answer.line.cksum)
                was_cached = answer.crate.was_cached
                outcome = "cached" if was_cached else "fetched"
                (report.cached if was_cached else report.fetched).append(ref)
            except Blocked as e:
                # Every crate of the lockfile is judged in this one pass (cargo stops at the
                # first 403): what needs a person is listed together, to approve at once.
                outcome = "held"
                report.held.append((ref, e.rule, str(e)))
            except MirrorError as e:
                report.failed.append((ref, str(e)))
            finally:
                on_done(ref, outcome)

    unique = sorted(set(refs), key=str)
    await asyncio.gather(*(one(ref) for ref in unique))
    return report
