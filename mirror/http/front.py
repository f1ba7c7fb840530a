"""The front door: every connection starts here, and warm hits never leave it.

A connection is parsed with httptools (llhttp, the parser aiohttp uses too). A request that
the table of prepared responses (mirror.http.prepared) can answer exactly, a plain HTTP/1.1 GET
with no body, is answered here with bytes decided earlier by the handlers.
Anything else, from the first request that is not such a hit (a miss, a stale entry, a
missing token, a body, a malformed line), hands the connection, with every byte not yet
answered, to aiohttp's own protocol for good: every decision and every error stays in
the handlers and the core, and this module only repeats what it was given.

The per-hit budget is what the benchmark targets allow (a small fraction of nginx's time per
request), which is why this is a bare asyncio protocol and not an aiohttp handler.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import httptools
from aiohttp import web

from mirror.http.handlers import Handlers, etags
from mirror.http.prepared import http_date
from mirror.http.routes import HANDLERS

MAX_HEAD = 8 * 1024  # bytes of request head we answer; larger goes to aiohttp and its limits
# A body up to this size is joined to its head and written as one buffer; a larger one (most
# crates) is written as it is (writev): copying 20 KB per hit cost 2-3 µs of the ~22 µs.
JOIN_MAX = 4 * 1024
CLOSE = b"Connection: close\r\n"
TICK_SECONDS = 1.0  # Date header refresh, idle sweep, audit/metrics batch


class FrontDoor:
    """The protocol factory a site serves (in place of aiohttp's `web.Server`)."""

    def __init__(self, inner: web.Server, handlers: Handlers, keepalive_timeout: float) -> None:
        self.inner = inner  # makes aiohttp's protocol for connections handed over
        self.handlers = handlers
        self.keepalive_timeout = keepalive_timeout
        self.connections: set[FastProtocol] = set()
        self.now = time.monotonic()
        self.date_line = b"Date: " + http_date() + b"\r\n\r\n"
        self._timer = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)

    def __call__(self) -> FastProtocol:
        return FastProtocol(self)

    def _tick(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)
        self.now = time.monotonic()
        self.date_line = b"Date: " + http_date() + b"\r\n\r\n"
        for conn in [c for c in self.connections if c.deadline < self.now]:
            conn.close()  # idle, or trickling headers (slowloris): same limit as aiohttp's
        self.handlers.tally.flush()

    # -- what aiohttp's runner calls on its server --------------------------------------------

    def pre_shutdown(self) -> None:
        for conn in list(self.connections):
            conn.close()  # nothing is in flight on a fast connection
        self.inner.pre_shutdown()

    async def shutdown(self, timeout: float | None = None) -> None:
        self._timer.cancel()
        self.handlers.tally.flush()  # before the app's cleanup closes the audit log
        await self.inner.shutdown(timeout)


