"""The front door: cargo's requests are answered here, repeated from prepared responses or
decided by the handlers; anything else goes to aiohttp.

Which protocol answered is visible in the `Server` header: `crate-mirror` from the front door,
aiohttp's own after a hand-over. Whether an answer was decided now or repeated is counted by
wrapping the handlers' reply methods (`_decisions`). A connection stays with aiohttp once it
was handed over, so these clients open a new connection per request (`fresh_connections=True`).
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from mirror.audit.query import read_events
from mirror.http.handlers import Handlers
from mirror.http.prepared import PreparedTable, prepared_response
from mirror.http.routes import HANDLERS
from mirror.index import index_path
from mirror.sources.policy_files import PolicyFiles
from tests.fixtures.pytest_plugin import MirrorClient
from tests.fixtures.upstream import FakeUpstream

FAST = "crate-mirror"
ITOA = "/index/" + index_path("itoa")


def _mirror(client: TestClient[Any, Any]) -> Handlers:
    handlers: Handlers = client.app[HANDLERS]
    return handlers


def _decisions(client: TestClient[Any, Any]) -> list[str]:
    """The routes the handlers decide from now on (a repeat from the table is not one)."""
    handlers, calls = _mirror(client), []
    for name in ("config_reply", "index_reply", "download_reply"):
        original = getattr(handlers, name)

        async def counted(*args: Any, _original: Any = original, _name: str = name) -> Any:
            calls.append(_name.removesuffix("_reply"))
            return await _original(*args)

        setattr(handlers, name, counted)
    return calls


class Raw:
    """One client connection with exact bytes on the wire (pipelining, odd requests)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, client: TestClient[Any, Any]) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def response(self, *, to_head: bool = False) -> tuple[int, dict[str, str], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        length = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(length) if length and not to_head else b""
        return int(status_line.split()[1]), headers, body

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def _get(target: str, *extra: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: mirror", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _warm(
    client: TestClient[Any, Any], target: str, headers: dict[str, str] | None = None
) -> None:
    resp = await client.get(target, headers=headers)
    assert resp.status == 200
    await resp.read()


async def test_second_identical_request_is_answered_by_the_front_door(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, fresh_connections=True)
    decided = _decisions(client)
    first = await client.get(ITOA)
    first_body = await first.read()
    assert (first.headers["Server"], decided) == (FAST, ["index"])  # decided by the handler
    second = await client.get(ITOA)
    assert (second.headers["Server"], decided) == (FAST, ["index"])  # repeated
    assert second.status == 200
    assert await second.read() == first_body
    for header in ("ETag", "Cache-Control", "Content-Type"):
        assert second.headers[header] == first.headers[header]
    assert "Date" in second.headers
    assert small_upstream.requests.count("itoa") == 1


async def test_if_none_match_gets_a_304_from_the_front_door(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, fresh_connections=True)
    await _warm(client, ITOA)
    etag = (await client.get(ITOA)).headers["ETag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}'):
        resp = await client.get(ITOA, headers={"If-None-Match": header})
        assert (resp.status, resp.headers["Server"]) == (304, FAST)
        assert resp.headers["ETag"] == etag
        assert await resp.read() == b""
    resp = await client.get(ITOA, headers={"If-None-Match": '"something-else"'})
    assert resp.status == 200


async def test_small_crate_download_and_config_are_repeated(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, fresh_connections=True)
    version = small_upstream.registry.versions("itoa")[-1]
    url = f"/api/v1/crates/itoa/{version}/download"
    first = await client.get(url)
    body = await first.read()
    second = await client.get(url)
    assert (second.status, second.headers["Server"]) == (200, FAST)
    assert second.headers["Content-Type"] == "application/x-tar"
    assert await second.read() == body
    assert small_upstream.requests.count("download") == 1
    await _warm(client, "/index/config.json")
    config = await client.get("/index/config.json")
    assert config.headers["Server"] == FAST
    assert b'"dl"' in await config.read()


async def test_a_megabyte_crate_is_repeated_too_so_its_connection_stays_fast(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    """winapi, libc, tokio are 0.6-1.2 MB: answered by a handler, each handed its connection to
    aiohttp for the rest of a warm `cargo fetch` (cargo keeps two connections)."""
    blob = random.Random(1).randbytes(1200 * 1024)  # incompressible, like winapi's 1.2 MB
    small_upstream.registry.add_crate("big", "1.0.0", {"src/blob.bin": blob})
    client = await mirror_client(small_upstream, fresh_connections=True)
    url = "/api/v1/crates/big/1.0.0/download"
    first = await client.get(url)
    body = await first.read()
    assert len(body) > 1024 * 1024
    second = await client.get(url)
    assert (second.status, second.headers["Server"]) == (200, FAST)
    assert await second.read() == body


async def test_a_policy_change_takes_effect_on_the_next_request(
    small_upstream: FakeUpstream, mirror_client: MirrorClient, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 2\n")
    client = await mirror_client(small_upstream, fresh_connections=True, policy=policy)
    await _warm(client, ITOA)
    assert (await client.get(ITOA)).headers["Server"] == FAST
    policy.write_text(
        "version: 2\nrules:\n  deny: {mode: block}\ndeny:\n  - crate: itoa\n    reason: testing\n"
    )
    gate = _mirror(client).core.gate
    gate.replace_policy(PolicyFiles(policy).load(), gate.capabilities)
    decided = _decisions(client)
    resp = await client.get(ITOA)
    assert resp.status == 403
    assert "itoa" in await resp.text()
    resp = await client.get(ITOA)  # a block is never prepared: every one explains itself
    assert resp.status == 403 and "itoa" in await resp.text()
    assert decided == ["index", "index"]


async def test_an_expired_entry_goes_back_to_upstream(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, fresh_connections=True, index_ttl=0.3)
    await _warm(client, ITOA)
    decided = _decisions(client)
    assert (await client.get(ITOA)).headers["Server"] == FAST
    await asyncio.sleep(0.4)
    resp = await client.get(ITOA)
    assert resp.status == 200 and decided == ["index"]
    assert small_upstream.requests.count("it/oa/itoa") == 2  # revalidated


async def test_pipelined_hit_miss_hit_are_answered_in_order(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    """A miss is decided while the requests behind it wait; none is lost or reordered."""
    client = await mirror_client(small_upstream, fresh_connections=True)
    await _warm(client, ITOA)
    decided = _decisions(client)
    raw = await Raw.open(client)
    ryu = "/index/" + index_path("ryu")
    raw.send(_get(ITOA) + _get(ryu) + _get(ITOA) + _get("/index/no/su/nosuchcrate"))
    answers = [await raw.response() for _ in range(4)]
    await raw.close()
    assert [a[0] for a in answers] == [200, 200, 200, 404]
    assert all(a[1]["server"] == FAST for a in answers)  # never handed over
    assert decided == ["index", "index"]  # ryu and the missing crate; itoa was repeated
    assert answers[0][2] == answers[2][2]
    assert b'"name":"ryu"' in answers[1][2]
    assert b"nosuchcrate" in answers[3][2]


async def test_requests_split_anywhere_are_answered_in_order(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    """Pipelined hits cut into random pieces (inside a head, inside the blank line): each is
    answered once, in order, and a later miss still reaches the handlers intact."""
    client = await mirror_client(small_upstream, fresh_connections=True)
    await _warm(client, ITOA)
    expected = await (await client.get(ITOA)).read()
    rng = random.Random(7)
    for _ in range(20):
        hits = rng.randint(1, 6)
        stream = _get(ITOA) * hits + _get("/index/" + index_path("ryu"))
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 12)))
        raw = await Raw.open(client)
        for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            raw.send(stream[start:end])
            await raw.writer.drain()
            await asyncio.sleep(0)
        answers = [await raw.response() for _ in range(hits + 1)]
        await raw.close()
        assert all(a[0] == 200 and a[2] == expected for a in answers[:hits])
        assert answers[-1][0] == 200 and b'"name":"ryu"' in answers[-1][2]


async def test_requests_the_front_door_does_not_repeat_go_to_the_handlers(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, fresh_connections=True)
    await _warm(client, ITOA)
    unusual = [
        (_get(ITOA, "Content-Length: 3") + b"abc", 413),  # a body: no route takes one
        (b"GET " + ITOA.encode() + b" HTTP/1.0\r\nHost: x\r\n\r\n", 200),  # HTTP/1.0
        (b"HEAD " + ITOA.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        (_get(ITOA + "?x=1"), 200),
    ]
    for request, expected in unusual:
        raw = await Raw.open(client)
        raw.send(request)
        status, headers, _ = await raw.response(to_head=request.startswith(b"HEAD"))
        await raw.close()
        assert status == expected, request
        assert headers["server"] != FAST, request


async def test_malformed_and_oversized_requests_get_aiohttps_4xx(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, fresh_connections=True)
    await _warm(client, ITOA)
    for request in (
        b"GET /index/x HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET " + ITOA.encode() + b" HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
        b"GET " + ITOA.encode() + b" HTTP/1.1\r\nX-Big: " + b"a" * 20000,  # never ends
    ):
        raw = await Raw.open(client)
        raw.send(request)
        status, _, _ = await raw.response()
        await raw.close()
        assert 400 <= status < 500


async def test_h2c_upgrade_offer_is_answered_in_http_1_1(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    """curl, so cargo, offers `Upgrade: h2c` on plain HTTP; the hit stays on the fast path."""
    client = await mirror_client(small_upstream, fresh_connections=True)
    await _warm(client, ITOA)
    raw = await Raw.open(client)
    upgrade = ("Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAAQ")
    raw.send(_get(ITOA, *upgrade))
    raw.send(_get(ITOA, *upgrade))
    for _ in range(2):
        status, headers, _ = await raw.response()
        assert (status, headers["server"]) == (200, FAST)
    await raw.close()


async def test_tokens_are_checked_on_the_fast_path(
    small_upstream: FakeUpstream, mirror_client: MirrorClient, tmp_path: Path
) -> None:
    from mirror.sources.tokens import TokenStore

    tokens = TokenStore(tmp_path / "tokens.json")
    secret = tokens.add("alice")
    client = await mirror_client(small_upstream, fresh_connections=True, auth_tokens=tokens.path)
    auth = {"Authorization": secret}
    await _warm(client, ITOA, auth)
    assert (await client.get(ITOA, headers=auth)).headers["Server"] == FAST
    for headers in ({}, {"Authorization": secret + "x"}):
        resp = await client.get(ITOA, headers=headers)
        assert resp.status == 401
        assert "a valid token is required" in await resp.text()


async def test_fast_hits_are_audited_as_counted_allows(
    small_upstream: FakeUpstream, mirror_client: MirrorClient, tmp_path: Path
) -> None:
    client = await mirror_client(small_upstream, fresh_connections=True)
    served_before = await _served(client)
    await _warm(client, ITOA)
    for _ in range(5):
        assert (await client.get(ITOA)).headers["Server"] == FAST
    events = [e for e in _itoa_events(client) if e["action"] == "allow"]
    assert len(events) == 2  # the handler's own, then one for the five repeats
    counted = events[-1]
    assert counted["details"]["count"] == 5
    assert counted["client"] == "127.0.0.1"
    assert counted["route"] == "index"
    assert await _served(client) == served_before + 6  # /metrics counts the front door's too


def _itoa_events(client: TestClient[Any, Any]) -> list[dict[str, Any]]:
    """itoa's audit events so far, the front door's batched counts included."""
    mirror = _mirror(client)
    mirror.tally.flush()
    mirror.core.gate.audit.flush()
    return [e for e in read_events(mirror.settings.audit_directory) if e.get("crate") == "itoa"]


async def _served(client: TestClient[Any, Any]) -> float:
    text = await (await client.get("/metrics")).text()
    line = 'crate_mirror_requests_total{route="index",status="200"} '
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].removeprefix(line)) if found else 0.0


async def test_idle_connections_are_closed_after_the_keepalive_timeout(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, fresh_connections=True, keepalive_timeout=1.0)
    raw = await Raw.open(client)
    raw.send(b"GET /index/it/oa/itoa HTTP/1.1\r\nHost: x\r\n")  # never finished
    started = time.monotonic()
    assert await asyncio.wait_for(raw.reader.read(), 5) == b""
    assert time.monotonic() - started < 3.5
    await raw.close()


def test_prepared_table_keeps_to_its_budget_and_drops_what_is_no_longer_true() -> None:
    valid = {"a": True}
    table = PreparedTable(budget=3000)
    table.put(b"/a", prepared_response("index", b"x" * 1000, {}, lambda: valid["a"]))
    table.put(b"/b", prepared_response("index", b"y" * 1000, {}, lambda: True))
    assert table.get(b"/a") is not None
    table.put(b"/c", prepared_response("index", b"z" * 1000, {}, lambda: True))
    assert table.get(b"/a") is None  # the oldest went to make room
    assert table.get(b"/b") is not None and table.get(b"/c") is not None
    table.put(b"/big", prepared_response("index", b"w" * 5000, {}, lambda: True))
    assert table.get(b"/big") is None  # larger than the whole budget: never held
    valid["a"] = False
    table.put(b"/a", prepared_response("index", b"x", {}, lambda: valid["a"]))
    assert table.get(b"/a") is None and len(table) == 2


class _Transport:
    """Just enough of an asyncio transport to watch the protocol's flow control."""

    def __init__(self) -> None:
        self.reading = True
        self.protocol: Any = None
        self.written: list[bytes] = []

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else None

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


async def test_a_client_that_does_not_read_answers_stops_being_read(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    """Writes beyond the high-water mark pause reading; a hand-over resumes it for aiohttp."""
    from mirror.http.front import FrontDoor

    client = await mirror_client(small_upstream, fresh_connections=True)
    await _warm(client, ITOA)
    front = client.server.runner.server  # type: ignore[union-attr]
    assert isinstance(front, FrontDoor)
    transport = _Transport()
    protocol = front()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.pause_writing()
    assert not transport.reading
    protocol.data_received(_get(ITOA))  # already received: still answered
    assert transport.written and transport.written[0].startswith(b"HTTP/1.1 200 OK")
    protocol.data_received(_get("/healthz"))  # not a cargo route: aiohttp takes over
    assert transport.protocol is not None and transport.protocol is not protocol
    assert transport.reading  # aiohttp does its own flow control from here
    transport.protocol.connection_lost(None)


def _front(client: TestClient[Any, Any]) -> Any:
    from mirror.http.front import FrontDoor

    front = client.server.runner.server  # type: ignore[union-attr]
    assert isinstance(front, FrontDoor)
    return front


async def test_a_cold_cargo_session_never_leaves_the_front_door(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    """config.json, an index file and a download the mirror has never seen, pipelined on one
    connection as cargo sends them: decided once each, answered in order, and the repeats on
    the same connection come from the table. aiohttp never sees the connection."""
    client = await mirror_client(small_upstream, fresh_connections=True)
    decided = _decisions(client)
    version = small_upstream.registry.versions("itoa")[-1]
    download = f"/api/v1/crates/itoa/{version}/download"
    raw = await Raw.open(client)
    session = _get("/index/config.json") + _get(ITOA) + _get(download)
    raw.send(session + session)
    answers = [await raw.response() for _ in range(6)]
    await raw.close()
    assert [a[0] for a in answers] == [200] * 6
    assert all(a[1]["server"] == FAST for a in answers)
    assert decided == ["config", "index", "download"]
    assert [a[2] for a in answers[:3]] == [a[2] for a in answers[3:]]
    assert answers[2][2] == small_upstream.registry.crate_bytes("itoa", version)
    assert answers[1][1]["etag"] and answers[1][1]["content-type"] == "text/plain"
    assert small_upstream.requests.count("download") == 1
    allows = [e for e in _itoa_events(client) if e["route"] == "download"]
    assert [(e["action"], e["client"]) for e in allows] == [("allow", "127.0.0.1")] * 2


async def test_errors_decided_at_the_front_door_read_as_the_handlers_wrote_them(
    small_upstream: FakeUpstream, mirror_client: MirrorClient, tmp_path: Path
) -> None:
    """The same failure mapping (mirror.http.edge) whichever protocol carries the request:
    compared here with the answer an HTTP/1.0 request gets through aiohttp."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 2\nrules:\n  deny: {mode: block}\ndeny:\n  - crate: ryu\n    reason: testing\n"
    )
    client = await mirror_client(small_upstream, fresh_connections=True, policy=policy)
    cases = [
        ("/index/no/su/nosuchcrate", 404),
        ("/index/xx/yy/itoa", 400),  # not itoa's directory
        ("/index/" + index_path("ryu"), 403),  # denied: the body explains and says how
        ("/api/v1/crates/itoa/1..0/download", 400),
        ("/api/v1/crates/itoa/99.0.0/download", 404),
    ]
    for target, status in cases:
        answers = []
        for request in (_get(target), _get(target).replace(b"HTTP/1.1", b"HTTP/1.0", 1)):
            raw = await Raw.open(client)
            raw.send(request)
            answers.append(await raw.response())
            await raw.close()
        (front_status, front_headers, front_body), (aio_status, aio_headers, aio_body) = answers
        assert (front_status, aio_status) == (status, status), target
        assert (front_headers["server"], aio_headers["server"]) != (FAST, FAST)
        assert front_headers["server"] == FAST
        assert front_headers["content-type"] == aio_headers["content-type"]

        def without_id(body: bytes) -> bytes:
            return re.sub(rb"[0-9a-f]{16}", b"<request id>", body)

        assert without_id(front_body) == without_id(aio_body), target
        assert front_body.endswith(b"\n") and b"<" not in front_body


async def test_a_large_crate_is_streamed_in_order_to_a_slow_reader(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    """Above `hot_cache_max_file` a crate is never read into memory: the front door writes
    it from its file as the client reads, then answers what was pipelined behind it."""
    blob = random.Random(2).randbytes(6 * 1024 * 1024)  # incompressible
    small_upstream.registry.add_crate("big", "1.0.0", {"src/blob.bin": blob})
    client = await mirror_client(small_upstream, fresh_connections=True, hot_cache_max_file=65536)
    expected = small_upstream.registry.crate_bytes("big", "1.0.0")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # a slow, small window
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", client.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**24)
    raw = Raw(reader, writer)
    for _ in range(2):  # decided, then decided again: a large crate is never prepared
        raw.send(_get("/api/v1/crates/big/1.0.0/download") + _get(ITOA))
        await asyncio.sleep(0.3)  # the server's buffers fill; it must wait, not drop
        status, headers, body = await raw.response()
        assert (status, headers["server"], len(body)) == (200, FAST, len(expected))
        assert body == expected
        status, _, itoa = await raw.response()
        assert status == 200 and b'"name":"itoa"' in itoa
    await raw.close()
    assert not _front(client).deciding


async def test_a_client_that_leaves_while_its_request_is_decided(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    """The request is still decided and audited; nothing is written to the dead connection,
    nothing is left running, and the next client gets the answer from memory."""
    client = await mirror_client(small_upstream, fresh_connections=True)
    version = small_upstream.registry.versions("itoa")[-1]
    download = f"/api/v1/crates/itoa/{version}/download"
    small_upstream.faults.add("delay", match="download", times=1, seconds=0.5)
    raw = await Raw.open(client)
    raw.send(_get(download))
    await asyncio.sleep(0.1)
    raw.writer.transport.abort()
    front = _front(client)
    assert front.deciding
    await asyncio.wait(front.deciding, timeout=5)
    assert not front.deciding
    resp = await client.get(download)
    assert resp.status == 200
    assert await resp.read() == small_upstream.registry.crate_bytes("itoa", version)
    assert small_upstream.requests.count("download") == 1


async def test_shutdown_answers_the_requests_being_decided_first(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, fresh_connections=True)
    version = small_upstream.registry.versions("itoa")[-1]
    small_upstream.faults.add("delay", match="download", times=1, seconds=0.5)
    idle = await Raw.open(client)
    busy = await Raw.open(client)
    busy.send(_get(f"/api/v1/crates/itoa/{version}/download"))
    await asyncio.sleep(0.1)
    front = _front(client)
    front.pre_shutdown()
    shutdown = asyncio.create_task(front.shutdown(5))
    status, headers, body = await busy.response()
    assert (status, headers["connection"]) == (200, "close")
    assert body == small_upstream.registry.crate_bytes("itoa", version)
    assert await asyncio.wait_for(idle.reader.read(), 5) == b""  # the idle one: closed at once
    await shutdown
    await busy.close()
    await idle.close()


async def test_a_bug_while_answering_cuts_the_connection_and_logs_one_line(
    small_upstream: FakeUpstream, mirror_client: MirrorClient, monkeypatch: Any
) -> None:
    from mirror.http import front as front_module

    client = await mirror_client(small_upstream, fresh_connections=True)

    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("a bug")

    monkeypatch.setattr(front_module, "response_head", broken)
    with capture_logs() as logs:
        raw = await Raw.open(client)
        raw.send(_get(ITOA))
        assert await asyncio.wait_for(raw.reader.read(), 5) == b""  # cut, not left hanging
        await raw.close()
    assert not _front(client).deciding
    crashed = [e for e in logs if e["event"] == "request.crashed"]
    assert len(crashed) == 1 and crashed[0]["path"] == ITOA


async def test_without_the_table_every_request_is_decided_here_304s_included(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, fresh_connections=True, prepared_bytes=0)
    decided = _decisions(client)
    raw = await Raw.open(client)
    raw.send(_get(ITOA))
    status, headers, body = await raw.response()
    assert (status, headers["server"]) == (200, FAST) and b'"name":"itoa"' in body
    raw.send(_get(ITOA, f"If-None-Match: {headers['etag']}") + _get(ITOA))
    status, not_modified, body = await raw.response()
    assert (status, body, not_modified["etag"]) == (304, b"", headers["etag"])
    assert "content-length" not in not_modified and "content-type" not in not_modified
    status, _, again = await raw.response()  # the 304 carried no body to misread
    assert status == 200 and b'"name":"itoa"' in again
    await raw.close()
    assert decided == ["index"] * 3
