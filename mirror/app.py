"""The composition root: build every part from Settings, wire them, and own their lifetimes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import signal
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from typing import Optional

import structlog
from aiohttp import web

from mirror.audit import AuditEvent, AuditLog, AuditSink, ProcessAuditLog
from mirror.auth import TokenStore
from mirror.config import Settings
from mirror.downloads import CrateFetcher
from mirror.errors import ConfigError, StorageError
from mirror.front import MirrorRunner
from mirror.gate import Gate
from mirror.index import index_path
from mirror.index_cache import IndexCache
from mirror.policy.engine import PolicyEngine
from mirror.policy_files import PolicyFiles
from mirror.server import MIRROR, Mirror, build_app, tuf_static
from mirror.store import Store
from mirror.trust.repository import MirrorRepository
from mirror.trust.settings import TufSettings
from mirror.trust.upstream import UpstreamVerifier
from mirror.upstream import Upstream

log = structlog.get_logger("mirror.app")
POLICY_FILES = web.AppKey[PolicyFiles | None]("policy_files")
PUBLISHER = web.AppKey[Optional["Publisher"]]("publisher")
POLICY_POLL_SECONDS = 2.0  # how often the policy file's mtime is checked for changes
PUBLISH_SECONDS = 2.0  # how often served index files are signed into the TUF repository


def create_app(
    settings: Settings, *, audit_process: bool = False, audit_connection: Connection | None = None
) -> web.Application:
    """A ready aiohttp application. Raises ConfigError for an invalid policy or TUF settings.

    `audit_process` moves audit hashing and writing to a child process (what `serve` does:
    it keeps the GIL free for serving), or to the writer at the other end of
    `audit_connection` (a worker's `AuditHub`); in-process tests use the writer thread.
    """
    trust = (
        TufSettings.from_mapping(settings.tuf, "settings", offline=settings.offline)
        if settings.tuf
        else TufSettings()
    )
    store = Store(settings.cache_dir)
    store.remove_stale_tmp()
    upstream = None if settings.offline else Upstream(settings)
    audit: AuditSink = (
        ProcessAuditLog(settings.audit_directory, connection=audit_connection)
        if audit_process
        else AuditLog(settings.audit_directory)
    )
    policy_files = PolicyFiles(settings.policy) if settings.policy else None
    engine = policy_files.load() if policy_files else None
    if engine is not None:
        warn_expired(engine)
    verifier = UpstreamVerifier(trust.upstream) if trust.upstream and upstream else None
    indexes = IndexCache(
        store,
        upstream,
        ttl=settings.index_ttl,
        negative_ttl=settings.negative_ttl,
        verifier=verifier.verify_crate_index if verifier else None,
        memory_budget=settings.index_memory_bytes,
    )
    crates = CrateFetcher(store, upstream, max_bytes=settings.max_crate_bytes)
    gate = Gate(audit, engine)
    if policy_files is not None:
        gate.capabilities = policy_files.capability_guard(store, gate)
    tokens = TokenStore(settings.auth_tokens) if settings.auth_tokens else None
    mirror = Mirror(settings, indexes, crates, gate, upstream, tokens)
    app = build_app(mirror)
    app[POLICY_FILES] = policy_files
    app[PUBLISHER] = None
    if trust.repository is not None:
        repository = MirrorRepository(trust.repository)
        publisher = Publisher(repository)
        gate.on_served = publisher.note
        gate.serves_offline_view = settings.offline
        tuf_static(app, trust.repository.metadata_dir)
        app[PUBLISHER] = publisher
    app.cleanup_ctx.append(_lifetime)
    return app


class Publisher:
    """Signs the index files we serve into the mirror's TUF repository, in batches.

    Signing is synchronous and touches disk, so it runs in a thread every few seconds with
    everything served differently since the last round, never on the request path.
    """

    def __init__(self, repository: MirrorRepository) -> None:
        self._repository = repository
        self._pending: dict[str, bytes] = {}

    def note(self, name: str, body: bytes) -> None:
        self._pending[index_path(name)] = body

    async def run(self) -> None:
        while True:
            await self.flush()
            await asyncio.sleep(PUBLISH_SECONDS)

    async def flush(self) -> None:
        changes, self._pending = self._pending, {}
        try:
            await asyncio.to_thread(self._repository.publish, changes)
        except Exception as e:  # keep serving; the next round retries what failed
            log.error("tuf.publish_failed", error=str(e), files=len(changes))
            self._pending = {**changes, **self._pending}


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    mirror = app[MIRROR]
    policy_files = app[POLICY_FILES]
    await mirror.start_upstream()
    tasks = []
    publisher = app[PUBLISHER]
    if publisher is not None:
        tasks.append(asyncio.create_task(publisher.run()))
    if policy_files is not None:
        reload = _Reloader(mirror, policy_files)
        tasks.append(asyncio.create_task(reload.watch()))
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload.now)
    yield
    for task in tasks:
        task.cancel()
    if publisher is not None:
        await publisher.flush()
    if mirror.upstream is not None:
        await mirror.upstream.close()
    try:
        mirror.gate.audit.close()
    except StorageError as e:  # shutting down anyway: say what was lost, do not crash
        log.error("audit.close_failed", error=str(e))


class _Reloader:
    """Policy reload on SIGHUP or file change; an invalid new policy keeps the old one."""

    def __init__(self, mirror: Mirror, files: PolicyFiles) -> None:
        self._mirror = mirror
        self._files = files

    def now(self) -> None:
        self._reload("signal")

    async def watch(self) -> None:
        day = datetime.date.today()
        while True:
            await asyncio.sleep(POLICY_POLL_SECONDS)
            if self._files.changed():
                self._reload("file change")
            if datetime.date.today() != day:  # entries expire by day: say so when they do
                day = datetime.date.today()
                engine = self._mirror.gate.engine
                if engine is not None:
                    warn_expired(engine)

    def _reload(self, trigger: str) -> None:
        gate = self._mirror.gate
        try:
            engine = self._files.load()
            guard = self._files.capability_guard(self._mirror.crates.store, gate)
        except ConfigError as e:
            log.error("policy.reload_rejected", trigger=trigger, problems=str(e))
            gate.audit.record(
                AuditEvent(action="policy.reload_rejected", rule="policy", reason=str(e)[:2000])
            )
            return
        gate.capabilities = guard
        gate.replace_engine(engine)
        warn_expired(engine)
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


def run(settings: Settings, audit_connection: Connection | None = None) -> None:
    """Serve until SIGINT/SIGTERM (one process; `mirror.cli.serve` forks workers around it)."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(_serve(settings, audit_connection))


async def _serve(settings: Settings, audit_connection: Connection | None) -> None:
    app = create_app(settings, audit_process=True, audit_connection=audit_connection)
    runner = MirrorRunner(app, access_log=None)  # every request is in the audit log already
    await runner.setup()
    try:
        site = web.TCPSite(
            runner,
            settings.listen_host,
            settings.listen_port,
            reuse_port=settings.workers > 1,
            backlog=settings.listen_backlog,
        )
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
