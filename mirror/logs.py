"""structlog set-up for the server's operational log (the audit log has its own writer)."""

from __future__ import annotations

import logging
import sys

import structlog

# What this process was configured with: a child process it starts (the audit writer) is
# given the same, so one server's log is one format.
configured: tuple[str, str] | None = None


def configure_logging(fmt: str = "json", level: str = "info") -> None:
    global configured
    configured = (fmt, level)
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
