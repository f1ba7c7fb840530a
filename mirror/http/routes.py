"""The aiohttp application: cargo's sparse protocol, health, metrics and the signed TUF files."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from mirror.http.edge import Handler, edge, refuse_bodies
from mirror.http.handlers import Handlers

HANDLERS = web.AppKey("handlers", Handlers)


def build_app(handlers: Handlers) -> web.Application:
    # Generous but finite limits on what a client may send (slowloris, header floods).
    app = web.Application(
        client_max_size=64 * 1024,
        # A refused body is drained for at most `lingering_time` seconds after the 413 (so the
        # client can read its answer before the close), not aiohttp's default 10 s.
        handler_args={"max_field_size": 8190, "lingering_time": 1.0},
        middlewares=[refuse_bodies],  # a body only where a route reads one: refused unread
    )
    core, tokens, base_url = handlers.core, handlers.tokens, handlers.settings.base_url

    def route(name: str, handler: Handler, *, public: bool = False) -> Handler:
        return edge(name, handler, core, tokens, base_url, public=public)

    app.router.add_get("/index/config.json", route("config", handlers.config_json))
    app.router.add_get("/index/{path:.+}", route("index", handlers.index_file))
    app.router.add_get(
        "/api/v1/crates/{name}/{version}/download", route("download", handlers.download)
    )
    feed = handlers.settings.near_name_feed
    if feed != "off":
        app.router.add_get(
            "/feed/near-names.{format:json|atom}",
            route("feed", handlers.near_name_feed, public=feed == "public"),
        )
    app.router.add_get("/healthz", route("healthz", handlers.healthz, public=True))
    app.router.add_get("/readyz", route("readyz", handlers.readyz, public=True))
    app.router.add_get("/metrics", route("metrics", handlers.metrics))
    app[HANDLERS] = handlers
    return app


def tuf_static(app: web.Application, metadata_dir: Path) -> None:
    """Serve the mirror's signed TUF metadata for downstream mirrors and clients."""
    app.router.add_static("/tuf/", metadata_dir, show_index=False, follow_symlinks=False)
