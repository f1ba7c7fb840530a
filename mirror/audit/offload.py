"""`ProcessAuditLog`: the same log, with the hashing and writing done in a child process.

A server logs one event per request. Preparing, hashing and appending an event costs about
15 µs of Python; done in a thread, that holds the GIL the event loop needs, and measured
warm-hit throughput drops by 40%. Here the serving process only appends to a list; every
`flush_interval` a thread pickles the batch (cheap: plain tuples) and sends it down a pipe to
a child that runs an ordinary `AuditLog`, so the chain, locking, rotation and crash recovery
are exactly the tested ones.

If the serving process dies (even `kill -9`), the child reads end-of-file, writes what it
received and exits: at most the last `flush_interval` of events is lost, as with the thread.
"""

from __future__ import annotations

import collections
import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, cast

import structlog

from mirror import logs
from mirror.audit.event import AuditEvent
from mirror.audit.index import IndexPlace
from mirror.audit.writer import AuditLog
from mirror.errors import StorageError

_log = structlog.get_logger("mirror.audit")
_FIELDS = tuple(f.name for f in AuditEvent.__dataclass_fields__.values())
ACK_TIMEOUT = 30.0  # seconds flush() waits for the child to confirm a write


class ProcessAuditLog:
    def __init__(
        self,
        directory: Path,
        *,
        flush_interval: float = 0.05,
        connection: Connection | None = None,
        index: IndexPlace | None = None,
    ) -> None:
        """`connection`: a writer that already runs (a worker's line to its `AuditHub`).
        `index`: the query index the writer keeps current (default: beside the chain)."""
        self.directory = Path(directory)
        place = index if index is not None else IndexPlace.beside(self.directory)
        self._flush_interval = flush_interval
        # A deque, not a list swapped for a new one: append and popleft are atomic, so an
        # event recorded while the shipper drains is neither lost nor sent out of order.
        self._pending: collections.deque[tuple[Any, ...]] = collections.deque()
        self._send_lock = threading.Lock()
        self._stopping = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        if connection is not None:
            self._conn = connection
        else:
            # A fresh small interpreter, not a fork of the server's memory; started with
            # subprocess, not multiprocessing's spawn, which would add a resource-tracker
            # process (13 MB) per server for semaphores we never use.
            ours, theirs = socket.socketpair()
            self._conn = Connection(ours.detach())
            self._child = subprocess.Popen(
                [
                    *(sys.executable, "-c", _CHILD_ENTRY, str(self.directory)),
                    *(str(theirs.fileno()), str(place.root), str(place.path), place.own or ""),
                    *(logs.configured or ()),  # its log lines in the server's format
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
            theirs.close()
        self._ship(ack=True)  # fail now, not later, if the directory cannot be written
        self._thread = threading.Thread(target=self._run, name="audit-ship", daemon=True)
        self._thread.start()
        self._closed = False

    def record(self, event: AuditEvent) -> None:
        # A tuple of the fields: pickling it costs a fraction of pickling the dataclass.
        self._pending.append((time.time(), *(getattr(event, f) for f in _FIELDS)))

    def flush(self) -> None:
        """Everything recorded so far is in the chain when this returns (or StorageError)."""
        self._ship(ack=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._thread.join()
        try:
            self._ship(ack=True)
        finally:
            with contextlib.suppress(OSError):
                self._conn.close()
            if self._child is not None:
                try:
                    self._child.wait(ACK_TIMEOUT)
                except subprocess.TimeoutExpired:
                    _log.error("audit.writer_stuck", pid=self._child.pid)

    def _run(self) -> None:
        while not self._stopping.wait(self._flush_interval):
            try:
                self._ship(ack=False)
            except (StorageError, OSError) as e:
                _log.error("audit.ship_failed", error=str(e))

    def _ship(self, *, ack: bool) -> None:
        with self._send_lock:
            pending = self._pending
            batch = [pending.popleft() for _ in range(len(pending))]
            if not batch and not ack:
                return
            try:
                self._conn.send((batch, ack))
                if ack:
                    if not self._conn.poll(ACK_TIMEOUT):
                        raise StorageError("the audit writer did not answer")
                    error = self._conn.recv()
                    if error:
                        raise StorageError(error)
            except (OSError, EOFError) as e:
                raise StorageError(f"the audit writer process is gone: {e}") from e


_CHILD_ENTRY = "import sys; from mirror.audit.offload import child_entry; child_entry(sys.argv[1:])"


def child_entry(argv: list[str]) -> None:
    directory, fd, root, path, own, *log_format = argv
    if log_format:
        logs.configure_logging(*log_format)
    place = IndexPlace(Path(root), Path(path), own or None)
    _child_main(Path(directory), Connection(int(fd)), place)


def _child_main(directory: Path, conn: Connection, index: IndexPlace) -> None:
    """Receive batches until the parent goes away; write each with an ordinary AuditLog."""
    # Ctrl-C, `timeout` and systemd signal the whole process group; the server decides when
    # auditing ends (it closes the pipe after its last events), so the writer ignores them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _serve(directory, [conn], index)


def _serve(directory: Path, conns: list[Connection], index: IndexPlace) -> None:
    """Write what the servers send until every one of them has closed its connection; the
    query index is kept current here too, away from the serving processes."""
    log = AuditLog(directory, index=index)
    open_conns = list(conns)
    try:
        while open_conns:
            for ready in wait(open_conns):
                conn = cast(Connection, ready)
                try:
                    batch, ack = conn.recv()
                except (EOFError, OSError):
                    open_conns.remove(conn)  # that server exited or was killed
                    continue
                for stamp, *values in batch:
                    log.record_at(stamp, AuditEvent(**dict(zip(_FIELDS, values, strict=True))))
                error = ""
                try:
                    log.flush()
                except StorageError as e:
                    error = str(e)  # the events stay queued in `log` and are retried
                if ack:
                    with contextlib.suppress(OSError):
                        conn.send(error)
    finally:
        log.close()


class AuditHub:
    """One writer for all of `serve --workers N`'s servers, run by the supervisor.

    Each worker gets its own socket pair (a shared pipe would interleave large messages);
    the supervisor writes from a thread, so no worker needs a writer process of its own
    (25 MB each) and the chain has a single writer.
    """

    def __init__(self, directory: Path, workers: int, index: IndexPlace | None = None) -> None:
        self.directory = Path(directory)
        self._place = index if index is not None else IndexPlace.beside(self.directory)
        self._pairs = [socket.socketpair() for _ in range(workers)]
        self._thread: threading.Thread | None = None

    def claim(self, worker: int) -> Connection:
        """In worker `worker` (after fork): its connection; every other end is closed."""
        mine = self._pairs[worker][1]
        for hub_end, worker_end in self._pairs:
            hub_end.close()
            if worker_end is not mine:
                worker_end.close()
        return Connection(mine.detach())

    def start(self) -> None:
        """In the supervisor, once every worker is forked."""
        conns = []
        for hub_end, worker_end in self._pairs:
            worker_end.close()  # so a worker's exit reads as end-of-file here
            conns.append(Connection(hub_end.detach()))
        self._thread = threading.Thread(
            target=_serve, args=(self.directory, conns, self._place), name="audit-hub", daemon=True
        )
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
