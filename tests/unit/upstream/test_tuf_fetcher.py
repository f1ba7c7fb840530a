"""python-tuf's fetcher on the mirror's one client: bodies intact, 4xx as HTTP errors (a 404
for root N+1 means "no newer root"), every byte limit enforced while streaming, connections
given back even when python-tuf stops reading half-way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from tuf.api import exceptions as tuf_errors

from mirror import USER_AGENT
from mirror.upstream.client import ClientLimits, UpstreamClient
from mirror.upstream.tuf_fetcher import TufFetcher

BODY = b"x" * 100_000


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, list[str]]]:
    agents: list[str] = []

    async def ok(request: web.Request) -> web.Response:
        agents.append(request.headers.get("User-Agent", ""))
        return web.Response(body=BODY)

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(1000):  # bounded: 64 MB at most, but the reader stops long before
            await resp.write(b"y" * 65536)
        return resp

    async def declared(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(10**9)})
        await resp.prepare(request)
        await resp.write(b"z" * 1000)
        return resp

    app = web.Application()
    app.router.add_get("/ok.json", ok)
    app.router.add_get("/endless.json", endless)
    app.router.add_get("/declared.json", declared)
    srv = TestServer(app, host="127.0.0.1")
    async with srv:
        yield srv, agents


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    # One connection at most: a connection not given back would stall the next request.
    limits = ClientLimits(concurrency=1, read_timeout=5.0, connect_timeout=5.0, retries=0)
    async with UpstreamClient("http://127.0.0.1/", limits) as upstream:
        await upstream.open()
        yield upstream


async def test_bodies_arrive_intact_with_the_mirrors_user_agent(
    server: tuple[TestServer, list[str]], client: UpstreamClient
) -> None:
    srv, agents = server
    fetcher = TufFetcher(client, max_bytes=1_000_000)
    url = str(srv.make_url("/ok.json"))
    assert await asyncio.to_thread(fetcher.download_bytes, url, 200_000) == BODY
    assert agents == [USER_AGENT]


async def test_a_missing_file_is_an_http_error_python_tuf_understands(
    server: tuple[TestServer, list[str]], client: UpstreamClient
) -> None:
    srv, _ = server
    fetcher = TufFetcher(client, max_bytes=1_000_000)
    with pytest.raises(tuf_errors.DownloadHTTPError) as info:
        await asyncio.to_thread(fetcher.download_bytes, str(srv.make_url("/2.root.json")), 1000)
    assert info.value.status_code == 404


@pytest.mark.parametrize(
    ("path", "tuf_cap", "our_cap"),
    [
        ("/endless.json", 200_000, 10_000_000),  # python-tuf's own cap stops it
        ("/endless.json", 10_000_000, 300_000),  # the fetcher's cap stops it
        ("/declared.json", 10_000_000, 300_000),  # a declared length over the cap: not read
    ],
)
async def test_endless_data_is_a_length_error_and_the_connection_is_given_back(
    server: tuple[TestServer, list[str]],
    client: UpstreamClient,
    path: str,
    tuf_cap: int,
    our_cap: int,
) -> None:
    """Endless data is an attack (python-tuf's length error: not retried as a network
    hiccup); the stream is abandoned half-read and the next request still gets through."""
    srv, _ = server
    fetcher = TufFetcher(client, max_bytes=our_cap)
    with pytest.raises(tuf_errors.DownloadLengthMismatchError):
        await asyncio.to_thread(fetcher.download_bytes, str(srv.make_url(path)), tuf_cap)
    ok = str(srv.make_url("/ok.json"))
    body = await asyncio.wait_for(asyncio.to_thread(fetcher.download_bytes, ok, 200_000), 10)
    assert body == BODY


async def test_a_client_that_was_never_opened_is_a_download_error() -> None:
    fetcher = TufFetcher(UpstreamClient("http://127.0.0.1/"), max_bytes=1000)
    with pytest.raises(tuf_errors.DownloadError, match="not open"):
        await asyncio.to_thread(fetcher.download_bytes, "http://127.0.0.1:9/root.json", 1000)
