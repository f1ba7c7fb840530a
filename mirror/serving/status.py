"""What the console's status page shows: the policy in force and the mode of each rule, the
age of the files decisions read (corpus, advisory database, capability lock), upstream's
health as this worker sees it, and the audit chain as its index last checked it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mirror.audit.index import AuditIndex, ChainStatus
from mirror.errors import ConfigError
from mirror.policy.capability_lock import merged
from mirror.policy.decision import Mode
from mirror.serving.capability_guard import LockPlaces
from mirror.serving.core import MirrorCore
from mirror.sources.capability_lockfile import load_lock
from mirror.upstream.client import UpstreamClient, UpstreamHealth


@dataclass(frozen=True)
class FileState:
    label: str
    path: Path | None
    age: float | None  # seconds since it last changed; None when missing
    detail: str = ""


@dataclass(frozen=True)
class StatusReport:
    policy_path: Path | None
    policy_digest: str | None
    policy_version: int | None
    rules: Mapping[str, str]  # rule -> mode
    files: tuple[FileState, ...]
    upstream_url: str
    offline: bool
    upstream: UpstreamHealth | None
    quickest_answer: float | None  # seconds: how far upstream is (None: too few answers yet)
    crates_ahead: bool  # crates are fetched ahead of cargo (look_ahead.py: a distant upstream)
    chains: tuple[ChainStatus, ...]  # with replicas, one per replica sharing the audit dir
    pending: int
    now: float


def collect(core: MirrorCore, index: AuditIndex, places: LockPlaces | None) -> StatusReport:
    """One snapshot (reads a few file stats, the lock and the index's status row)."""
    engine = core.gate.engine
    policy = engine.policy if engine is not None else None
    rules: dict[str, str] = {}
    files: list[FileState] = []
    if policy is not None:
        for item in dataclasses.fields(policy.rules):
            rule = getattr(policy.rules, item.name)
            mode = getattr(rule, "mode", None)
            rules[item.name] = mode.value if isinstance(mode, Mode) else str(mode)
        files.append(_file("policy", policy.path))
        reloader = core.reloader
        corpus = reloader.files.corpus_path(policy) if reloader is not None else None
        if corpus is not None and policy.rules.risk.mode is not Mode.OFF:
            files.append(_file("popular-crate corpus", corpus))
        if policy.rules.advisories.db is not None:
            files.append(_file("advisory database", policy.rules.advisories.db))
    if places is not None:
        files.append(_lock_file(places))
        files.append(_file("trust-on-first-use records", places.recorded))
    upstream = core.upstream
    health = upstream.health if isinstance(upstream, UpstreamClient) else None
    quickest = health.quickest_answer_time() if health is not None else None
    look_ahead = core.look_ahead
    index.refresh()
    return StatusReport(
        policy_path=policy.path if policy is not None else None,
        policy_digest=policy.digest if policy is not None else None,
        policy_version=getattr(policy, "version", None),
        rules=rules,
        files=tuple(files),
        upstream_url=core.settings.upstream_index,
        offline=core.offline,
        upstream=health,
        quickest_answer=quickest,
        crates_ahead=look_ahead is not None and look_ahead.fetches_crates(quickest),
        chains=tuple(index.chains()) or (index.status(),),
        pending=index.pending_count(),
        now=time.time(),
    )


def _file(label: str, path: Path | None, detail: str = "") -> FileState:
    if path is None:
        return FileState(label, None, None, detail)
    try:
        return FileState(label, path, time.time() - path.stat().st_mtime, detail)
    except OSError:
        return FileState(label, path, None, detail or "missing")


def _lock_file(places: LockPlaces) -> FileState:
    try:
        lock = merged(load_lock(places.reviewed), load_lock(places.recorded))
        approvals = sum(len(a) for a in lock.crates.values())
        detail = f"{len(lock.crates)} crates, {approvals} approvals, {len(lock.revoked)} revoked"
    except ConfigError as e:  # an invalid lock is what the page must show, not a 500
        detail = f"invalid: {e}"
    return _file("capability lock", places.reviewed, detail)
