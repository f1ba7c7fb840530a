"""Accepting connections: every pending one each time the listening socket is readable.

uvloop's libuv (1.45 and later) accepts one connection per event-loop iteration, so that
processes sharing one listening socket take turns. Under load one iteration serves up to a
thousand connections and takes tens of milliseconds, so a burst of new connections (a build
farm starting, or wrk replacing its 1,000 connections) waited in the kernel's accept queue at
about 30 a second: p99 at 1,000 connections swung from 30 ms to 1.4 s between identical
runs. Here each worker has its own socket (SO_REUSEPORT, mirror.listeners), so taking the
whole queue at once is fair, and it is what asyncio's own event loop does.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_runner import BaseRunner

log = structlog.get_logger("mirror.http")
ACCEPT_RETRY_SECONDS = 1.0  # pause after running out of descriptors or memory, as asyncio does
# Out of descriptors or memory: accepting again at once would only spin.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class AcceptingSite(web.BaseSite):
    """An aiohttp site on a bound socket (mirror.listeners) that accepts in batches."""

    __slots__ = ("_loop", "_name", "_pending", "_resume", "_sock")

    def __init__(self, runner: BaseRunner, sock: socket.socket, *, backlog: int) -> None:
        super().__init__(runner, backlog=backlog)
        self._sock = sock
        host, port = sock.getsockname()[:2]
        self._name = f"http://{host}:{port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Task[Any]] = set()  # transports being set up
        self._resume: asyncio.TimerHandle | None = None

    @property
    def name(self) -> str:
        return self._name

    async def start(self) -> None:
        await super().start()
        self._loop = asyncio.get_running_loop()
        self._sock.setblocking(False)
        self._sock.listen(self._backlog)
        self._loop.add_reader(self._sock.fileno(), self._accept)

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
        if self._resume is not None:
            self._resume.cancel()
        self._sock.close()
        await super().stop()  # no asyncio server to close: unregisters the site

    def _accept(self) -> None:
        """Take every queued connection (at most one backlog's worth per wake-up)."""
        loop = self._loop
        assert loop is not None
        server = self._runner.server
        assert server is not None
        for _ in range(self._backlog):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while it waited in the queue
            except OSError as e:
                if e.errno not in _OUT_OF_RESOURCES:
                    raise
                log.error("accept.paused", error=e.strerror, seconds=ACCEPT_RETRY_SECONDS)
                loop.remove_reader(self._sock.fileno())
                self._resume = loop.call_later(ACCEPT_RETRY_SECONDS, self._accept_again)
                return
            conn.setblocking(False)
            task = loop.create_task(loop.connect_accepted_socket(server, conn))
            self._pending.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._set_up)

    def _accept_again(self) -> None:
        assert self._loop is not None
        self._resume = None
        self._loop.add_reader(self._sock.fileno(), self._accept)

    def _set_up(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        # A client that left before its transport existed is nobody's problem; anything
        # else is a bug worth a line.
        if error is not None and not isinstance(error, OSError):
            log.error("accept.failed", error=repr(error))
