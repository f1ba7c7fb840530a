"""The mirror as a TUF repository for its downstream: it signs the index files it serves.

Roles (consistent snapshots, TAP 15 hashed bins, as in RFC 3724 and PEP 458):

    root       offline, threshold N of M: delegates the four top-level roles
    targets    offline: delegates every index path to 2^k "bins-*" roles (succinct)
    bins-*     online key: lists the served index files (length + sha256)
    snapshot   online key: versions of targets and every bin (stops mix-and-match)
    timestamp  online key: the current snapshot version, short expiry (stops freeze)

Served from `<dir>/metadata/` under /tuf/: `root.json`, `N.root.json`, `timestamp.json`,
`N.snapshot.json`, `N.targets.json`, `N.bins-K.json`. Writers hold an flock on the
directory, so worker processes sharing it publish one at a time; each file is written to a
temporary name and renamed, and timestamp.json, the entry point, is renamed last.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tuf.api.serialization.json import JSONSerializer

from mirror.errors import TrustError
from mirror.files import exclusive_lock, write_atomic
from mirror.trust._tuf import (
    Delegations,
    Key,
    Metadata,
    MetaFile,
    Root,
    Signer,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from mirror.trust.keys import generate_key_file, load_signer
from mirror.trust.settings import STANDBY_ROLES, TufRepositorySettings

TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
BINS_PREFIX = "bins"
KEEP_VERSIONS = 3  # old consistent-snapshot files kept for clients mid-update
_SERIALIZER = JSONSerializer(compact=True)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class RepositoryStatus:
    versions: Mapping[str, int]
    expires: Mapping[str, datetime]
    thresholds: Mapping[str, int]
    keyids: Mapping[str, tuple[str, ...]]
    targets_count: int
    bins: int  # number of hashed-bin roles


def repository_lock(directory: Path, name: str = ".publish.lock") -> AbstractContextManager[None]:
    """Exclusive lock on `directory/name`: one writer at a time, across processes."""
    return exclusive_lock(directory / name)


def write_metadata(path: Path, data: bytes) -> None:
    """Metadata is read by the server and by anyone it is copied to: world-readable."""
    write_atomic(path, data, mode=0o644)


def init_repository(
    settings: TufRepositorySettings,
    offline_dir: Path,
    root_keys: int = 2,
    root_threshold: int = 2,
    clock: Clock = _utcnow,
) -> list[Path]:
    """Create every key here and publish version-1 metadata. Returns the offline key files.

    Root keys and the targets key go to `offline_dir` (move them off the server); the
    timestamp, snapshot and bins keys go to `<dir>/keys/` for the running mirror. Keys held
    apart from the start (each holder creates their own) go through mirror.trust.staging.
    """
    if not 1 <= root_threshold <= root_keys:
        raise TrustError("root threshold must be between 1 and the number of root keys")
    refuse_existing(settings)
    root_signers = [
        generate_key_file(offline_dir / f"root-{i}.pem") for i in range(1, root_keys + 1)
    ]
    targets_signer = generate_key_file(offline_dir / "targets.pem")
    online = generate_online_keys(settings)
    now = clock()
    root_md = initial_root(
        settings,
        [s.public_key for s in root_signers],
        root_threshold,
        [targets_signer.public_key],
        online,
        now,
    )
    for signer in root_signers:
        root_md.sign(signer, append=True)
    targets_md = initial_targets(settings, online["bins"][0], now)
    targets_md.sign(targets_signer)
    write_initial_metadata(settings, root_md, targets_md, clock)
    return [
        *(offline_dir / f"root-{i}.pem" for i in range(1, root_keys + 1)),
        offline_dir / "targets.pem",
    ]


def refuse_existing(settings: TufRepositorySettings) -> None:
    if (settings.metadata_dir / "root.json").exists():
        raise TrustError(f"{settings.metadata_dir} already holds a repository")


def generate_online_keys(settings: TufRepositorySettings) -> dict[str, list[Key]]:
    """The timestamp, snapshot and bins keys, created on the server that signs with them.

    Timestamp and snapshot each get a standby key too (first in the list: the active one).
    """
    keys: dict[str, list[Key]] = {
        role: [generate_key_file(settings.keys_dir / f"{role}.pem").public_key]
        for role in ("timestamp", "snapshot", "bins")
    }
    for role in STANDBY_ROLES:
        keys[role].append(generate_key_file(settings.standby_path(role)).public_key)
    return keys


def initial_root(
    settings: TufRepositorySettings,
    root_keys: list[Key],
    root_threshold: int,
    targets_keys: list[Key],
    online: Mapping[str, list[Key]],
    now: datetime,
) -> Metadata[Root]:
    """Version-1 root, unsigned: root and targets keys held offline, online keys here."""
    if not 1 <= root_threshold <= len(root_keys):
        raise TrustError("root threshold must be between 1 and the number of root keys")
    root = Root(expires=now + settings.expiry.root, consistent_snapshot=True)
    for key in root_keys:
        root.add_key(key, "root")
    for key in targets_keys:
        root.add_key(key, "targets")
    for role in ("snapshot", "timestamp"):
        for key in online[role]:  # threshold 1: the active key, or its standby
            root.add_key(key, role)
    root.roles["root"].threshold = root_threshold
    return Metadata(root)


def initial_targets(
    settings: TufRepositorySettings, bins_key: Key, now: datetime
) -> Metadata[Targets]:
    """Version-1 targets, unsigned: every index path delegated to the hashed bins."""
    bit_length = settings.bins.bit_length() - 1
    succinct = SuccinctRoles([bins_key.keyid], 1, bit_length, BINS_PREFIX)
    # targets is signed offline, so it gets the long root lifetime; `expiry.targets` applies
    # to the bins, which the online bins key re-signs.
    return Metadata(
        Targets(
            expires=now + settings.expiry.root,
            delegations=Delegations({bins_key.keyid: bins_key}, succinct_roles=succinct),
        )
    )


def write_initial_metadata(
    settings: TufRepositorySettings,
    root_md: Metadata[Root],
    targets_md: Metadata[Targets],
    clock: Clock = _utcnow,
) -> None:
    """Publish signed version-1 root and targets with empty bins, snapshot and timestamp."""
    now = clock()
    exp = settings.expiry
    root = root_md.signed
    delegations = targets_md.signed.delegations
    if delegations is None or delegations.succinct_roles is None:
        raise TrustError("targets metadata has no hashed-bin delegation")
    succinct = delegations.succinct_roles
    signers = {
        "bins": load_signer(settings.signer_uri("bins"), dict(delegations.keys), "bins"),
        **{
            role: load_signer(
                settings.signer_uri(role),
                {k: root.keys[k] for k in root.roles[role].keyids},
                role,
            )
            for role in ("snapshot", "timestamp")
        },
    }
    mdir = settings.metadata_dir
    with repository_lock(settings.dir):
        refuse_existing(settings)
        write_metadata(mdir / "1.root.json", root_md.to_bytes(_SERIALIZER))
        write_metadata(
            mdir / f"{targets_md.signed.version}.targets.json", targets_md.to_bytes(_SERIALIZER)
        )
        snapshot = Snapshot(expires=now + exp.snapshot)
        snapshot.meta["targets.json"] = MetaFile(targets_md.signed.version)
        for name in succinct.get_roles():
            bin_md = Metadata(Targets(expires=now + exp.targets))
            bin_md.sign(signers["bins"])
            write_metadata(mdir / f"1.{name}.json", bin_md.to_bytes(_SERIALIZER))
            snapshot.meta[f"{name}.json"] = MetaFile(1)
        snap_md = Metadata(snapshot)
        snap_md.sign(signers["snapshot"])
        write_metadata(mdir / "1.snapshot.json", snap_md.to_bytes(_SERIALIZER))
        ts_md = Metadata(Timestamp(expires=now + exp.timestamp, snapshot_meta=MetaFile(1)))
        ts_md.sign(signers["timestamp"])
        write_metadata(mdir / "timestamp.json", ts_md.to_bytes(_SERIALIZER))
        # root.json last: it marks the repository as initialised (MirrorRepository checks it).
        write_metadata(mdir / "root.json", root_md.to_bytes(_SERIALIZER))


class MirrorRepository:
    """Signs what the mirror serves. `publish` is synchronous: call it via asyncio.to_thread."""

    def __init__(self, settings: TufRepositorySettings, clock: Clock = _utcnow) -> None:
        self.settings = settings
        self._clock = clock
        if not (settings.metadata_dir / "root.json").is_file():
            raise TrustError(
                f"no TUF repository in {settings.dir}: run `crate-mirror tuf init` first"
            )

    @property
    def metadata_dir(self) -> Path:
        return self.settings.metadata_dir

    # -- reading the current state ------------------------------------------------------------

    def _read(self, filename: str) -> Metadata[Any]:
        try:
            return Metadata.from_bytes((self.metadata_dir / filename).read_bytes())
        except OSError as e:
            raise TrustError(f"repository metadata {filename} unreadable: {e.strerror}") from e
        except Exception as e:  # DeserializationError and friends
            raise TrustError(f"repository metadata {filename} is corrupt: {e}") from e

    def root(self) -> Metadata[Root]:
        return self._read("root.json")

    def timestamp(self) -> Metadata[Timestamp]:
        return self._read("timestamp.json")

    def snapshot(self) -> Metadata[Snapshot]:
        version = self.timestamp().signed.snapshot_meta.version
        return self._read(f"{version}.snapshot.json")

    def targets(self, snapshot: Snapshot | None = None) -> Metadata[Targets]:
        snap = snapshot or self.snapshot().signed
        return self._read(f"{snap.meta['targets.json'].version}.targets.json")

    def succinct_roles(self, targets: Targets | None = None) -> SuccinctRoles:
        t = targets or self.targets().signed
        if t.delegations is None or t.delegations.succinct_roles is None:
            raise TrustError("targets metadata has no hashed-bin delegation")
        return t.delegations.succinct_roles

    def bin_for(self, target_path: str) -> str:
        return self.succinct_roles().get_role_for_target(target_path)

    def files_for_targets(self, target_paths: list[str]) -> list[str]:
        """The metadata files a client needs to verify these targets (for bundles)."""
        snap = self.snapshot()
        succinct = self.succinct_roles(self.targets(snap.signed).signed)
        root_version = self.root().signed.version
        names = [f"{v}.root.json" for v in range(1, root_version + 1)]
        names += ["timestamp.json", f"{snap.signed.version}.snapshot.json"]
        names.append(f"{snap.signed.meta['targets.json'].version}.targets.json")
        for role in sorted({succinct.get_role_for_target(p) for p in target_paths}):
            names.append(f"{snap.signed.meta[f'{role}.json'].version}.{role}.json")
        return names

    # -- publishing ---------------------------------------------------------------------------

    def publish(
        self,
        changes: Mapping[str, bytes | None],
        force: bool = False,
        new_targets: Metadata[Targets] | None = None,
        resign_bins: bool = False,
    ) -> bool:
        """Record served index files as targets (None removes one) and re-sign what moved.

        Timestamp and snapshot (and bins near expiry) are also re-signed when half their
        lifetime has passed, so calling this every few seconds with `{}` keeps the repository
        fresh. `force` re-signs snapshot and timestamp now; `new_targets` publishes a targets
        re-signed offline; `resign_bins` re-signs every bin (after a bins key rotation).
        Returns whether anything was published.
        """
        with repository_lock(self.settings.dir):
            return self._publish_locked(changes, force, new_targets, resign_bins)

    def _publish_locked(
        self,
        changes: Mapping[str, bytes | None],
        force: bool,
        new_targets: Metadata[Targets] | None,
        resign_bins: bool,
    ) -> bool:
        now = self._clock()
        root = self.root().signed
        ts_md = self.timestamp()
        snap_md = self._read(f"{ts_md.signed.snapshot_meta.version}.snapshot.json")
        if new_targets is not None:
            # A targets re-signed offline (key rotation, new expiry): the snapshot must name
            # its version, or clients would keep verifying against the old one.
            version = new_targets.signed.version
            write_metadata(
                self.metadata_dir / f"{version}.targets.json", new_targets.to_bytes(_SERIALIZER)
            )
            snap_md.signed.meta["targets.json"] = MetaFile(version)
            force = True
        targets = self.targets(snap_md.signed).signed
        succinct = self.succinct_roles(targets)
        assert targets.delegations is not None

        by_bin: dict[str, dict[str, bytes | None]] = {}
        for path, body in changes.items():
            by_bin.setdefault(succinct.get_role_for_target(path), {})[path] = body
        snapshot_due = self._due(snap_md.signed, "snapshot", now)
        timestamp_due = self._due(ts_md.signed, "timestamp", now)
        changed_bins: dict[str, Metadata[Targets]] = {}
        for name in succinct.get_roles():
            pending = by_bin.get(name)
            # Bins live 30 days by default: checking their expiry whenever the snapshot is
            # re-signed (every few days) is often enough and keeps `publish({})` cheap.
            if pending is None and not (resign_bins or snapshot_due):
                continue
            meta = snap_md.signed.meta[f"{name}.json"]
            bin_md = self._read(f"{meta.version}.{name}.json")
            changed = pending is not None and _apply(bin_md.signed, pending)
            if changed or resign_bins or self._due(bin_md.signed, "targets", now):
                changed_bins[name] = bin_md

        if not (changed_bins or snapshot_due or timestamp_due or force):
            return False

        bins_signer = load_signer(
            self.settings.signer_uri("bins"), dict(targets.delegations.keys), "bins"
        )
        for name, bin_md in changed_bins.items():
            bin_md.signed.version += 1
            bin_md.signed.expires = now + self.settings.expiry.targets
            bin_md.sign(bins_signer)
            write_metadata(
                self.metadata_dir / f"{bin_md.signed.version}.{name}.json",
                bin_md.to_bytes(_SERIALIZER),
            )
            snap_md.signed.meta[f"{name}.json"] = MetaFile(bin_md.signed.version)
            self._prune(name, bin_md.signed.version)
        if changed_bins or snapshot_due or force:
            snap_md.signed.version += 1
            snap_md.signed.expires = now + self.settings.expiry.snapshot
            snap_md.sign(self._signer(root, "snapshot"))
            write_metadata(
                self.metadata_dir / f"{snap_md.signed.version}.snapshot.json",
                snap_md.to_bytes(_SERIALIZER),
            )
            self._prune("snapshot", snap_md.signed.version)
        ts = ts_md.signed
        ts.version += 1
        ts.expires = now + self.settings.expiry.timestamp
        ts.snapshot_meta = MetaFile(snap_md.signed.version)
        ts_md.sign(self._signer(root, "timestamp"))
        # The commit point: until this rename, clients see the previous consistent state.
        write_metadata(self.metadata_dir / "timestamp.json", ts_md.to_bytes(_SERIALIZER))
        return True

    def _signer(self, root: Root, role: str) -> Signer:
        keys = {keyid: root.keys[keyid] for keyid in root.roles[role].keyids}
        return load_signer(self.settings.signer_uri(role), keys, role)

    def _due(self, signed: Timestamp | Snapshot | Targets, role: str, now: datetime) -> bool:
        """Re-sign once half the lifetime has passed, so clients never see expired metadata."""
        lifetime = self.settings.expiry.for_role(role)
        return signed.expires - now <= lifetime / 2

    def _prune(self, role: str, current: int) -> None:
        with contextlib.suppress(OSError):
            (self.metadata_dir / f"{current - KEEP_VERSIONS}.{role}.json").unlink()

    # -- inspection ---------------------------------------------------------------------------

    def status(self) -> RepositoryStatus:
        root_md = self.root()
        ts = self.timestamp().signed
        snap = self.snapshot().signed
        targets = self.targets(snap).signed
        versions = {
            "root": root_md.signed.version,
            "timestamp": ts.version,
            "snapshot": snap.version,
            "targets": targets.version,
        }
        expires = {
            "root": root_md.signed.expires,
            "timestamp": ts.expires,
            "snapshot": snap.expires,
            "targets": targets.expires,
        }
        count = 0
        succinct = self.succinct_roles(targets)
        for name in succinct.get_roles():
            bin_md = self._read(f"{snap.meta[f'{name}.json'].version}.{name}.json")
            count += len(bin_md.signed.targets)
            expires[BINS_PREFIX] = min(
                expires.get(BINS_PREFIX, bin_md.signed.expires), bin_md.signed.expires
            )
        roles = root_md.signed.roles
        return RepositoryStatus(
            versions=versions,
            expires=expires,
            thresholds={r: roles[r].threshold for r in TOP_ROLES},
            keyids={r: tuple(roles[r].keyids) for r in TOP_ROLES},
            targets_count=count,
            bins=succinct.number_of_bins,
        )


def _apply(bin_targets: Targets, pending: Mapping[str, bytes | None]) -> bool:
    """Update a bin's target entries; returns whether anything actually changed."""
    changed = False
    for path, body in pending.items():
        if body is None:
            changed |= bin_targets.targets.pop(path, None) is not None
            continue
        new = TargetFile.from_data(path, body, ["sha256"])
        old = bin_targets.targets.get(path)
        if old is None or old.length != new.length or old.hashes != new.hashes:
            bin_targets.targets[path] = new
            changed = True
    return changed
