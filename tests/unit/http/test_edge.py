"""A flood of malformed requests must not become a flood of ERROR tracebacks."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadStatusLine

from mirror.http.edge import quiet_bad_requests, refuse_bodies
from mirror.logs import configure_logging


def _record(exc: BaseException | None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord(
        "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request", (), exc_info
    )


@pytest.fixture
def configured() -> Iterator[None]:
    configure_logging("console", "info")
    quiet_bad_requests()  # what `serve` does in each serving process
    yield
    structlog.reset_defaults()  # later tests must not write to this test's captured stderr
    logging.getLogger("aiohttp.server").filters.clear()


@pytest.mark.usefixtures("configured")
def test_parse_errors_are_demoted_and_real_errors_kept(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("aiohttp.server")
    with caplog.at_level(logging.INFO, logger="aiohttp.server"):
        # A TLS hello sent to the plain-HTTP port; aiohttp keeps the repr of a raw line.
        logger.handle(_record(BadStatusLine(repr(b"\x16\x03\x01 garbage"))))
        try:
            raise RuntimeError("a real bug")
        except RuntimeError as e:
            logger.handle(_record(e))
    levels = [(r.levelname, r.exc_info is not None) for r in caplog.records]
    assert levels == [("ERROR", True)]  # only the real bug, with its traceback
    assert sys.exc_info() == (None, None, None)


async def test_bodies_are_refused_unless_a_route_reads_one(aiohttp_client: Any) -> None:
    """GET with a body, or a body for a method no route takes: 413, connection closed. A POST
    route that reads its body (a form) gets it, within `client_max_size`."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="page")

    async def form(request: web.Request) -> web.Response:
        return web.Response(text=f"got {len(await request.read())}")

    app = web.Application(middlewares=[refuse_bodies], client_max_size=1024)
    app.router.add_get("/page", page)
    app.router.add_post("/form", form)
    client = await aiohttp_client(app)
    for method, path in (("GET", "/page"), ("POST", "/page"), ("GET", "/nowhere")):
        resp = await client.request(method, path, data=b"x" * 10)
        assert resp.status == 413, (method, path)
        assert "takes no request body" in await resp.text()
        assert resp.headers.get("Connection", "").lower() == "close"
    resp = await client.post("/form", data=b"x" * 10)
    assert (resp.status, await resp.text()) == (200, "got 10")
    assert (await client.post("/form", data=b"x" * 2048)).status == 413  # aiohttp's own limit
    assert (await client.get("/page")).status == 200
