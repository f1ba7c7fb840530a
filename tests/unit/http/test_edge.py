"""A flood of malformed requests must not become a flood of ERROR tracebacks."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest
import structlog
from aiohttp.http_exceptions import BadStatusLine

from mirror.http.edge import quiet_bad_requests
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
        logger.handle(_record(BadStatusLine(b"\x16\x03\x01 garbage")))
        try:
            raise RuntimeError("a real bug")
        except RuntimeError as e:
            logger.handle(_record(e))
    levels = [(r.levelname, r.exc_info is not None) for r in caplog.records]
    assert levels == [("ERROR", True)]  # only the real bug, with its traceback
    assert sys.exc_info() == (None, None, None)
