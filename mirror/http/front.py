"""The front door: every connection starts here, and cargo's requests never leave it.

A connection is parsed with httptools (llhttp, the parser aiohttp uses too). A plain HTTP/1.1
GET with no body is answered here:
- a request the table of prepared responses (mirror.http.prepared) can answer exactly, with
  bytes decided earlier by the handlers;
- any other request for one of cargo's routes (config.json, an index file, a download), by
  asking the same handlers for a `Reply` (mirror.http.reply) and writing it. While that
  request is decided, the connection is not read: pipelined requests wait their turn.
A request it answers that offers `Upgrade: h2c` (as cargo's always does) moves the connection
to HTTP/2 (mirror.http.h2c), where the same answers go out many at a time.
Anything else (another route, a missing token, a body, HTTP/1.0, HEAD, a query or an escaped
target, a malformed line) hands the connection, with every byte not yet answered, to
aiohttp's own protocol for good. Every decision and every error stays in the handlers, the
edge (mirror.http.edge) and the core; this module only writes what they return.

The per-hit budget is what the benchmark targets allow (a small fraction of nginx's time per
request), which is why this is a bare asyncio protocol and not an aiohttp handler.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any, cast

import httptools
import structlog
from aiohttp import web

from mirror import metrics
from mirror.http.cargo_routes import FILE_CHUNK, MAX_HEAD, Route, cargo_route, open_sized
from mirror.http.edge import crate_of_index_path, failure
from mirror.http.h2c import (
    Asked,
    H2Door,
    on_same_host,
    settings_of_upgrade,
    worth_upgrading,
)
from mirror.http.handlers import Handlers, etags
from mirror.http.prepared import http_date
from mirror.http.reply import Reply, response_head
from mirror.http.routes import HANDLERS
from mirror.request_ids import next_request_id
from mirror.serving.core import Client

log = structlog.get_logger("mirror.http")
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
        self.connections: set[FastProtocol | H2Door] = set()
        self.deciding: set[asyncio.Task[None]] = set()  # cargo requests being decided
        self.now = time.monotonic()
        self._date()
        self._timer = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)

    def __call__(self) -> FastProtocol:
        return FastProtocol(self)

    def _tick(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)
        self.now = time.monotonic()
        self._date()
        for conn in [c for c in self.connections if c.deadline < self.now]:
            conn.close()  # idle, or trickling headers (slowloris): same limit as aiohttp's
        self.handlers.tally.flush()

    def _date(self) -> None:
        date = http_date()
        self.date_line = b"Date: " + date + b"\r\n\r\n"
        self.date_field = (b"date", date)  # the same, for HTTP/2

    # -- what aiohttp's runner calls on its server --------------------------------------------

    def pre_shutdown(self) -> None:
        for conn in list(self.connections):
            conn.close_when_idle()  # a request being decided is answered first
        self.inner.pre_shutdown()

    async def shutdown(self, timeout: float | None = None) -> None:
        self._timer.cancel()
        if self.deciding:
            await asyncio.wait(self.deciding, timeout=timeout)
        for conn in list(self.connections):
            conn.close()
        self.handlers.tally.flush()  # before the app's cleanup closes the audit log
        await self.inner.shutdown(timeout)

    async def reply(
        self, route: Route, client: Client, if_none_match: str | None, key: bytes
    ) -> Reply:
        """Ask the handlers for `route`; whatever it raises becomes the edge's reply."""
        handlers = self.handlers
        crate, version = "", None
        try:
            if route[0] == "index":
                crate = crate_of_index_path(route[1])
                return await handlers.index_reply(route[1], client, if_none_match, key)
            if route[0] == "download":
                crate, version = route[1], route[2]
                return await handlers.download_reply(crate, version, client, key)
            return await handlers.config_reply(key)
        except Exception as e:
            return failure(
                route[0],
                e,
                handlers.core,
                request_id=client.request_id,
                who=client.who,
                path=key.decode("ascii"),
                crate=crate,
                version=version,
            )


