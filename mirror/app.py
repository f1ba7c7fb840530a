"""The composition root: build every part from Settings, wire them, and own their lifetimes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import signal
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from mirror.audit import AuditEvent, AuditLog
from mirror.config import Settings
from mirror.downloads import CrateFetcher
from mirror.errors import ConfigError
from mirror.gate import Gate
from mirror.index_cache import IndexCache
from mirror.policy.engine import PolicyEngine
from mirror.policy_files import PolicyFiles
from mirror.server import MIRROR, Mirror, build_app
from mirror.store import Store
from mirror.upstream import Upstream

log = structlog.get_logger("mirror.app")
POLICY_FILES = web.AppKey[PolicyFiles | None]("policy_files")
POLICY_POLL_SECONDS = 2.0  # how often the policy file's mtime is checked for changes


def create_app(settings: Settings) -> web.Application:
    """A ready aiohttp application. Raises ConfigError for an invalid policy (refuse to start)."""
    store = Store(settings.cache_dir)
    store.remove_stale_tmp()
    upstream = None if settings.offline else Upstream(settings)
    audit = AuditLog(settings.audit_directory)
    policy_files = PolicyFiles(settings.policy) if settings.policy else None
    engine = policy_files.load() if policy_files else None
    if engine is not None:
        warn_expired(engine)
    indexes = IndexCache(
        store, upstream, ttl=settings.index_ttl, negative_ttl=settings.negative_ttl
    )
    crates = CrateFetcher(store, upstream, max_bytes=settings.max_crate_bytes)
    gate = Gate(audit, engine)
    if policy_files is not None:
        gate.capabilities = policy_files.capability_guard(store, gate)
    mirror = Mirror(settings, indexes, crates, gate, upstream)
    app = build_app(mirror)
    app[POLICY_FILES] = policy_files
    app.cleanup_ctx.append(_lifetime)
    return app


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    mirror = app[MIRROR]
    policy_files = app[POLICY_FILES]
    await mirror.start_upstream()
    tasks = []
    if policy_files is not None:
        reload = _Reloader(mirror, policy_files)
        tasks.append(asyncio.create_task(reload.watch()))
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload.now)
    yield
    for task in tasks:
        task.cancel()
    if mirror.upstream is not None:
        await mirror.upstream.close()
    mirror.gate.audit.close()


class _Reloader:
    """Policy reload on SIGHUP or file change; an invalid new policy keeps the old one."""

    def __init__(self, mirror: Mirror, files: PolicyFiles) -> None:
        self._mirror = mirror
        self._files = files

    def now(self) -> None:
        self._reload("signal")

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(POLICY_POLL_SECONDS)
            if self._files.changed():
                self._reload("file change")

    def _reload(self, trigger: str) -> None:
        gate = self._mirror.gate
        try:
            engine = self._files.load()
        except ConfigError as e:
            log.error("policy.reload_rejected", trigger=trigger, problems=str(e))
            gate.audit.record(
                AuditEvent(action="policy.reload_rejected", rule="policy", reason=str(e)[:2000])
            )
            return
        gate.replace_engine(engine)
        warn_expired(engine)
        if gate.capabilities is not None:
            self._files.reload_lock(gate.capabilities)
        log.info("policy.reloaded", trigger=trigger, digest=engine.policy.digest)
        gate.audit.record(
            AuditEvent(
                action="policy.reload",
                rule="policy",
                reason=f"policy reloaded on {trigger}",
                policy_digest=engine.policy.digest,
            )
        )


def warn_expired(engine: PolicyEngine) -> None:
    """Expired allow/deny entries no longer apply; someone should renew or remove them."""
    today = datetime.datetime.now(datetime.UTC).date()
    for entry in engine.expired_entries(today):
        log.warning(
            "policy.entry_expired",
            entry=entry.field,
            line=entry.line,
            crate=str(entry.spec),
            expired=entry.expires.isoformat() if entry.expires else None,
            reason=entry.reason,
        )


def run(settings: Settings) -> None:
    """Serve until interrupted (one process; `mirror.cli.serve` forks workers around it)."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    app = create_app(settings)
    web.run_app(
        app,
        host=settings.listen_host,
        port=settings.listen_port,
        access_log=None,  # every request is in the audit log already
        reuse_port=settings.workers > 1,
        print=None,
        handle_signals=True,
    )
