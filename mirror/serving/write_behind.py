"""Store writes that answered requests do not wait for, done in batches once the mirror is quiet.

A crate or an index file fresh from upstream is answered from memory; its copy in the store
serves restarts, other workers and replicas. Written one by one as they arrived, those
fsync'd writes ran on pool threads beside the requests of the same cold `cargo fetch`: about
half of the mirror's CPU went to them and to the thread switches they caused, on a machine
whose other core cargo itself keeps busy (docs/benchmarks.md, "Cold: the writes competed
with the requests"). So a write waits until none has been queued for `quiet` seconds (the
build's burst is over), and then all that are queued go in one batch on one thread; never
longer than `max_lag` after the oldest was queued, and at once when `max_bytes` are held.

Other workers see a write only once it lands. While upstream is far away, a worker that
does not find it there pays a whole round trip for it, and the look-ahead (look_ahead.py)
fetches ahead precisely what the next requests need. So, with several workers and a distant
upstream (`hurry`), a write waits at most `HURRIED_LAG`: with `workers: 2` and
upstream 20 ms away, a cold fetch took 0.92 s instead of 1.16 s; with upstream on the same
machine the earlier writes cost CPU (1.34x against 1.23x), so they wait as before there.

Until it is written, the owner answers from its pending copy (`IndexCache`'s unsaved index
files, `CrateFetcher`'s uncommitted crates). A process that dies first loses only cache
(the next request fetches again); nothing that was not verified is queued. `flush` writes
everything now: on close, and wherever a command needs the files on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import structlog

from mirror import metrics

log = structlog.get_logger("mirror.write_behind")

QUIET = 0.2  # seconds without a new write before a batch starts
MAX_LAG = 5.0  # seconds the oldest queued write may wait, however busy the mirror is
MAX_BYTES = 64 * 2**20  # bytes queued before a batch starts however busy the mirror is
HURRIED_LAG = 0.1  # seconds instead of MAX_LAG while `hurry` says other workers need them


@dataclass(slots=True)
class _Write:
    write: Callable[[], None]  # on the writer thread: the store call (logs its own failure)
    settle: Callable[[], None]  # on the event loop afterwards: drop the pending copy
    size: int


class WriteBehind:
    def __init__(
        self,
        *,
        quiet: float = QUIET,
        max_lag: float = MAX_LAG,
        max_bytes: int = MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
        hurry: Callable[[], bool] = lambda: False,
    ) -> None:
        """`hurry`: whether other workers need the writes soon (a distant upstream); then
        the oldest waits at most HURRIED_LAG."""
        self._clock = clock
        self._hurry = hurry
        self._quiet = quiet
        self._max_lag = max_lag
        self._max_bytes = max_bytes
        self._queued: dict[Hashable, _Write] = {}
        self._bytes = 0
        self._oldest = 0.0  # monotonic time the oldest queued write was queued
        self._newest = 0.0  # and the newest
        self._flushing = 0  # flush() calls waiting: write now
        self._writing = 0  # writes of the batch on the writer thread
        self._wake: asyncio.Event | None = None  # made with the task, on the loop that runs it
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        return len(self._queued)

    @property
    def hurried(self) -> bool:
        """Whether queued writes wait at most HURRIED_LAG now."""
        return self._hurry()

    def put(
        self, key: Hashable, write: Callable[[], None], settle: Callable[[], None], size: int
    ) -> None:
        """Queue `write`; one still queued under the same `key` is dropped, with its `settle`
        (only the newest copy of a thing needs to land)."""
        now = self._clock()
        replaced = self._queued.pop(key, None)
        if replaced is not None:
            self._bytes -= replaced.size
        if not self._queued:
            self._oldest = now
        self._queued[key] = _Write(write, settle, size)
        self._bytes += size
        self._newest = now
        self._report()
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(self._wake))
        elif self._bytes >= self._max_bytes and self._wake is not None:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything queued so far (and whatever is queued meanwhile), and wait."""
        self._flushing += 1
        try:
            while self._task is not None:
                if self._wake is not None:
                    self._wake.set()
                await asyncio.shield(self._task)
        finally:
            self._flushing -= 1

    async def _run(self, wake: asyncio.Event) -> None:
        try:
            while self._queued:
                wake.clear()  # before the look at the clock: a set() after it counts
                delay = self.due_in()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), delay)
                    continue
                batch = list(self._queued.values())
                self._queued.clear()
                self._bytes = 0
                self._writing = len(batch)
                try:
                    await asyncio.to_thread(_write_all, batch)
                finally:
                    for item in batch:
                        item.settle()
                    self._writing = 0
                    self._report()
        finally:
            self._task = self._wake = None

    def due_in(self) -> float:
        """Seconds until the queued writes go to the store (0 or less: now)."""
        if self._flushing or self._bytes >= self._max_bytes:
            return 0.0
        lag = min(self._max_lag, HURRIED_LAG) if self.hurried else self._max_lag
        due = min(self._newest + self._quiet, self._oldest + lag)
        return due - self._clock()

    def _report(self) -> None:
        """What a crash now would lose from the cache (the metric operators watch)."""
        metrics.store_writes_queued.set(len(self._queued) + self._writing)


def _write_all(batch: list[_Write]) -> None:
    for item in batch:
        try:
            item.write()
        except Exception:  # a bug in one write must not cost the others theirs
            log.exception("write_behind.failed")