class FastProtocol(asyncio.Protocol):
    def __init__(self, front: FrontDoor) -> None:
        self._front = front
        # None once the connection ended or was handed over (`_release`).
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._client: str | None = None
        self._reading_paused = False
        self._closed = False  # answered a `Connection: close` request
        # Checks an unfinished head as it trickles in (`_may_complete`):
        self._probe: Any = None  # an httptools parser, made for each new unfinished head
        self._probed = 0  # bytes of the unfinished head the probe has seen; 0 = a new head
        self.deadline = front.now + front.keepalive_timeout
        # Per request, filled by the parser callbacks:
        self._target = b""
        self._if_none_match: bytes | None = None
        self._authorization: bytes | None = None
        self._complete = False
        self._keep_alive = False
        self._messages = 0
        self._odd = False

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._client = peer[0] if isinstance(peer, tuple) else None
        self._front.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._front.connections.discard(self)
        self._release()

    def _release(self) -> None:
        """The parsers call back into this protocol: a cycle only the garbage collector would
        free. Broken when the connection ends or leaves, a protocol is freed at once (1,000
        connections per wrk run otherwise made full collections of 55-70 ms)."""
        self._parser = self._probe = None

    def pause_writing(self) -> None:
        # A client that sends requests but does not read answers: stop reading its requests.
        assert self._transport is not None
        self._transport.pause_reading()
        self._reading_paused = True

    def resume_writing(self) -> None:
        assert self._transport is not None
        self._transport.resume_reading()
        self._reading_paused = False

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        buffer = self._buffer + data if self._buffer else data
        start = 0
        while True:
            end = buffer.find(b"\r\n\r\n", start)
            if end < 0:
                break
            end += 4
            if end - start > MAX_HEAD or not self._answer(buffer[start:end]):
                self._hand_over(buffer[start:])
                return
            if self._closed:
                return
            start = end
        if start:
            self._probed = 0  # what is left begins a new request head
        self._buffer = buffer[start:]
        if self._buffer and not self._may_complete(self._buffer):
            self._hand_over(self._buffer)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._messages += 1

    def on_url(self, url: bytes) -> None:
        self._target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"if-none-match":
            self._if_none_match = (
                value if self._if_none_match is None else self._if_none_match + b"," + value
            )
        elif lowered == b"authorization":
            self._odd = self._authorization is not None  # two credentials: let aiohttp decide
            self._authorization = value

    def on_headers_complete(self) -> None:
        # Asked here: llhttp resets these flags once the message is complete.
        assert self._parser is not None  # it is the parser calling
        self._keep_alive = self._parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self._complete = True

    # -- the fast path ------------------------------------------------------------------------

    def _answer(self, head: bytes) -> bool:
        """Answer one request head from the table; False when aiohttp must take it."""
        self._target = b""
        self._if_none_match = self._authorization = None
        self._complete = self._keep_alive = self._odd = False
        self._messages = 0
        parser = self._parser
        assert parser is not None  # data_received stops once the connection is released
        try:
            parser.feed_data(head)
        except httptools.HttpParserUpgrade:
            # curl (so cargo) offers `Upgrade: h2c` on plain HTTP; like aiohttp, we answer in
            # HTTP/1.1. llhttp stops after an upgrade, so the next request needs a new parser.
            self._parser = httptools.HttpRequestParser(self)
        except httptools.HttpParserError:  # malformed: aiohttp answers it
            return False
        if (
            not self._complete  # a body follows
            or self._messages != 1  # one head, one request: never answer two as one
            or self._odd
            or parser.get_method() != b"GET"
            or parser.get_http_version() != "1.1"
        ):
            return False
        front = self._front
        handlers = front.handlers
        client = self._client
        if handlers.tokens is not None:
            header = self._authorization
            identity = handlers.tokens.authenticate(header.decode("latin-1") if header else None)
            if identity is None:
                return False  # the 401 and its explanation come from the handler
            client = f"{identity.name} ({client})"
        prepared = handlers.prepared.get(self._target)
        if prepared is None:
            return False
        transport = self._transport
        assert transport is not None
        # Without keep-alive (HTTP/1.1 `Connection: close`): answer, then close.
        date_line = front.date_line if self._keep_alive else CLOSE + front.date_line
        inm = self._if_none_match
        if (
            inm is not None
            and prepared.not_modified is not None
            and prepared.etag in etags(inm.decode("latin-1"))
        ):
            transport.write(prepared.not_modified + date_line)
            handlers.tally.count(prepared, 304, 0, client)
        else:
            body = prepared.body
            if len(body) <= JOIN_MAX:
                transport.write(prepared.ok + date_line + body)
            else:
                transport.writelines((prepared.ok, date_line, body))
            handlers.tally.count(prepared, 200, len(body), client)
        if not self._keep_alive:
            transport.close()  # once the answer is flushed; anything sent after it is dropped
            self._closed = True
        self.deadline = front.now + front.keepalive_timeout
        return True

    def _may_complete(self, partial: bytes) -> bool:
        """Whether an unfinished head can still become a request this door answers.

        A head with bare-LF line ends, or bytes that are no HTTP at all, never gets its
        CRLFCRLF: waiting for one would leave the client unanswered until the idle limit.
        llhttp (strict, as aiohttp's) rejects such input at its first bad byte, so each new
        byte of an unfinished head is fed to a probe parser, and the first rejection hands the
        connection to aiohttp, which answers 400 at once.
        """
        if len(partial) > MAX_HEAD:
            return False
        if self._probed == 0:
            self._probe = httptools.HttpRequestParser(_Unobserved())
        try:
            self._probe.feed_data(partial[self._probed :])
        except httptools.HttpParserError:
            return False
        self._probed = len(partial)
        return True

    def _hand_over(self, unanswered: bytes) -> None:
        """From now on aiohttp serves this connection, starting with `unanswered`."""
        transport = self._transport
        assert transport is not None
        self._front.connections.discard(self)
        if transport.is_closing():
            # The client reset the connection while we answered an earlier pipelined request:
            # nobody is left to answer, and aiohttp's protocol would hear of the loss before
            # its request loop ever ran (an unretrieved AssertionError per connection).
            return
        self._release()
        protocol = self._front.inner()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._reading_paused:
            transport.resume_reading()
        if unanswered:
            protocol.data_received(unanswered)


class _Unobserved:
    """A parser protocol without callbacks: the probe only asks whether the bytes are HTTP."""


class MirrorRunner(web.AppRunner):
    """An AppRunner whose sites accept connections through the front door."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        # One idle limit for both protocols: the front door's and aiohttp's after a hand-over.
        kwargs.setdefault("keepalive_timeout", app[HANDLERS].settings.keepalive_timeout)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        inner = await super()._make_server()
        keepalive = float(self._kwargs["keepalive_timeout"])
        front: Any = FrontDoor(inner, self.app[HANDLERS], keepalive)
        return cast(web.Server, front)
