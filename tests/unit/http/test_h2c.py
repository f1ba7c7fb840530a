"""HTTP/2 after cargo's `Upgrade: h2c`: the front door's answers, many at a time on one
connection; anything else refused with HTTP_1_1_REQUIRED (curl then asks over HTTP/1.1); and
the limits a hostile HTTP/2 client meets.

The client is python-hyper's `h2` over a plain socket (tests/fixtures/h2_client.py), so every
frame is the test's to choose; real cargo runs over the same path in every e2e test (cargo
offers the upgrade by default), and curl's fallback is checked against a server process.
"""

from __future__ import annotations

import asyncio
import logging
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from structlog.testing import capture_logs

from mirror.audit.query import read_events
from mirror.http.front import FrontDoor
from mirror.http.h2c import MAX_STREAMS, on_same_host, worth_upgrading
from mirror.http.handlers import Handlers
from mirror.http.routes import HANDLERS
from mirror.index import index_path
from mirror.sources.tokens import TokenStore
from tests.fixtures.h2_client import SMALL_WINDOW, Answer, H2Client, NotUpgraded
from tests.fixtures.pytest_plugin import MirrorClient
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

ITOA = "/index/" + index_path("itoa")
RYU = "/index/" + index_path("ryu")
REFUSED = int(ErrorCodes.HTTP_1_1_REQUIRED)


def _fields(target: str) -> list[tuple[bytes, bytes]]:
    return [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"mirror"),
        (b":path", target.encode()),
    ]


def _handlers(client: TestClient[Any, Any]) -> Handlers:
    handlers: Handlers = client.app[HANDLERS]
    return handlers


async def test_cargos_upgrade_is_taken_and_the_first_request_answered_as_stream_1(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, http2="always")
    over_h1 = await client.get(ITOA)
    h1_body = await over_h1.read()
    h2 = await H2Client.upgrade(client.port, ITOA)
    (first,) = await h2.wait([1])
    assert (first.status, first.body) == (200, h1_body)
    assert first.headers["server"] == "crate-mirror"
    assert first.headers["etag"] == over_h1.headers["ETag"]
    assert first.headers["content-length"] == str(len(h1_body))
    assert "date" in first.headers
    await h2.close()


