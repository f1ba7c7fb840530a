"""The composition root: the serving core (mirror.serving.open) inside an aiohttp application,
with the background work of a long-running server, its signals and its lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from multiprocessing.connection import Connection

import structlog
from aiohttp import web

from mirror import heap
from mirror.config import Settings
from mirror.http.accept import AcceptingSite
from mirror.http.console.routes import add_console
from mirror.http.edge import quiet_bad_requests
from mirror.http.front import MirrorRunner
from mirror.http.handlers import Handlers
from mirror.http.routes import HANDLERS, build_app, tuf_static
from mirror.serving.alert_queue import dispatcher_for
from mirror.serving.console import ConsoleBackend
from mirror.serving.open import Closer, open_mirror
from mirror.sources.tokens import TokenStore

log = structlog.get_logger("mirror.app")

CLOSER = web.AppKey[Closer]("closer")


def create_app(
    settings: Settings, *, audit_process: bool = False, audit_connection: Connection | None = None
) -> web.Application:
    """A ready aiohttp application. Raises ConfigError for an invalid policy or TUF settings.

    `audit_process` / `audit_connection`: where audit events are written (see `open_mirror`).
    """
    core, close = open_mirror(
        settings, audit_process=audit_process, audit_connection=audit_connection
    )
    tokens = TokenStore(settings.auth_tokens) if settings.auth_tokens else None
    if settings.auth_tokens is not None and not settings.auth_tokens.exists():
        # Fail closed (no token is accepted), but say why every request is refused.
        log.warning(
            "tokens.file_missing",
            file=str(settings.auth_tokens),
            hint="every request gets 401 until `crate-mirror token add` creates it",
        )
    app = build_app(Handlers(core, tokens))
    if core.publisher is not None:  # a TUF repository signs what we serve: publish it too
        tuf_static(app, core.publisher.metadata_dir)
    if settings.admin_tokens is not None:  # the review console, for the admins in that file
        console = ConsoleBackend(core)
        add_console(app, console, settings)

        async def close_all() -> None:
            console.close()
            await close()

        app[CLOSER] = close_all
    else:
        app[CLOSER] = close
    app.cleanup_ctx.append(_lifetime)
    return app


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    core = app[HANDLERS].core
    await core.start()
    tasks = []
    alerts = dispatcher_for(core)  # webhooks, when the settings name any
    if alerts is not None:
        tasks.append(asyncio.create_task(alerts.run()))
    if core.publisher is not None:
        tasks.append(asyncio.create_task(core.publisher.run()))
    if core.reloader is not None:
        tasks.append(asyncio.create_task(core.reloader.watch()))
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, core.reloader.now)
    yield
    for task in tasks:
        task.cancel()
    if alerts is not None:
        await alerts.close()
    await app[CLOSER]()


def run(
    settings: Settings,
    sockets: Sequence[socket.socket],
    audit_connection: Connection | None = None,
    ready: Callable[[], None] = lambda: None,
) -> None:
    """Serve on `sockets` (bound by mirror.listeners) until SIGINT/SIGTERM (one process;
    `mirror.cli.serve` forks workers around it); `ready` is called once requests are
    answered. Raises MirrorError when it cannot start (the cache, the audit log, a token
    file, the TUF repository)."""
    quiet_bad_requests()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(_serve(settings, sockets, audit_connection, ready))


async def _serve(
    settings: Settings,
    sockets: Sequence[socket.socket],
    audit_connection: Connection | None,
    ready: Callable[[], None],
) -> None:
    app = create_app(settings, audit_process=True, audit_connection=audit_connection)
    runner = MirrorRunner(app, access_log=None)  # every request is in the audit log already
    await runner.setup()
    try:
        for sock in sockets:
            await AcceptingSite(runner, sock, backlog=settings.listen_backlog).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        heap.settle()  # what start-up built stays out of full collections (mirror/heap.py)
        ready()
        await stop.wait()
    finally:
        await runner.cleanup()
