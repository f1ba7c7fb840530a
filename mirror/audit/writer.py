"""`AuditLog`: buffer events in memory, append them to the shared hash chain in batches.

`record()` is called on every request, including warm cache hits at thousands per second
on the asyncio event loop, so it only timestamps the event and appends it to a deque
(well under a microsecond of work, no I/O). A daemon thread drains the deque every
`flush_interval` seconds, or sooner when `batch_size` events are waiting, and on
`close()`/interpreter exit.

Several worker processes share one directory and one chain. Each batch is appended under
an exclusive `flock` on DIR/audit.lock, and the previous hash and seq are read from the
tail of the newest file under that lock, so batches from different processes interleave
into one valid chain. Rotation happens under the same lock: when the next line would push
the newest file past `max_file_bytes`, the line starts the next numbered file, and its
"prev" is the hash of the last line of the previous file.

Create the `AuditLog` in each worker after forking: the flushing thread does not survive
`fork()`.

With `index` (the server's writer: an `IndexPlace`) the same thread keeps the query index
(mirror.audit.index) current, at most every `index_interval`, so the console and alerts read
fresh rows without the serving processes doing that work.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import structlog

from mirror.audit.event import (
    DROPPED_ACTION,
    RECOVERED_ACTION,
    ZERO_HASH,
    AuditEvent,
    canonical_json,
    feed_entry,
    link,
    prepare,
)
from mirror.audit.files import FEED_NAME, LOCK_NAME, chain_file_name, chain_files, read_tail
from mirror.audit.index import IndexPlace
from mirror.errors import StorageError
from mirror.files import exclusive_lock, write_atomic

_log = structlog.get_logger("mirror.audit")


class AuditLog:
    def __init__(
        self,
        directory: Path,
        *,
        max_file_bytes: int = 64 * 2**20,  # bytes per chain file before rotating
        flush_interval: float = 0.05,  # seconds between background flushes
        batch_size: int = 1000,  # events waiting that trigger an early flush
        fsync: bool = True,  # fsync each batch (power loss, not only kill -9)
        max_pending: int = 1_000_000,  # events held in memory while the disk refuses writes
        index: IndexPlace | None = None,  # keep this query index current
        index_interval: float = 0.25,  # seconds between index refreshes while writing
    ) -> None:
        self.directory = Path(directory)
        self._max_file_bytes = max_file_bytes
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._fsync = fsync
        self._max_pending = max_pending
        self._dropped = 0  # events shed by _shed_excess, not yet reported
        self._pending: collections.deque[tuple[float, AuditEvent]] = collections.deque()
        self._write_lock = threading.Lock()  # one batch at a time within this process
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._closed = False
        self._index = index.open() if index is not None else None
        self._index_interval = index_interval
        self._indexed_at = 0.0  # monotonic time of the last index refresh
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot open the audit directory: {e.strerror}") from e
        # Recover a torn tail now rather than at the first event, so the recovery is
        # recorded even if this process never logs anything.
        self._write_batch()
        self._thread = threading.Thread(target=self._run, name="audit-flush", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def record(self, event: AuditEvent) -> None:
        """Queue one event; "time" is taken now, seq/prev/hash are assigned when written."""
        self.record_at(time.time(), event)

    def record_at(self, timestamp: float, event: AuditEvent) -> None:
        """Queue one event that happened at `timestamp` (unix time), e.g. in another process."""
        self._pending.append((timestamp, event))
        if len(self._pending) >= self._batch_size:
            self._wake.set()
        if self._closed:  # late events during shutdown are written at once, not lost
            self.flush()

    def flush(self) -> None:
        """Write every event recorded so far; raises StorageError if the disk refuses."""
        self._write_batch()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._wake.set()
        self._thread.join()
        try:
            self.flush()
            self._refresh_index(force=True)
        finally:
            atexit.unregister(self.close)
            if self._index is not None:
                self._index.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            try:
                self._write_batch()
            except StorageError as e:  # events stay queued; retried next interval
                _log.error("audit.flush_failed", error=str(e), pending=len(self._pending))
            except Exception:  # a bug must not stop auditing for the rest of the run
                _log.exception("audit.flush_crashed", pending=len(self._pending))
            self._refresh_index(force=False)

    def _refresh_index(self, *, force: bool) -> None:
        """Bring the query index up to the chain (it is only a cache of the files: a failure
        is logged and retried, never a reason to stop writing the record)."""
        if self._index is None:
            return
        now = time.monotonic()
        if not force and now - self._indexed_at < self._index_interval:
            return
        self._indexed_at = now
        try:
            self._index.refresh()
        except StorageError as e:
            _log.error("audit.index_failed", error=str(e))
        except Exception:  # a bug in the index must not stop the audit writer
            _log.exception("audit.index_crashed")

    def _write_batch(self) -> None:
        with self._write_lock:
            batch: list[tuple[float, AuditEvent]] = []
            while True:
                try:
                    batch.append(self._pending.popleft())
                except IndexError:
                    break
            prepared = [_prepare_safely(event, stamp) for stamp, event in batch]
            if self._dropped:
                prepared.insert(0, _dropped_event(self._dropped))
            try:
                self._append_locked(prepared)
            except OSError as e:
                # Retried with the next batch. A write that failed half-way leaves a torn
                # line that the next attempt moves aside (recorded), so the chain stays valid;
                # events already written before the failure may then appear twice.
                self._pending.extendleft(reversed(batch))
                self._shed_excess()
                raise StorageError(f"cannot append to the audit log: {e.strerror}") from e
            self._dropped = 0

    def _shed_excess(self) -> None:
        """While the disk refuses writes, keep at most `max_pending` events in memory.

        Growing without bound would let a full disk take the whole server down. The oldest
        queued events are dropped and counted; the count is written as an audit.dropped
        event as soon as writing works again, so the loss is on the record.
        """
        while len(self._pending) > self._max_pending:
            try:
                self._pending.popleft()
            except IndexError:
                break
            self._dropped += 1

    def _append_locked(self, prepared: list[dict[str, Any]]) -> None:
        with exclusive_lock(self.directory / LOCK_NAME):
            number, size, seq, prev, recovered = self._chain_head()
            if recovered is not None:
                prepared.insert(0, recovered)
            if not prepared:
                return
            out: dict[int, list[bytes]] = {}
            feed: list[dict[str, Any]] = []
            for event_dict in prepared:
                seq += 1
                line, prev = link(event_dict, seq, prev)
                data = line.encode("ascii") + b"\n"
                if size > 0 and size + len(data) > self._max_file_bytes:
                    number, size = number + 1, 0
                out.setdefault(number, []).append(data)
                size += len(data)
                entry = feed_entry(event_dict)
                if entry is not None:
                    feed.append(entry)
            for file_number, lines in out.items():
                self._append(self.directory / chain_file_name(file_number), b"".join(lines))
            if feed:
                self._append(self.directory / FEED_NAME, _feed_lines(feed))

    def _append(self, path: Path, data: bytes) -> None:
        with open(path, "ab") as handle:
            handle.write(data)
            handle.flush()
            if self._fsync:
                os.fsync(handle.fileno())

    def _chain_head(self) -> tuple[int, int, int, str, dict[str, Any] | None]:
        """Under the lock: (newest file number, its size, last seq, last hash, recovery event).

        A torn or unreadable tail of the newest file (a writer killed mid-write) is moved
        aside and an audit.recovered event describing it is returned to be chained first:
        chaining after damaged bytes would make the whole rest of the log fail to verify,
        and dropping them silently would hide that something was lost.
        """
        files = chain_files(self.directory)
        if not files:
            return 1, 0, 0, ZERO_HASH, None
        number, path = files[-1]
        with open(path, "rb") as handle:
            tail = read_tail(handle)
        recovered = None
        if tail.fragment:
            recovered = self._move_aside(path, tail.good_end, tail.fragment)
        last = tail.last
        for _, earlier in reversed(files[:-1]):
            if last is not None:
                break
            with open(earlier, "rb") as handle:
                last = read_tail(handle).last
        if last is None:
            return number, tail.good_end, 0, ZERO_HASH, recovered
        return number, tail.good_end, int(last["seq"]), str(last["hash"]), recovered

    def _move_aside(self, path: Path, good_end: int, fragment: bytes) -> dict[str, Any]:
        damaged = path.with_name(f"{path.name}.{good_end}.damaged")
        write_atomic(damaged, fragment)  # kept before the chain file is cut: nothing is lost
        os.truncate(path, good_end)
        _log.warning("audit.recovered", file=path.name, moved_to=damaged.name)
        event = AuditEvent(
            action=RECOVERED_ACTION,
            rule="audit",
            reason=(
                f"{len(fragment)} damaged bytes at the end of {path.name} (a torn write) "
                f"were moved to {damaged.name}; the chain continues from the last good event"
            ),
            details={
                "file": path.name,
                "offset": good_end,
                "fragment_length": len(fragment),
                "fragment_sha256": hashlib.sha256(fragment).hexdigest(),
                "moved_to": damaged.name,
            },
        )
        return prepare(event, time.time())


def _prepare_safely(event: AuditEvent, stamp: float) -> dict[str, Any]:
    """Prepare an event; one whose details cannot be rendered is kept without them."""
    try:
        return prepare(event, stamp)
    except Exception as e:  # e.g. a self-referencing dict or a __str__ that raises
        broken = f"details could not be rendered: {type(e).__name__}"
        return prepare(dataclasses.replace(event, details={"audit_error": broken}), stamp)


def _dropped_event(count: int) -> dict[str, Any]:
    return prepare(
        AuditEvent(
            action=DROPPED_ACTION,
            rule="audit",
            reason=f"{count} events were dropped while the audit log could not be written",
            details={"dropped": count},
        ),
        time.time(),
    )


def _feed_lines(entries: list[dict[str, Any]]) -> bytes:
    return b"".join(canonical_json(entry).encode("ascii") + b"\n" for entry in entries)