async def test_many_requests_at_once_on_one_connection_each_get_their_answer(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    """Index files and crates, cold and repeated, asked together: each decided once."""
    client = await mirror_client(small_upstream, http2="always")
    h2 = await H2Client.upgrade(client.port, "/index/config.json")
    crates = ["itoa", "ryu", "memchr", "cfg-if"]
    files = [h2.get("/index/" + index_path(name)) for name in crates]
    again = [h2.get("/index/" + index_path(name)) for name in crates]
    answers = await h2.wait([1, *files, *again])
    assert {a.status for a in answers} == {200}
    assert b'"dl"' in answers[0].body
    for name, answer, repeat in zip(crates, answers[1:5], answers[5:], strict=True):
        assert f'"name":"{name}"'.encode() in answer.body
        assert repeat.body == answer.body
        assert small_upstream.requests.count(index_path(name).removeprefix("/")) == 1
    versions = {name: small_upstream.registry.versions(name)[-1] for name in crates}
    downloads = [h2.get(f"/api/v1/crates/{n}/{v}/download") for n, v in versions.items()]
    crates_got = await h2.wait(downloads)
    for (name, version), answer in zip(versions.items(), crates_got, strict=True):
        assert answer.status == 200
        assert answer.body == small_upstream.registry.crate_bytes(name, version)
    await h2.close()


async def test_if_none_match_gets_a_304_without_a_body(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, http2="always")
    etag = (await client.get(ITOA)).headers["ETag"]
    h2 = await H2Client.upgrade(client.port, ITOA, {"If-None-Match": etag})
    repeat = h2.get(ITOA, {"if-none-match": f'"other", {etag}'})
    other = h2.get(ITOA, {"if-none-match": '"other"'})
    first, second, third = await h2.wait([1, repeat, other])
    assert (first.status, first.body, first.headers["etag"]) == (304, b"", etag)
    assert (second.status, second.body) == (304, b"")
    assert third.status == 200 and third.body


async def test_a_blocked_crate_explains_itself_over_http2(
    small_upstream: FakeUpstream, mirror_client: MirrorClient, tmp_path: Path
) -> None:
    """cargo prints the body of a 403: the explanation travels over HTTP/2 too."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 2\nrules:\n  deny: {mode: block}\ndeny:\n  - crate: ryu\n    reason: testing\n"
    )
    client = await mirror_client(small_upstream, http2="always", policy=policy)
    h2 = await H2Client.upgrade(client.port, ITOA)
    blocked = h2.get(RYU)
    first, refused = await h2.wait([1, blocked])
    assert first.status == 200
    assert refused.status == 403
    assert b"ryu" in refused.body and b"testing" in refused.body


@pytest.mark.parametrize(
    ("target", "extra"),
    [
        ("/healthz", {}),  # not one of cargo's routes
        ("/metrics", {}),
        (ITOA + "?x=1", {}),  # a query: aiohttp's router judges it
        ("/index/it/oa/%69toa", {}),  # an escape, likewise
        (ITOA, {"method": "HEAD"}),
        (ITOA, {"method": "POST", "body": b"x"}),
        (ITOA, {"body": b"a body on a GET"}),
    ],
)
async def test_anything_else_on_an_upgraded_connection_is_sent_back_to_http1(
    small_upstream: FakeUpstream, mirror_client: MirrorClient, target: str, extra: dict[str, Any]
) -> None:
    client = await mirror_client(small_upstream, http2="always")
    h2 = await H2Client.upgrade(client.port, ITOA)
    stream = h2.get(target, **extra)
    ok = h2.get(ITOA)  # the connection goes on
    _, refused, after = await h2.wait([1, stream, ok])
    assert (refused.reset, refused.status) == (REFUSED, 0)
    assert after.status == 200


async def test_only_a_request_the_front_door_answers_upgrades(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, http2="always")
    for target, settings in (
        ("/healthz", None),  # aiohttp answers it, in HTTP/1.1
        (ITOA, b"!!not base64!!"),
        (ITOA, b"AAMAAABkAAQ"),  # not whole settings (6 bytes each)
    ):
        with pytest.raises(NotUpgraded) as answered:
            await H2Client.upgrade(client.port, target, settings_header=settings)
        assert answered.value.head.startswith(b"HTTP/1.1 200 ")


async def test_http2_never_keeps_http1(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, http2="never")
    with pytest.raises(NotUpgraded) as answered:
        await H2Client.upgrade(client.port, ITOA)
    assert answered.value.head.startswith(b"HTTP/1.1 200 ")


async def test_auto_keeps_a_client_on_the_same_host_on_http1_while_upstream_is_near(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    """The default: this test's client is on loopback, and so is its upstream."""
    client = await mirror_client(small_upstream)
    assert _handlers(client).settings.http2 == "auto"
    with pytest.raises(NotUpgraded) as answered:
        await H2Client.upgrade(client.port, ITOA)
    assert answered.value.head.startswith(b"HTTP/1.1 200 ")
    _handlers(client).core.upstream_far = lambda: True  # as if upstream were far now
    h2 = await H2Client.upgrade(client.port, ITOA)
    (first,) = await h2.wait([1])
    assert first.status == 200
    await h2.close()


@pytest.mark.parametrize(
    ("setting", "same_host", "upstream_far", "upgrade"),
    [
        ("auto", True, False, False),  # both near: HTTP/2 costs more than it saves
        ("auto", True, True, True),  # ... unless upstream is far: fetched all at once
        ("auto", False, False, True),  # across a network: cargo's round trips are saved
        ("always", True, False, True),
        ("never", False, True, False),
    ],
)
def test_when_the_upgrade_is_worth_taking(
    setting: str, same_host: bool, upstream_far: bool, upgrade: bool
) -> None:
    assert worth_upgrading(setting, same_host, upstream_far) is upgrade


@pytest.mark.parametrize(
    ("peer", "here", "same"),
    [
        (("127.0.0.1", 5000), ("127.0.0.1", 8080), True),
        (("127.0.0.2", 5000), ("10.0.0.5", 8080), True),  # all of 127/8 is loopback
        (("::1", 5000, 0, 0), ("::1", 8080, 0, 0), True),
        (("10.0.0.5", 5000), ("10.0.0.5", 8080), True),  # this host's own address
        (("10.0.0.7", 5000), ("10.0.0.5", 8080), False),
        (("::ffff:10.0.0.7", 5000, 0, 0), ("::ffff:10.0.0.5", 8080, 0, 0), False),
        (("::ffff:127.0.0.1", 5000, 0, 0), ("::ffff:10.0.0.5", 8080, 0, 0), True),
        ("", "/run/mirror.sock", True),  # a Unix socket
    ],
)
def test_which_clients_are_on_the_same_host(peer: Any, here: Any, same: bool) -> None:
    class Transport(asyncio.BaseTransport):
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return {"peername": peer, "sockname": here}[name]

    assert on_same_host(Transport()) is same


async def test_with_tokens_a_stream_without_one_goes_to_http1_for_its_401(
    small_upstream: FakeUpstream, mirror_client: MirrorClient, tmp_path: Path
) -> None:
    tokens = TokenStore(tmp_path / "tokens.json")
    token = tokens.add("ci")
    client = await mirror_client(small_upstream, http2="always", auth_tokens=tokens.path)
    with pytest.raises(NotUpgraded) as answered:  # unauthenticated: aiohttp's 401
        await H2Client.upgrade(client.port, ITOA)
    assert answered.value.head.startswith(b"HTTP/1.1 401 ")
    h2 = await H2Client.upgrade(client.port, ITOA, {"Authorization": token})
    anonymous = h2.get(RYU)
    wrong = h2.get(RYU, {"authorization": "not-a-token"})
    good = h2.get(RYU, {"authorization": token})
    first, *rest = await h2.wait([1, anonymous, wrong, good])
    assert first.status == 200
    assert [a.reset for a in rest] == [REFUSED, REFUSED, None]
    assert rest[2].status == 200


async def test_a_large_crate_follows_the_clients_flow_control_window(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    """A crate too large to hold in memory is read from its file a chunk at a time, and sent
    only as fast as a client with a 16 KiB window gives credit back."""
    blob = random.Random(1).randbytes(1200 * 1024)
    small_upstream.registry.add_crate("big", "1.0.0", {"src/blob.bin": blob})
    client = await mirror_client(small_upstream, http2="always", hot_cache_max_file=64 * 1024)
    url = "/api/v1/crates/big/1.0.0/download"
    expected = small_upstream.registry.crate_bytes("big", "1.0.0")
    await (await client.get(url)).read()  # cached: answered from its file from now on
    h2 = await H2Client.upgrade(client.port, "/index/config.json", settings=SMALL_WINDOW)
    streams = [h2.get(url), h2.get(url)]
    answers = await h2.wait([1, *streams])
    assert [a.body == expected for a in answers[1:]] == [True, True]


async def test_a_window_opened_by_new_settings_lets_the_answer_go(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    """A client may start with no window at all and open it with SETTINGS instead of a
    WINDOW_UPDATE (RFC 9113 6.9.2)."""
    client = await mirror_client(small_upstream, http2="always")
    h2 = await H2Client.upgrade(
        client.port, "/index/config.json", settings={SettingCodes.INITIAL_WINDOW_SIZE: 0}
    )
    stream = h2.get(ITOA)
    with pytest.raises(TimeoutError):
        await h2.wait([1, stream], timeout=0.5)
    assert h2.answers[1].status == 200 and h2.answers[1].body == b""  # headers only
    h2.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 65535})
    h2.flush()
    first, answer = await h2.wait([1, stream])
    assert b'"dl"' in first.body
    assert answer.status == 200 and b'"name":"itoa"' in answer.body


async def test_a_client_that_gives_no_window_back_is_closed_when_idle(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    blob = random.Random(2).randbytes(300 * 1024)
    small_upstream.registry.add_crate("big", "1.0.0", {"src/blob.bin": blob})
    client = await mirror_client(small_upstream, http2="always", keepalive_timeout=1.0)
    h2 = await H2Client.upgrade(client.port, "/index/config.json")
    h2.read_window = False
    h2.get("/api/v1/crates/big/1.0.0/download")
    assert await h2.closed(timeout=5)


async def test_resetting_streams_as_fast_as_they_open_leaves_at_most_max_streams_deciding(
    small_registry: Any, mirror_client: MirrorClient
) -> None:
    """The "rapid reset" attack: each reset stream's request is still decided (and audited),
    so the connection is not read while MAX_STREAMS of them are."""
    async with FakeUpstream(small_registry, latency=0.05) as upstream:
        client = await mirror_client(upstream, http2="always")
        handlers = _handlers(client)
        deciding = most = 0
        original = handlers.index_reply

        async def counted(*args: Any) -> Any:
            nonlocal deciding, most
            deciding += 1
            most = max(most, deciding)
            try:
                return await original(*args)
            finally:
                deciding -= 1

        setattr(handlers, "index_reply", counted)  # noqa: B010 (a method, wrapped)
        h2 = await H2Client.upgrade(client.port, "/index/config.json")
        for i in range(3 * MAX_STREAMS):
            h2.reset(h2.get(f"/index/{index_path(f'crate-{i}')}".replace("//", "/")))
        ok = h2.get(ITOA)
        (answer,) = await h2.wait([ok], timeout=60)
        assert answer.status == 200
        assert 0 < most <= MAX_STREAMS


async def test_repeated_answers_to_streams_reset_in_the_same_read_are_skipped(
    small_upstream: FakeUpstream, mirror_client: MirrorClient, caplog: pytest.LogCaptureFixture
) -> None:
    """h2 reports a request and its reset together: a warm hit must not be written to a
    stream that is already closed (that raised out of the protocol, and asyncio cut the
    connection with a "Fatal error")."""
    client = await mirror_client(small_upstream, http2="always")
    h2 = await H2Client.upgrade(client.port, ITOA)
    await h2.wait([1])  # ITOA is in the prepared table now
    for _ in range(50):
        stream = h2.conn.get_next_available_stream_id()
        h2.conn.send_headers(stream, _fields(ITOA), end_stream=True)
        h2.conn.reset_stream(stream)
        h2.answers[stream] = Answer(done=True)
    h2.flush()  # all in one write
    (after,) = await h2.wait([h2.get(ITOA)])
    assert after.status == 200
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_garbage_after_the_upgrade_ends_that_connection_only(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, http2="always")
    with capture_logs() as logs:
        h2 = await H2Client.upgrade(client.port, ITOA)
        await h2.wait([1])
        # WINDOW_UPDATE with an increment of 0: a connection error (RFC 9113 6.9)
        h2.writer.write(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00" + bytes(4))
        assert await h2.closed()
    assert h2.terminated == int(ErrorCodes.PROTOCOL_ERROR)
    assert any(e["event"] == "h2.protocol_error" for e in logs)
    resp = await client.get(ITOA)  # everyone else is served as before
    assert resp.status == 200


async def test_an_upgraded_connection_that_goes_quiet_is_closed(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, http2="always", keepalive_timeout=1.0)
    h2 = await H2Client.upgrade(client.port, ITOA)
    await h2.wait([1])
    assert await h2.closed(timeout=5)


async def test_shutdown_answers_the_streams_being_decided_then_says_goaway(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, http2="always")
    version = small_upstream.registry.versions("itoa")[-1]
    small_upstream.faults.add("delay", match="download", times=1, seconds=0.5)
    h2 = await H2Client.upgrade(client.port, ITOA)
    await h2.wait([1])
    busy = h2.get(f"/api/v1/crates/itoa/{version}/download")
    await asyncio.sleep(0.1)
    front = client.server.runner.server  # type: ignore[union-attr]
    assert isinstance(front, FrontDoor)  # mirror.http.front.MirrorRunner's
    front.pre_shutdown()
    shutdown = asyncio.create_task(front.shutdown(5))
    late = h2.get(ITOA)  # after the GOAWAY: refused, for the client to ask elsewhere
    answer, refused = await h2.wait([busy, late])
    assert answer.body == small_upstream.registry.crate_bytes("itoa", version)
    assert refused.reset == int(ErrorCodes.REFUSED_STREAM)
    assert await h2.closed(timeout=5)
    assert h2.terminated == 0  # GOAWAY, NO_ERROR: no new streams
    await shutdown


async def test_requests_over_http2_are_audited_like_any_other(
    small_upstream: FakeUpstream, mirror_client: MirrorClient
) -> None:
    client = await mirror_client(small_upstream, http2="always")
    h2 = await H2Client.upgrade(client.port, ITOA)
    repeat = h2.get(ITOA)
    await h2.wait([1, repeat])
    handlers = _handlers(client)
    handlers.tally.flush()  # the repeat's batched count
    handlers.core.gate.audit.flush()
    events = [
        e
        for e in read_events(handlers.settings.audit_directory)
        if e.get("crate") == "itoa" and e["action"] == "allow"
    ]
    assert [e["details"].get("count", 1) for e in events] == [1, 1]
    assert {e["route"] for e in events} == {"index"}


def test_curl_repeats_a_refused_request_over_http1(small_registry: Any, tmp_path: Path) -> None:
    """HTTP_1_1_REQUIRED is a real fallback: curl (cargo's HTTP library) asks again."""
    with FakeUpstream(small_registry).in_thread() as upstream:
        _curl_twice(upstream, tmp_path)


def _curl_twice(upstream: FakeUpstream, tmp_path: Path) -> None:
    mirror = MirrorProcess(
        tmp_path / "cache", upstream=upstream.url + "/", env={"CRATE_MIRROR_HTTP2": "always"}
    )
    mirror.start()
    try:
        base = mirror.index_url.split("/index")[0]
        out = subprocess.run(
            ["curl", "-sS", "--http2", "-o", "/dev/null", "-o", "/dev/null",
             "-w", "%{http_version} %{http_code}\\n", f"{base}{ITOA}", f"{base}/healthz"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert out.stdout.split("\n")[:2] == ["2 200", "1.1 200"]
    finally:
        mirror.stop()
