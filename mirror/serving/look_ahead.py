"""Looking ahead: the index files a resolver will ask for next, fetched before it asks.

cargo resolves wave by wave: it reads a crate's index file, then asks for the index files of
that crate's dependencies; over HTTP/1.1 it uses two connections. Against a cold mirror each
of those requests used to wait for its own upstream round trip, one after another. So when
cargo asks for an index file, the mirror starts fetching the index files of that crate's
dependencies (those of its newest versions; dev-dependencies are never resolved for a
dependency) a few at a time, in the background. When cargo asks for one, it is in memory or
on its way (the request joins the fetch in flight). Nothing is decided or served here: the
policy judges each file when cargo asks for it, as before.
"""

from __future__ import annotations

import asyncio

import structlog

from mirror.errors import BadRequest, MirrorError
from mirror.index import IndexFile, validate_name
from mirror.serving.index_cache import IndexCache, IndexEntry

log = structlog.get_logger("mirror.look_ahead")
CONCURRENCY = 8  # look-ahead fetches at once (of upstream_concurrency): requests come first
MAX_PER_FILE = 64  # dependency names looked up per index file, at most


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


class LookAhead:
    def __init__(self, indexes: IndexCache, *, versions: int) -> None:
        self._indexes = indexes
        self._versions = versions  # newest versions whose dependencies are fetched ahead
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()

    def after(self, entry: IndexEntry) -> None:
        """cargo asked for `entry`'s crate: fetch its dependencies' index files (once per
        content version of the file)."""
        if entry.looked_ahead:
            return
        entry.looked_ahead = True
        loop = asyncio.get_running_loop()
        for name in dependency_names(entry.index, versions=self._versions):
            if not self._indexes.known(name):
                task = loop.create_task(self._fetch(name))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _fetch(self, name: str) -> None:
        async with self._slots:
            if self._indexes.known(name):
                return  # cargo asked for it meanwhile, or another look-ahead got it
            try:
                await self._indexes.get(name)
            except MirrorError as e:
                # Not an answer to anyone: when cargo asks, it gets the error explained.
                log.debug("look_ahead.failed", crate=name, error=str(e))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
