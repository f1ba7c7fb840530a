"""HTTP/2 for cargo: the front door's answers, many at a time on one connection.

cargo (curl) offers `Upgrade: h2c` on every plain-HTTP connection. Kept on HTTP/1.1, it opens
at most two connections to a host and waits for each answer before asking the next one there,
so every millisecond a cold mirror spends per request (the extra hop to upstream, a check)
is a millisecond cargo waits, about half as many times as it asks. Upgraded, cargo asks for
everything it knows it needs at once, and the mirror decides and fetches those side by side.

A connection is upgraded only by a request the front door itself answers (mirror.http.front:
an authenticated GET of one of cargo's routes). On the upgraded connection each stream is
answered exactly as the front door answers that request over HTTP/1.1: the prepared table,
else the handlers' `Reply`; the audit, the metrics and every error are theirs. Anything else
(another route or method, a body, a query, a missing token) is refused with the stream error
HTTP_1_1_REQUIRED, on which curl asks again over HTTP/1.1, where aiohttp answers it as ever.

The protocol itself is python-hyper's `h2` (no I/O of its own): framing, HPACK, flow control
and the checks against malformed or hostile frames. This module bounds the rest: at most
MAX_STREAMS requests being decided per connection (a client that resets streams as fast as it
opens them is not read until they are decided), nothing read while the client does not read
its answers, and the same idle limit as any other connection.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from mirror import metrics
from mirror.http.cargo_routes import FILE_CHUNK, MAX_HEAD, Route, cargo_route, open_sized
from mirror.http.handlers import Handlers, etags
from mirror.http.reply import Reply, h2_fields
from mirror.request_ids import next_request_id
from mirror.serving.core import Client

log = structlog.get_logger("mirror.http")
MAX_STREAMS = 100  # requests one connection may have open, or being decided, at once
MAX_SETTINGS = 16  # in an upgrade's HTTP2-Settings: there are 7 kinds; curl sends 3
SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"


class Door(Protocol):
    """What an upgraded connection uses of the front door (mirror.http.front.FrontDoor)."""

    handlers: Handlers
    now: float  # the door's clock, refreshed every tick
    keepalive_timeout: float
    date_field: tuple[bytes, bytes]
    deciding: set[asyncio.Task[None]]  # shutdown waits for these
    connections: set[Any]  # the idle sweep closes those past their `deadline`

    async def reply(
        self, route: Route, client: Client, if_none_match: str | None, key: bytes
    ) -> Reply: ...


@dataclass(frozen=True, slots=True)
class Asked:
    """One request, as either protocol parsed it."""

    target: bytes
    authorization: bytes | None
    if_none_match: bytes | None


@dataclass(slots=True)
class _Outgoing:
    """A stream's answer bytes not yet sent (flow control), and who waits for them to go."""

    data: memoryview = field(default_factory=lambda: memoryview(b""))
    end: bool = False
    sent: asyncio.Future[None] | None = None


def worth_upgrading(setting: str, same_host: bool, upstream_far: bool) -> bool:
    """Whether to take cargo's offer of HTTP/2 (`http2: auto | always | never`).

    HTTP/2 saves cargo the round trips it waits for on two HTTP/1.1 connections, and lets the
    mirror fetch everything cargo asks for at once from a distant upstream; its framing, in
    Python, costs the mirror ~80 µs of CPU per request. For cargo on the mirror's own host,
    with upstream near too, that costs more than it saves (a warm fetch took 5 % longer),
    so `auto` keeps such a connection on HTTP/1.1.
    """
    if setting != "auto":
        return setting == "always"
    return upstream_far or not same_host


