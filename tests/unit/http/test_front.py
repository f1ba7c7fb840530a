"""The front door: warm hits answered from prepared responses, everything else by the handlers.

Which path answered is visible in the `Server` header: `crate-mirror` from the front door,
aiohttp's own from the handlers. Both must give the same status, body and validators. A
connection stays with the handlers once it had a request the front door could not answer, so
these clients open a new connection per request (`fresh_connections=True`).
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

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
    first = await client.get(ITOA)
    first_body = await first.read()
    assert first.headers["Server"] != FAST  # decided by the handler
    second = await client.get(ITOA)
    assert second.headers["Server"] == FAST
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
    resp = await client.get(ITOA)
    assert resp.status == 403
    assert "itoa" in await resp.text()
    resp = await client.get(ITOA)  # a block is never prepared: every one explains itself
    assert resp.status == 403 and resp.headers["Server"] != FAST


async def test_an_expired_entry_goes_back_to_upstream(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, fresh_connections=True, index_ttl=0.3)
    await _warm(client, ITOA)
    assert (await client.get(ITOA)).headers["Server"] == FAST
    await asyncio.sleep(0.4)
    resp = await client.get(ITOA)
    assert resp.status == 200 and resp.headers["Server"] != FAST
    assert small_upstream.requests.count("it/oa/itoa") == 2  # revalidated


async def test_pipelined_hit_miss_hit_are_answered_in_order(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    """A miss hands the connection to aiohttp with every unanswered byte; nothing is lost."""
    client = await mirror_client(small_upstream, fresh_connections=True)
    await _warm(client, ITOA)
    raw = await Raw.open(client)
    ryu = "/index/" + index_path("ryu")
    raw.send(_get(ITOA) + _get(ryu) + _get(ITOA) + _get("/index/no/su/nosuchcrate"))
    answers = [await raw.response() for _ in range(4)]
    await raw.close()
    assert [a[0] for a in answers] == [200, 200, 200, 404]
    assert answers[0][1]["server"] == FAST
    assert answers[1][1]["server"] != FAST  # the miss and all after it: aiohttp
    assert answers[0][2] == answers[2][2]
    assert b'"name":"ryu"' in answers[1][2]


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
    mirror = _mirror(client)
    mirror.tally.flush()
    mirror.core.gate.audit.flush()
    events = [
        e
        for e in read_events(mirror.settings.audit_directory)
        if e.get("crate") == "itoa" and e["action"] == "allow"
    ]
    assert len(events) == 2  # the handler's own, then one for the five repeats
    counted = events[-1]
    assert counted["details"]["count"] == 5
    assert counted["client"] == "127.0.0.1"
    assert counted["route"] == "index"
    assert await _served(client) == served_before + 6  # /metrics counts the front door's too


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
    protocol.data_received(_get("/index/" + index_path("ryu")))  # a miss: aiohttp takes over
    assert transport.protocol is not None and transport.protocol is not protocol
    assert transport.reading  # aiohttp does its own flow control from here
    transport.protocol.connection_lost(None)
