"""Looking ahead: what cargo will ask for next, fetched before it asks.

cargo resolves wave by wave: it reads a crate's index file, then asks for the index files of
that crate's dependencies; then it downloads one version of each crate. Over HTTP/1.1 it
uses two connections, so against a cold mirror each of those requests used to wait for its
own upstream round trip, one after another.

Index files: when cargo asks for one, the mirror starts fetching the index files of that
crate's dependencies (those of its newest versions; dev-dependencies are never resolved for
a dependency) a few at a time, in the background.

Crates: when cargo asks for a crate's index file it will download a version of that crate,
the newest one that the requirements on it allow. The mirror remembers the requirements of
the dependencies of the crates cargo asked for (those of each one's newest release) and
fetches, for each requirement seen on a crate, the newest version it allows (the newest
release when none was seen: the project's own dependencies). Only versions the served index
lists are fetched, and only while upstream is far away: with an upstream that answers
within `WORTH_IT_AFTER`, the extra CPU cost more than the round trips it saved
(docs/benchmarks.md). A version no build then asks for (a lockfile that pins an older
one) stays in the cache.

When cargo asks, the file or crate is in memory or on its way (the request joins the fetch
in flight). Nothing is decided or served here: the policy judges each file and crate when
cargo asks for it, and the audit log records that, as before.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Protocol

import structlog

from mirror import metrics
from mirror.errors import BadRequest, MirrorError
from mirror.index import IndexFile, IndexLine, validate_name
from mirror.policy.semver import Version, VersionReq
from mirror.serving import evidence
from mirror.serving.downloads import CrateFile
from mirror.serving.index_cache import IndexEntry

log = structlog.get_logger("mirror.look_ahead")
CONCURRENCY = 8  # look-ahead fetches at once (of upstream_concurrency): requests come first
MAX_PER_FILE = 64  # dependency names looked up per index file, at most
WORTH_IT_AFTER = 0.005  # seconds: crates are fetched ahead only from an upstream this far
MAX_REQUIREMENTS = 4  # requirements remembered per crate (and versions fetched ahead)
MAX_CRATES_REMEMBERED = 10_000  # crates remembered (requirements; fetched, not yet downloaded)

FetchCrate = Callable[[IndexLine], Awaitable[CrateFile]]


def distant(round_trip: float | None) -> bool:
    """Whether an upstream whose quickest recent answer took `round_trip` seconds is far
    enough away for fetching ahead to pay (None: too few answers yet to tell)."""
    return round_trip is not None and round_trip >= WORTH_IT_AFTER


class Indexes(Protocol):
    """What looking ahead needs of the index cache (mirror.serving.index_cache.IndexCache)."""

    def known(self, name: str) -> bool: ...

    async def get(self, name: str) -> IndexEntry: ...


def dependency_names(index: IndexFile, *, versions: int) -> list[str]:
    """The crates the newest `versions` versions depend on (normal and build dependencies,
    by their real name when renamed), in order of first appearance, without `index`'s own."""
    names: dict[str, None] = {}
    own = {line.name.lower() for line in index.lines}
    for line in index.lines[-versions:] if versions > 0 else ():
        for name in line.deps:
            try:
                validate_name(name)  # upstream's bytes: only legal names become fetches
            except BadRequest:
                continue
            if name.lower() not in own:
                names.setdefault(name.lower(), None)
    return list(names)[:MAX_PER_FILE]


def requirements(line: IndexLine) -> list[tuple[str, str]]:
    """(crate, requirement) for each normal and build dependency of one version, by the
    crate's real name (lower case) when renamed. Malformed entries are skipped."""
    try:
        deps = json.loads(line.raw).get("deps")
    except ValueError:
        return []
    out: list[tuple[str, str]] = []
    for dep in deps if isinstance(deps, list) else ():
        if not isinstance(dep, dict) or dep.get("kind") == "dev":
            continue
        name, req = dep.get("package") or dep.get("name"), dep.get("req")
        if isinstance(name, str) and isinstance(req, str):
            out.append((name.lower(), req))
    return out


def newest_release(index: IndexFile, hidden: Collection[str]) -> IndexLine | None:
    """The newest version that is neither yanked, a pre-release, nor held back."""
    shown = (line for line in index.lines if line.vers not in hidden)
    return evidence.newest_release(shown, or_last=False)


def versions_to_fetch(
    index: IndexFile, hidden: Collection[str], wanted: Iterable[str]
) -> list[IndexLine]:
    """The versions cargo will most likely download: for each requirement in `wanted`, the
    newest version it allows (as cargo picks); with none, the newest release. Never a yanked
    version (cargo picks none for a new resolution) nor a held-back one (cargo cannot see it)."""
    reqs: list[VersionReq] = []
    for text in wanted:
        try:
            reqs.append(VersionReq.parse(text))
        except ValueError:
            continue  # upstream's bytes; cargo would refuse the requirement too
    if not reqs:
        newest = newest_release(index, hidden)
        return [newest] if newest is not None else []
    candidates = sorted(_candidates(index, hidden), key=lambda c: c[0], reverse=True)
    chosen: dict[str, IndexLine] = {}
    for req in reqs:
        for version, line in candidates:
            if req.matches(version):
                chosen.setdefault(line.vers, line)
                break
    return list(chosen.values())[:MAX_REQUIREMENTS]


