"""Rendering console pages: one Jinja environment, autoescaping every template.

Crate names, versions, file paths, source lines, reasons and client names are hostile input
(a crate's build.rs can hold any text; an audit event can carry any requested name): the
templates print them only through Jinja's HTML escaping, never `|safe`, and every response
carries a Content-Security-Policy that allows no script at all, so even a missed escape could
not run one. Pages are never cached and never framed.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import jinja2
from aiohttp import web

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on our own
    # form posts, and the origin check must tell those from cross-site ones.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("mirror.http.console", "templates"),
    autoescape=True,  # every template, whatever its name
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "never"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _since(stamp: float | None) -> str:
    return "never" if stamp is None else _age(time.time() - stamp) + " ago"


def _pretty(value: Any) -> str:
    """JSON for a <pre> block (escaped by autoescape like everything else)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _points(value: float) -> str:
    text = f"{value:+.2f}".rstrip("0").rstrip(".")
    return text


_env.filters.update(age=_age, when=_when, since=_since, pretty=_pretty, points=_points)


def page(template: str, *, status: int = 200, **context: Any) -> web.Response:
    body = _env.get_template(template).render(**context)
    return web.Response(
        status=status, text=body, content_type="text/html", charset="utf-8",
        headers=SECURITY_HEADERS,
    )  # fmt: skip
