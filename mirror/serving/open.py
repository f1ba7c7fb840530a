"""`open_mirror(settings)`: every part of the mirror built from Settings, wired, ready to use.

The composition of the serving core, usable without any HTTP: `crate-mirror serve` puts the
aiohttp application around it (mirror.app), `prefetch` and `export` call it directly. The
closer it returns flushes what is pending (TUF publishing, the audit log) and closes the
upstream client; call it once, last.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection

import structlog

from mirror.audit import AuditLog, AuditSink, ProcessAuditLog
from mirror.audit.index import IndexPlace
from mirror.config import Settings
from mirror.epoch import Epoch
from mirror.errors import StorageError
from mirror.serving.capability_guard import CapabilityGuard
from mirror.serving.core import MirrorCore
from mirror.serving.downloads import CrateFetcher, HotCrates
from mirror.serving.evidence import EvidenceGatherer
from mirror.serving.gate import Gate
from mirror.serving.index_cache import IndexCache
from mirror.serving.lock_sync import LockSync
from mirror.serving.look_ahead import LookAhead, distant
from mirror.serving.publisher import Publisher
from mirror.serving.registry_config import RegistryConfig
from mirror.serving.reload import PolicyReloader, warn_expired
from mirror.serving.scans import Scans
from mirror.serving.shared_store import open_store
from mirror.serving.write_behind import WriteBehind
from mirror.sources.policy_files import PolicyFiles
from mirror.store import Store
from mirror.store.s3 import S3Store
from mirror.trust.bundle import IMPORT_EPOCH
from mirror.trust.repository import MirrorRepository
from mirror.trust.settings import TufSettings
from mirror.trust.upstream import UpstreamVerifier
from mirror.upstream.client import Upstream, UpstreamClient, UpstreamHealth
from mirror.upstream.tuf_fetcher import TufFetcher

SETTLE_TIMEOUT = 10.0  # seconds shutdown waits for first sightings to be recorded
log = structlog.get_logger("mirror.open")
Closer = Callable[[], Awaitable[None]]


def open_mirror(
    settings: Settings, *, audit_process: bool = False, audit_connection: Connection | None = None
) -> tuple[MirrorCore, Closer]:
    """The core and its closer. Raises ConfigError for an invalid policy or TUF settings.

    `audit_process` moves audit hashing and writing to a child process (what `serve` does:
    it keeps the GIL free for serving), or to the writer at the other end of
    `audit_connection` (a worker's `AuditHub`); otherwise a writer thread does it.
    """
    trust = (
        TufSettings.from_mapping(settings.tuf, "settings", offline=settings.offline)
        if settings.tuf
        else TufSettings()
    )
    store: Store = open_store(settings)  # the cache directory, or it before a shared bucket
    store.remove_stale_tmp()
    upstream: Upstream | None = None
    verifier = None
    health = None  # how upstream has been answering (how far away it is)
    if not settings.offline:
        client = UpstreamClient.from_settings(settings)
        upstream, health = client, client.health
        if trust.upstream is not None:
            # python-tuf fetches its metadata through the same client as everything else.
            fetcher = TufFetcher(client, trust.upstream.max_metadata_bytes)
            verifier = UpstreamVerifier(trust.upstream, fetcher)
    audit: AuditSink = (
        ProcessAuditLog(
            settings.audit_directory, connection=audit_connection, index=IndexPlace.of(settings)
        )
        if audit_process
        else AuditLog(settings.audit_directory)
    )
    scans = Scans(store)
    gate = Gate(audit)
    reloader = None
    if settings.policy is not None:
        files = PolicyFiles(settings.policy)
        engine = files.load()
        warn_expired(engine)
        guard = CapabilityGuard.for_policy(files, scans, audit.record, settings)
        gate.replace_policy(engine, guard)
        reloader = PolicyReloader(files, gate, scans, audit, settings)
        if isinstance(store, S3Store) and guard is not None:
            # Replicas: approvals and first sightings reach every replica through the bucket.
            reloader.lock_sync = LockSync.for_places(
                guard.places, store.bucket, settings.lock_sync_interval
            )
    # What requests were answered before it was in the store. Other workers read the store:
    # from a distant upstream they need the writes soon. (Replicas read the bucket, whose
    # uploads wait for a pause of their own: docs/scale-out.md.)
    far = _far(health) if health is not None else None  # upstream answers from far away
    writes = WriteBehind()
    if settings.workers > 1 and far is not None:
        writes = WriteBehind(hurry=far)
    indexes = IndexCache(
        store,
        upstream,
        ttl=settings.index_ttl,
        negative_ttl=settings.negative_ttl,
        verifier=verifier.verify_crate_index if verifier else None,
        memory_budget=settings.index_memory_bytes,
        writes=writes,
        imports=Epoch(settings.state_directory / IMPORT_EPOCH) if settings.offline else None,
    )
    config = RegistryConfig(
        settings.base_url, store, upstream, auth_required=settings.auth_tokens is not None
    )
    hot = HotCrates(settings.hot_cache_bytes, settings.hot_cache_max_file)
    crates = CrateFetcher(
        store,
        upstream,
        hot,
        config.learn_upstream,
        max_bytes=settings.max_crate_bytes,
        writes=writes,
    )
    look_ahead = None
    if health is not None and settings.look_ahead_versions > 0:
        look_ahead = LookAhead(
            indexes,
            versions=settings.look_ahead_versions,
            crates=crates.get if settings.look_ahead_crates else None,
            round_trip=health.quickest_answer_time,
        )
    publisher = None
    if trust.repository is not None:
        publisher = Publisher(MirrorRepository(trust.repository))
        gate.on_served = publisher.note
        gate.serves_offline_view = settings.offline
    core = MirrorCore(
        settings,
        store,
        upstream,
        indexes,
        crates,
        gate,
        config,
        EvidenceGatherer(indexes, crates, scans),
        publisher=publisher,
        reloader=reloader,
        look_ahead=look_ahead,
        writes=writes,
        upstream_far=far or (lambda: False),
    )

    async def close() -> None:
        if look_ahead is not None:
            await look_ahead.stop()
        if gate.capabilities is not None:
            # First sightings answered before their record: recorded before we stop, unless
            # that takes too long (then the next request for them is a first sighting again).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gate.capabilities.settle(), SETTLE_TIMEOUT)
        scans.close()
        await writes.flush()  # what was answered before its copy was in the store
        if publisher is not None:
            await publisher.flush()
        if upstream is not None:
            await upstream.close()
        await store.close()  # pending uploads to a shared bucket
        try:
            audit.close()
        except StorageError as e:  # shutting down anyway: say what was lost, do not crash
            log.error("audit.close_failed", error=str(e))

    return core, close


def _far(health: UpstreamHealth) -> Callable[[], bool]:
    return lambda: distant(health.quickest_answer_time())