def on_same_host(transport: asyncio.BaseTransport) -> bool:
    """Whether the client connects from this host: a loopback address, or this end's own."""
    peer = transport.get_extra_info("peername")
    here = transport.get_extra_info("sockname")
    if not isinstance(peer, tuple) or not isinstance(here, tuple):
        return True  # a Unix socket
    try:
        address = ipaddress.ip_address(peer[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
    return address.is_loopback or peer[0] == here[0]


def settings_of_upgrade(value: bytes) -> bytes | None:
    """The client's HTTP2-Settings header if it decodes (base64url, RFC 7540 3.2.1) to whole
    settings, else None: then the request is answered over HTTP/1.1, as if no upgrade had
    been offered."""
    try:
        raw = base64.b64decode(value + b"=" * (-len(value) % 4), altchars=b"-_", validate=True)
    except binascii.Error:
        return None
    return value if len(raw) % 6 == 0 and len(raw) <= 6 * MAX_SETTINGS else None


class H2Door(asyncio.Protocol):
    """One upgraded connection. Made by the front door's protocol, which hands it the
    transport, the request that asked for the upgrade, and any bytes after that request."""

    def __init__(self, front: Door, transport: asyncio.Transport, client: str | None) -> None:
        self._front = front
        self._transport: asyncio.Transport | None = transport
        self._client = client  # the peer's address
        conn = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        conn.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
                SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEAD,
            },
        )
        self._conn = conn
        self._outgoing: dict[int, _Outgoing] = {}
        self._busy = 0  # requests being decided or answered, reset streams included
        # Requests read while MAX_STREAMS were being decided: started as those end.
        self._waiting: deque[tuple[int, Route, str | None, Asked]] = deque()
        self._reading_paused = False  # by us: too busy, or the client does not read
        self._writing_paused = False
        self._closing = False  # GOAWAY sent: close once nothing is being answered
        self._drained: asyncio.Future[None] | None = None
        self._flush_due = False  # a write of what h2 has ready is scheduled
        self.deadline = front.now + front.keepalive_timeout

    def start(self, settings: bytes, first: Asked, rest: bytes) -> None:
        """Answer `first` as stream 1, then read on from `rest`."""
        conn = self._conn
        conn.initiate_upgrade_connection(settings)
        self._write(SWITCHING + conn.data_to_send())
        metrics.http2_connections.inc()
        self._front.connections.add(self)
        self._request(1, first)
        if rest:
            self.data_received(rest)

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._front.connections.discard(self)
        for out in self._outgoing.values():
            _wake(out.sent)
        self._outgoing.clear()
        _wake(self._drained)

    def pause_writing(self) -> None:
        # A client that asks but does not read its answers: read nothing more from it.
        self._writing_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        _wake(self._drained)
        self._maybe_resume_reading()

    def data_received(self, data: bytes) -> None:
        try:
            events = self._conn.receive_data(data)
        except ProtocolError as e:
            # Malformed or hostile framing: GOAWAY with h2's error code, and close.
            log.debug("h2.protocol_error", client=self._client, error=str(e) or type(e).__name__)
            self._conn.close_connection(error_code=e.error_code)
            self._flush_now()
            self.close()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                self._received(event)
            elif isinstance(event, DataReceived):
                # cargo sends no bodies, and a stream with one was refused: give its bytes
                # back to the connection's window all the same.
                with contextlib.suppress(H2Error):
                    self._conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
            elif isinstance(event, StreamReset):
                out = self._outgoing.pop(event.stream_id, None)
                if out is not None:
                    _wake(out.sent)
            elif isinstance(event, WindowUpdated | RemoteSettingsChanged):
                self._pump()  # a window grew (a new initial window size grows them all)
            elif isinstance(event, ConnectionTerminated):
                self._closing = True
        self._flush()
        self._close_if_done()

    # -- what the front door's idle sweep and shutdown call -----------------------------------

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def close_when_idle(self) -> None:
        """Shutting down: no new streams (GOAWAY); close once the open ones are answered.

        The GOAWAY is written here, not by h2's `close_connection`, which also ends h2's own
        state: the streams being decided could then no longer be answered."""
        if not self._closing and self._transport is not None:
            self._closing = True
            goaway = GoAwayFrame(0)
            goaway.last_stream_id = self._conn.highest_inbound_stream_id
            self._write(self._conn.data_to_send() + goaway.serialize())
        self._close_if_done()

    def _close_if_done(self) -> None:
        """After a GOAWAY (either side's): close once every answer is written."""
        if self._closing and self._busy == 0 and not self._outgoing:
            self._flush_now()
            self.close()

    # -- requests -----------------------------------------------------------------------------

    def _received(self, event: RequestReceived) -> None:
        stream_id = event.stream_id
        method = target = authorization = if_none_match = None
        odd = event.stream_ended is None  # a body follows
        for name, value in event.headers or ():
            if name == b":method":
                method = value
            elif name == b":path":
                target = value
            elif name == b"authorization":
                odd = odd or authorization is not None  # two credentials: HTTP/1.1 decides
                authorization = value
            elif name == b"if-none-match":
                if_none_match = value if if_none_match is None else if_none_match + b"," + value
        if self._closing:  # opened after our GOAWAY: the client asks again elsewhere
            self._reset(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        if odd or method != b"GET" or target is None:
            self._refuse(stream_id)
            return
        self._request(stream_id, Asked(target, authorization, if_none_match))

    def _request(self, stream_id: int, asked: Asked) -> None:
        """Answer from the prepared table now, or decide in a task; else refuse."""
        front = self._front
        handlers = front.handlers
        admitted, client = handlers.admitted(asked.authorization, self._client)
        if not admitted:
            self._refuse(stream_id)  # the 401 (or 503) and its text come from aiohttp
            return
        self.deadline = front.now + front.keepalive_timeout
        prepared = handlers.prepared.get(asked.target)
        if prepared is not None:
            if not self._open(stream_id):
                return  # reset in the same read that opened it: nothing to answer
            inm = asked.if_none_match
            if (
                inm is not None
                and prepared.h2_not_modified is not None
                and prepared.etag in etags(inm.decode("latin-1"))
            ):
                self._answer(stream_id, prepared.h2_not_modified, b"")
                handlers.tally.count(prepared, 304, 0, client)
            else:
                self._answer(stream_id, prepared.h2_ok, prepared.body)
                handlers.tally.count(prepared, 200, len(prepared.body), client)
            return
        route = cargo_route(asked.target)
        if route is None:
            self._refuse(stream_id)
            return
        self.deadline = float("inf")
        if self._busy >= MAX_STREAMS:
            # One read can hold hundreds of requests (each opened and reset at once, say):
            # they wait their turn, and nothing more is read meanwhile.
            self._waiting.append((stream_id, route, client, asked))
            self._pause_reading()
            return
        self._start(stream_id, route, client, asked)

    def _start(self, stream_id: int, route: Route, client: str | None, asked: Asked) -> None:
        self._busy += 1
        if self._busy >= MAX_STREAMS:
            self._pause_reading()
        task = asyncio.get_running_loop().create_task(self._decide(stream_id, route, client, asked))
        self._front.deciding.add(task)
        task.add_done_callback(self._front.deciding.discard)

    async def _decide(self, stream_id: int, route: Route, who: str | None, asked: Asked) -> None:
        try:
            inm = asked.if_none_match.decode("latin-1") if asked.if_none_match else None
            client = Client(next_request_id(), who)
            reply = await self._front.reply(route, client, inm, asked.target)
            metrics.request_counter(route[0], reply.status).inc()
            if self._transport is None or not self._open(stream_id):
                return  # the client left; the request was decided (and audited) all the same
            if reply.file is not None:
                await self._answer_file(stream_id, reply)
            else:
                length = None if reply.status == 304 else len(reply.body)
                fields = h2_fields(reply.status, reply.headers, length)
                self._answer(stream_id, fields, reply.body)
        except Exception as e:
            # A bug while answering, or the crate's file broke mid-answer (its length is
            # promised): one structured line, and this stream reset (cargo retries).
            path = asked.target.decode("latin-1")
            log.error("request.cut", route=route[0], path=path, exc_info=e)
            self._reset(stream_id, ErrorCodes.INTERNAL_ERROR)
        finally:
            self._busy -= 1
            while self._waiting and self._busy < MAX_STREAMS:
                waiting = self._waiting.popleft()
                if self._open(waiting[0]):  # one the client withdrew is not decided at all
                    self._start(*waiting)
            if self._busy == 0:
                self.deadline = self._front.now + self._front.keepalive_timeout
            self._close_if_done()
            self._maybe_resume_reading()

    def _refuse(self, stream_id: int) -> None:
        """Not for this protocol: curl repeats the request over HTTP/1.1 (to aiohttp)."""
        self._reset(stream_id, ErrorCodes.HTTP_1_1_REQUIRED)

    # -- answers ------------------------------------------------------------------------------

    def _answer(self, stream_id: int, fields: list[tuple[bytes, bytes]], body: bytes) -> None:
        self._conn.send_headers(stream_id, [*fields, self._front.date_field], end_stream=not body)
        if body:
            self._send(stream_id, memoryview(body), end=True)
        self._flush()

    async def _answer_file(self, stream_id: int, reply: Reply) -> None:
        """A large crate, a chunk at a time as the client's window and buffer take them."""
        assert reply.file is not None
        handle, size = await asyncio.to_thread(open_sized, reply.file)
        try:
            if not self._open(stream_id):
                return
            fields = h2_fields(reply.status, reply.headers, size)
            self._conn.send_headers(stream_id, [*fields, self._front.date_field])
            sent = 0
            while sent < size:
                chunk = await asyncio.to_thread(handle.read, min(FILE_CHUNK, size - sent))
                if not chunk:
                    raise OSError(f"{reply.file} ended after {sent} of {size} bytes")
                if not self._open(stream_id):
                    return
                sent += len(chunk)
                out = self._send(stream_id, memoryview(chunk), end=sent >= size)
                self._flush()
                if out.data and self._transport is not None:
                    out.sent = asyncio.get_running_loop().create_future()
                    await out.sent  # the client's window opens, or the stream ends
                while self._writing_paused and self._transport is not None:
                    self._drained = asyncio.get_running_loop().create_future()
                    await self._drained
        finally:
            await asyncio.to_thread(handle.close)

    def _send(self, stream_id: int, data: memoryview, *, end: bool) -> _Outgoing:
        out = self._outgoing.setdefault(stream_id, _Outgoing())
        assert not out.data  # a file's next chunk waits until the last one went
        out.data, out.end = data, end
        self._pump()
        return out

    def _pump(self) -> None:
        """Send what the flow-control windows allow; wake a file's writer once its chunk went."""
        conn = self._conn
        for stream_id, out in list(self._outgoing.items()):
            try:
                while out.data:
                    size = min(
                        conn.local_flow_control_window(stream_id),
                        conn.max_outbound_frame_size,
                        len(out.data),
                    )
                    if size <= 0:
                        break
                    chunk, out.data = out.data[:size], out.data[size:]
                    conn.send_data(stream_id, chunk, end_stream=out.end and not out.data)
            except H2Error:  # the stream closed meanwhile (reset by the client)
                out.data = memoryview(b"")
            if not out.data:
                if out.end or not self._open(stream_id):
                    del self._outgoing[stream_id]
                _wake(out.sent)
        if not self._outgoing:
            self._close_if_done()

    def _reset(self, stream_id: int, code: ErrorCodes) -> None:
        self._outgoing.pop(stream_id, None)
        with contextlib.suppress(H2Error):  # already closed
            self._conn.reset_stream(stream_id, error_code=code)
        self._flush()

    def _open(self, stream_id: int) -> bool:
        """Whether `stream_id` can still be answered (not reset, and no GOAWAY received)."""
        if self._conn.state_machine.state is ConnectionState.CLOSED:
            return False
        stream = self._conn.streams.get(stream_id)
        return stream is not None and not stream.closed

    # -- the transport ------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write what h2 has ready at the end of this turn of the loop: answers decided in
        the same turn go out in one write (a loopback write costs tens of microseconds)."""
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_due = False
        data = self._conn.data_to_send()
        if data:
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True

    def _maybe_resume_reading(self) -> None:
        if (
            self._reading_paused
            and not self._writing_paused
            and self._busy < MAX_STREAMS
            and not self._waiting
            and self._transport is not None
        ):
            self._transport.resume_reading()
            self._reading_paused = False


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