def _candidates(index: IndexFile, hidden: Collection[str]) -> list[tuple[Version, IndexLine]]:
    out = []
    for line in index.lines:
        if line.yanked or line.vers in hidden:
            continue
        try:
            out.append((Version.parse(line.vers), line))
        except ValueError:
            continue
    return out


class LookAhead:
    def __init__(
        self,
        indexes: Indexes,
        *,
        versions: int,
        crates: FetchCrate | None = None,
        round_trip: Callable[[], float | None] = lambda: None,
    ) -> None:
        """`crates`: fetches a crate into the cache (None: index files only). `round_trip`:
        how long upstream takes to answer at the least, in seconds (None while unknown)."""
        self._indexes = indexes
        self._versions = versions  # newest versions whose dependencies are fetched ahead
        self._crates = crates
        self._round_trip = round_trip
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._crate_slots = asyncio.Semaphore(CONCURRENCY)  # index files are not kept waiting
        self._tasks: set[asyncio.Task[None]] = set()
        # crate -> requirements on it, from the crates cargo asked for (least recent first)
        self._wanted: OrderedDict[str, list[str]] = OrderedDict()
        # cksums of crates fetched ahead that no download has asked for yet (the metrics
        # tell how many were then used: what fetching ahead costs in wrong guesses)
        self._unused: OrderedDict[str, None] = OrderedDict()

    def after(self, entry: IndexEntry, hidden: Collection[str]) -> None:
        """cargo asked for `entry`'s crate, whose served index holds back `hidden`: fetch its
        dependencies' index files and, from a distant upstream, the versions cargo will
        download (each once per content version of the file)."""
        if not entry.looked_ahead:
            entry.looked_ahead = True
            for name in dependency_names(entry.index, versions=self._versions):
                if not self._indexes.known(name):
                    self._start(self._fetch_index(name))
        if entry.crates_ahead or self._crates is None:
            return
        round_trip = self._round_trip()
        if round_trip is None:
            return  # too few answers yet to tell how far upstream is: on a later request
        entry.crates_ahead = True
        if not self.fetches_crates(round_trip):
            return
        newest = newest_release(entry.index, hidden)
        if newest is not None:
            self._remember(requirements(newest))  # for the index files cargo asks for next
        wanted = self._wanted.pop(entry.name.lower(), ())
        for line in versions_to_fetch(entry.index, hidden, wanted):
            self._start(self._fetch_crate(line))

    def downloaded(self, cksum: str) -> None:
        """cargo downloaded this crate: count it as used if it was fetched ahead."""
        if self._unused and self._unused.pop(cksum, False) is None:
            metrics.cache_counter("crate", "ahead_used").inc()

    def fetches_crates(self, round_trip: float | None) -> bool:
        """Whether crates are fetched ahead from an upstream `round_trip` seconds away."""
        return self._crates is not None and distant(round_trip)

    def _remember(self, reqs: Iterable[tuple[str, str]]) -> None:
        wanted = self._wanted
        for name, req in reqs:
            known = wanted.get(name)
            if known is None:
                known = wanted[name] = []
            else:
                wanted.move_to_end(name)
            if req not in known and len(known) < MAX_REQUIREMENTS:
                known.append(req)
        while len(wanted) > MAX_CRATES_REMEMBERED:
            wanted.popitem(last=False)

    def _start(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch_index(self, name: str) -> None:
        async with self._slots:
            if self._indexes.known(name):
                return  # cargo asked for it meanwhile, or another look-ahead got it
            try:
                await self._indexes.get(name)
            except MirrorError as e:
                # Not an answer to anyone: when cargo asks, it gets the error explained.
                log.debug("look_ahead.failed", crate=name, error=str(e))
            except Exception:  # a background task: a bug must be logged, not lost
                log.exception("look_ahead.crashed", crate=name)

    async def _fetch_crate(self, line: IndexLine) -> None:
        assert self._crates is not None
        async with self._crate_slots:
            try:
                crate = await self._crates(line)  # verified against the line's cksum, then cached
            except MirrorError as e:
                log.debug(
                    "look_ahead.crate_failed", crate=line.name, version=line.vers, error=str(e)
                )
            except Exception:
                log.exception("look_ahead.crashed", crate=line.name, version=line.vers)
            else:
                if not crate.was_cached:
                    metrics.cache_counter("crate", "ahead").inc()
                    self._unused[line.cksum] = None
                    while len(self._unused) > MAX_CRATES_REMEMBERED:
                        self._unused.popitem(last=False)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