@dataclass(frozen=True, slots=True)
class _Asked:
    """A request being decided, as parsed before the connection moved on."""

    route: Route
    client: str | None  # who, for the audit log: the token's name and the address
    if_none_match: str | None
    target: bytes
    keep_alive: bool


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
        self._deciding = False  # a request is with the handlers: read nothing until answered
        self._close_when_idle = False  # shutting down: close once the answer is written
        self._drained: asyncio.Future[None] | None = None  # set while writing waits
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
        self._upgrade: bytes | None = None  # the Upgrade header, if any
        self._h2_settings: bytes | None = None  # HTTP2-Settings (b"" if sent twice)
        self._switch: tuple[bytes, Asked] | None = None  # upgrading: settings, first request

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._client = peer[0] if isinstance(peer, tuple) else None
        self._front.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._front.connections.discard(self)
        self._release()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)  # a large crate's writer stops at is_closing()

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
        if not self._deciding:
            self._transport.resume_reading()
        self._reading_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        if self._deciding:  # arrived before reading paused: answered after the current one
            self._buffer += data
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
            if self._switch is not None:
                self._upgrade_to_h2(self._switch, buffer[end:])
                return
            if self._closed:
                return
            start = end
            if self._deciding:
                self._buffer, self._probed = buffer[start:], 0
                return
        if start:
            self._probed = 0  # what is left begins a new request head
        self._buffer = buffer[start:]
        if self._buffer and not self._may_complete(self._buffer):
            self._hand_over(self._buffer)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def close_when_idle(self) -> None:
        if self._deciding:
            self._close_when_idle = True
        else:
            self.close()

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
        elif lowered == b"upgrade":
            self._upgrade = value
        elif lowered == b"http2-settings":
            self._h2_settings = value if self._h2_settings is None else b""

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
        self._upgrade = self._h2_settings = None
        self._complete = self._keep_alive = self._odd = False
        self._messages = 0
        parser = self._parser
        assert parser is not None  # data_received stops once the connection is released
        upgrade = False
        try:
            parser.feed_data(head)
        except httptools.HttpParserUpgrade:
            # curl (so cargo) offers `Upgrade: h2c` on plain HTTP: taken below for a request
            # this door answers, else answered in HTTP/1.1 as aiohttp does. llhttp stops
            # after an upgrade, so the next request needs a new parser.
            self._parser = httptools.HttpRequestParser(self)
            upgrade = True
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
        admitted, client = handlers.admitted(self._authorization, self._client)
        if not admitted:
            return False  # the 401 and its explanation come from the handler
        prepared = handlers.prepared.get(self._target)
        route = cargo_route(self._target) if prepared is None else None
        if prepared is None and route is None:
            return False
        if upgrade and self._keep_alive and self._h2c_offered():
            return True  # answered as HTTP/2's stream 1 (data_received switches)
        if route is not None:
            self._decide(route, client)
            return True
        assert prepared is not None
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
            _send(transport, prepared.ok + date_line, body)
            handlers.tally.count(prepared, 200, len(body), client)
        if not self._keep_alive:
            transport.close()  # once the answer is flushed; anything sent after it is dropped
            self._closed = True
        self.deadline = front.now + front.keepalive_timeout
        return True

    def _h2c_offered(self) -> bool:
        """Whether the request offers HTTP/2 as cargo does; if so, it is kept in `_switch`."""
        offered = self._upgrade is not None and b"h2c" in [
            token.strip().lower() for token in self._upgrade.split(b",")
        ]
        settings = settings_of_upgrade(self._h2_settings) if self._h2_settings else None
        if not offered or settings is None:
            return False
        assert self._transport is not None
        handlers = self._front.handlers
        same_host = on_same_host(self._transport)
        if not worth_upgrading(handlers.settings.http2, same_host, handlers.core.upstream_far()):
            return False
        asked = Asked(self._target, self._authorization, self._if_none_match)
        self._switch = (settings, asked)
        return True

    def _upgrade_to_h2(self, switch: tuple[bytes, Asked], rest: bytes) -> None:
        """From now on this connection speaks HTTP/2, starting with the request that asked."""
        transport = self._transport
        assert transport is not None
        self._front.connections.discard(self)
        self._release()
        self._closed = True  # nothing more for this protocol, should the loop still call it
        protocol = H2Door(self._front, transport, self._client)
        transport.set_protocol(protocol)
        if self._reading_paused:
            protocol.pause_writing()  # the client still does not read: nor do we
        protocol.start(*switch, rest)

    # -- requests the handlers decide now ------------------------------------------------------

    def _decide(self, route: Route, client: str | None) -> None:
        """Start deciding a cargo request; nothing more is read until it is answered."""
        transport = self._transport
        assert transport is not None
        self._deciding = True
        self.deadline = math.inf  # not idle: the idle sweep must not close it meanwhile
        transport.pause_reading()
        inm = self._if_none_match.decode("latin-1") if self._if_none_match is not None else None
        asked = _Asked(route, client, inm, self._target, self._keep_alive)
        task = asyncio.get_running_loop().create_task(self._answer_or_cut(asked))
        front = self._front
        front.deciding.add(task)
        task.add_done_callback(front.deciding.discard)

    async def _answer_or_cut(self, asked: _Asked) -> None:
        try:
            await self._answer_decided(asked)
        except Exception as e:
            # A bug while writing: one structured line, and a connection that cannot hang
            # (it is not read while deciding, and the idle sweep skips it).
            path = asked.target.decode("ascii")
            log.error("request.crashed", route=asked.route[0], path=path, exc_info=e)
            if self._transport is not None:
                self._transport.abort()

    async def _answer_decided(self, asked: _Asked) -> None:
        front = self._front
        route, target = asked.route, asked.target
        client = Client(next_request_id(), asked.client)
        reply = await front.reply(route, client, asked.if_none_match, target)
        metrics.request_counter(route[0], reply.status).inc()
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # the client left; the request was decided (and audited) all the same
        keep_alive = asked.keep_alive and not self._close_when_idle
        date_line = front.date_line if keep_alive else CLOSE + front.date_line
        try:
            if reply.file is not None:
                await self._write_file(reply, date_line)
            else:
                length = None if reply.status == 304 else len(reply.body)  # 304: no body
                head = response_head(reply.status, reply.headers, length) + date_line
                _send(transport, head, reply.body)
        except OSError as e:
            # The crate's file went away or broke mid-answer: its length is promised, so the
            # only honest end is to cut the connection (cargo retries).
            log.error("request.cut", route=route[0], path=target.decode("ascii"), error=str(e))
            transport.abort()
            return
        if not keep_alive:
            transport.close()
            self._closed = True
            return
        self._deciding = False
        self.deadline = front.now + front.keepalive_timeout
        if not self._reading_paused:
            transport.resume_reading()
        if self._buffer:
            pending, self._buffer = self._buffer, b""
            self.data_received(pending)

    async def _write_file(self, reply: Reply, date_line: bytes) -> None:
        """A large crate, in chunks as the client takes them (never all in memory)."""
        assert reply.file is not None and self._transport is not None
        transport = self._transport
        handle, size = await asyncio.to_thread(open_sized, reply.file)
        try:
            transport.write(response_head(reply.status, reply.headers, size) + date_line)
            sent = 0
            while sent < size and not transport.is_closing():
                chunk = await asyncio.to_thread(handle.read, min(FILE_CHUNK, size - sent))
                if not chunk:
                    raise OSError(f"{reply.file} ended after {sent} of {size} bytes")
                transport.write(chunk)
                sent += len(chunk)
                if self._reading_paused:  # the client's buffer is full: wait until it reads
                    self._drained = asyncio.get_running_loop().create_future()
                    await self._drained
        finally:
            await asyncio.to_thread(handle.close)

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


def _send(transport: asyncio.Transport, head: bytes, body: bytes) -> None:
    """A head and its body: joined when small, side by side (writev) when not."""
    if len(body) <= JOIN_MAX:
        transport.write(head + body)
    else:
        transport.writelines((head, body))


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
