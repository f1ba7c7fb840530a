"""The console's routes under /-/ (served when `admin_tokens` is set) and its packaged files."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from mirror.config import Settings
from mirror.http.console.auth import ConsoleAuth
from mirror.http.console.pages import Pages
from mirror.serving.console import ConsoleBackend
from mirror.sources.tokens import admin_tokens, load_or_create_key

STATIC_DIR = Path(__file__).resolve().parent / "static"
SESSION_KEY_NAME = "console-session.key"  # in the server's state directory


def add_console(app: web.Application, backend: ConsoleBackend, settings: Settings) -> None:
    """Add the console to `app`. Raises ConfigError when the admin file is unreadable."""
    assert settings.admin_tokens is not None
    admins = admin_tokens(settings.admin_tokens)
    key = load_or_create_key(settings.state_directory / SESSION_KEY_NAME)
    auth = ConsoleAuth(
        admins, key, secure=settings.base_url.startswith("https:"), origin=settings.base_url
    )
    pages = Pages(backend, auth)
    guard = pages.guard
    router = app.router
    router.add_get("/-/login", pages.login_form)
    router.add_post("/-/login", pages.login)
    router.add_post("/-/logout", guard(pages.logout))
    router.add_get("/-/", guard(pages.home))
    router.add_get("/-/pending", guard(pages.pending))
    router.add_get("/-/review", guard(pages.review))
    router.add_post("/-/decide", guard(pages.decide))
    router.add_post("/-/lockfile", guard(pages.lockfile))
    router.add_get("/-/decisions", guard(pages.decisions))
    router.add_get("/-/events/{seq}", guard(pages.event))
    router.add_get("/-/near-names", guard(pages.near_names))
    router.add_get("/-/status", guard(pages.status))
    router.add_static("/-/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
