"""structlog set-up for the server's operational log (the audit log has its own writer)."""

from __future__ import annotations

import logging
import sys

import structlog


class _QuietBadRequests(logging.Filter):
    """aiohttp logs every unparseable request at ERROR with a traceback: a client could fill
    the disk with them. The client already got its 400; keep one short debug line."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.exc_info, record.exc_text = None, None
            record.msg, record.args = f"bad request: {exc.message}", ()
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def configure_logging(fmt: str = "json", level: str = "info") -> None:
    logging.getLogger("aiohttp.server").addFilter(_QuietBadRequests())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
