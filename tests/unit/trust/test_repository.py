"""The mirror's own TUF repository: what it signs verifies with ngclient, and keys rotate."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mirror.errors import TrustError
from mirror.index import index_path
from mirror.trust.bundle import DirectoryFetcher
from mirror.trust.keys import file_uri, load_signer
from mirror.trust.repository import MirrorRepository, init_repository
from mirror.trust.settings import Expiry, TufRepositorySettings
from mirror.trust.staging import (
    publish_staged,
    rotate_bins_key,
    rotate_key,
    sign_staged,
    stage_targets_change,
    staged_status,
)
from mirror.trust.upstream import (
    check_target,
    find_target,
    open_updater,
    refresh_updater,
    updater_config,
)
from tests.unit.trust.test_upstream import index_body


@pytest.fixture
def settings(tmp_path: Path) -> TufRepositorySettings:
    s = TufRepositorySettings(dir=tmp_path / "repo", bins=4)
    init_repository(s, tmp_path / "offline", root_keys=2, root_threshold=2)
    return s


@pytest.fixture
def pinned(settings: TufRepositorySettings, tmp_path: Path) -> bytes:
    return (settings.metadata_dir / "1.root.json").read_bytes()


def downstream_verify(
    settings: TufRepositorySettings, pinned: bytes, client: Path, path: str, body: bytes
) -> None:
    """A downstream TUF client (ngclient) reading the metadata the mirror serves."""
    fetcher = DirectoryFetcher(settings.metadata_dir)
    updater = open_updater(client, "mirror:///tuf/", pinned, updater_config(5_000_000), fetcher)
    refresh_updater(updater)
    info = find_target(updater, path)
    if info is None:
        raise TrustError(f"{path} not listed")
    check_target(info, body)


def test_published_index_files_verify_downstream(
    settings: TufRepositorySettings, pinned: bytes, tmp_path: Path
) -> None:
    """Served index files become targets in hashed bins that a TUF client accepts."""
    repo = MirrorRepository(settings)
    files = {index_path(n): index_body(n) for n in ("serde", "rand", "libc", "syn", "quote")}
    assert repo.publish(files)
    for path, body in files.items():
        downstream_verify(settings, pinned, tmp_path / "client", path, body)
    assert repo.status().targets_count == 5


def test_changed_but_unpublished_file_does_not_verify(
    settings: TufRepositorySettings, pinned: bytes, tmp_path: Path
) -> None:
    """The mirror serving bytes it never signed (e.g. a policy bug) is caught downstream."""
    repo = MirrorRepository(settings)
    repo.publish({index_path("serde"): index_body("serde")})
    with pytest.raises(TrustError, match="length or hash mismatch"):
        downstream_verify(settings, pinned, tmp_path / "c", index_path("serde"), b"other\n")


def test_removed_target_is_no_longer_listed(
    settings: TufRepositorySettings, pinned: bytes, tmp_path: Path
) -> None:
    """An index file the policy now blocks is removed from the signed targets."""
    repo = MirrorRepository(settings)
    repo.publish({index_path("serde"): index_body("serde")})
    repo.publish({index_path("serde"): None})
    with pytest.raises(TrustError, match="not listed"):
        downstream_verify(
            settings, pinned, tmp_path / "c", index_path("serde"), index_body("serde")
        )


def test_publish_is_cheap_when_nothing_changed_or_due(settings: TufRepositorySettings) -> None:
    """Calling publish every few seconds with no changes writes nothing."""
    repo = MirrorRepository(settings)
    repo.publish({index_path("serde"): index_body("serde")})
    version = repo.timestamp().signed.version
    assert not repo.publish({})
    assert not repo.publish({index_path("serde"): index_body("serde")})
    assert repo.timestamp().signed.version == version


def test_timestamp_is_resigned_before_it_expires(settings: TufRepositorySettings) -> None:
    """Past half its lifetime the timestamp is re-signed, so clients never see it expire."""
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=13)
    repo = MirrorRepository(settings, clock=lambda: later)
    before = repo.timestamp().signed
    assert repo.publish({})
    after = repo.timestamp().signed
    assert after.version == before.version + 1 and after.expires > before.expires


def test_keys_are_private_files(settings: TufRepositorySettings, tmp_path: Path) -> None:
    """Key files are created 0600 in 0700 directories; a readable key is refused."""
    keys = [*settings.keys_dir.glob("*.pem"), *(tmp_path / "offline").glob("*.pem")]
    assert len(keys) == 8  # 2 root, targets, timestamp, snapshot, their standbys, bins
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.keys_dir.stat().st_mode) == 0o700
    (settings.keys_dir / "timestamp.pem").chmod(0o644)
    with pytest.raises(TrustError, match="readable by group or others"):
        MirrorRepository(settings).publish({}, force=True)


def test_online_key_cannot_sign_another_role(settings: TufRepositorySettings) -> None:
    """A stolen timestamp key is not accepted as a snapshot key."""
    root = MirrorRepository(settings).root().signed
    keys = {k: root.keys[k] for k in root.roles["snapshot"].keyids}
    with pytest.raises(TrustError, match="not a trusted snapshot key"):
        load_signer(file_uri(settings.keys_dir / "timestamp.pem"), keys, "snapshot")


def test_root_rotation_needs_both_parties(
    settings: TufRepositorySettings, pinned: bytes, tmp_path: Path
) -> None:
    """A new root key takes effect only once the old threshold (2) and the new one sign."""
    offline = tmp_path / "offline"
    new_key, _ = rotate_key(settings, "root", key_out=offline / "root-3.pem")
    assert new_key is not None
    sign_staged(settings, "root", file_uri(offline / "root-1.pem"))
    with pytest.raises(TrustError, match="lacks signatures"):
        publish_staged(settings)
    sign_staged(settings, "root", file_uri(new_key))
    status = staged_status(settings, "root")
    assert status is not None and not status.verified  # old root still needs 2 of 2
    sign_staged(settings, "root", file_uri(offline / "root-2.pem"))
    assert publish_staged(settings) == ["root v2"]
    repo = MirrorRepository(settings)
    repo.publish({index_path("serde"): index_body("serde")})
    downstream_verify(settings, pinned, tmp_path / "c", index_path("serde"), index_body("serde"))


def test_stranger_key_cannot_sign_staged_root(
    settings: TufRepositorySettings, tmp_path: Path
) -> None:
    """Only old or new root keys may sign a staged root."""
    rotate_key(settings, "timestamp")
    with pytest.raises(TrustError, match="not a trusted root key"):
        sign_staged(settings, "root", file_uri(settings.keys_dir / "snapshot.pem"))


def test_timestamp_key_rotation_retires_the_old_key(
    settings: TufRepositorySettings, pinned: bytes, tmp_path: Path
) -> None:
    """After rotation the old timestamp key no longer signs anything clients accept."""
    offline = tmp_path / "offline"
    old_key = (settings.keys_dir / "timestamp.pem").read_bytes()
    rotate_key(settings, "timestamp")
    for name in ("root-1.pem", "root-2.pem"):
        sign_staged(settings, "root", file_uri(offline / name))
    publish_staged(settings)
    assert (settings.keys_dir / "timestamp.pem").read_bytes() != old_key
    repo = MirrorRepository(settings)
    repo.publish({index_path("rand"): index_body("rand")})
    downstream_verify(settings, pinned, tmp_path / "c", index_path("rand"), index_body("rand"))
    root = repo.root().signed
    stale = tmp_path / "old-ts.pem"
    stale.write_bytes(old_key)
    stale.chmod(0o600)
    keys = {k: root.keys[k] for k in root.roles["timestamp"].keyids}
    with pytest.raises(TrustError):
        load_signer(file_uri(stale), keys, "timestamp")


def test_targets_resigned_with_offline_key(
    settings: TufRepositorySettings, pinned: bytes, tmp_path: Path
) -> None:
    """A re-signed targets is staged, signed offline, published; clients follow it."""
    stage_targets_change(settings)
    sign_staged(settings, "targets", file_uri(tmp_path / "offline" / "targets.pem"))
    assert publish_staged(settings) == ["targets v2"]
    repo = MirrorRepository(settings)
    repo.publish({index_path("syn"): index_body("syn")})
    downstream_verify(settings, pinned, tmp_path / "c", index_path("syn"), index_body("syn"))


def test_old_snapshot_versions_are_pruned(settings: TufRepositorySettings) -> None:
    """Consistent-snapshot files are kept for a few versions, not forever."""
    repo = MirrorRepository(settings)
    for i in range(6):
        repo.publish({index_path("serde"): index_body("serde", (f"1.0.{i}",))})
    names = {p.name for p in settings.metadata_dir.glob("*.snapshot.json")}
    assert names == {"5.snapshot.json", "6.snapshot.json", "7.snapshot.json"}


def test_expiry_settings_are_applied(tmp_path: Path) -> None:
    """The configured expiry times end up in the signed metadata."""
    s = TufRepositorySettings(
        dir=tmp_path / "r", bins=2, expiry=Expiry(timestamp=timedelta(hours=2))
    )
    init_repository(s, tmp_path / "off", root_keys=1, root_threshold=1)
    left = MirrorRepository(s).timestamp().signed.expires - datetime.now(UTC)
    assert timedelta(hours=1, minutes=58) < left <= timedelta(hours=2)


def test_bins_key_rotation_redelegates_and_resigns(
    settings: TufRepositorySettings, pinned: bytes, tmp_path: Path
) -> None:
    """After rotating the bins key, clients accept bins signed by the new key only."""
    repo = MirrorRepository(settings)
    repo.publish({index_path("serde"): index_body("serde")})
    old_bins = (settings.keys_dir / "bins.pem").read_bytes()
    rotate_bins_key(settings)
    assert (settings.keys_dir / "bins.pem").read_bytes() == old_bins  # until targets signs
    sign_staged(settings, "targets", file_uri(tmp_path / "offline" / "targets.pem"))
    assert publish_staged(settings) == ["targets v2"]
    assert (settings.keys_dir / "bins.pem").read_bytes() != old_bins
    downstream_verify(settings, pinned, tmp_path / "c", index_path("serde"), index_body("serde"))
    targets = repo.targets().signed
    assert targets.delegations is not None
    stale = tmp_path / "old-bins.pem"
    stale.write_bytes(old_bins)
    stale.chmod(0o600)
    with pytest.raises(TrustError):
        load_signer(file_uri(stale), dict(targets.delegations.keys), "bins")


def test_bins_rotation_needs_the_targets_key(settings: TufRepositorySettings) -> None:
    """An online key cannot re-delegate the bins (that would let it take over targets)."""
    rotate_bins_key(settings)
    with pytest.raises(TrustError, match="not a trusted targets key"):
        sign_staged(settings, "targets", file_uri(settings.keys_dir / "snapshot.pem"))
    with pytest.raises(TrustError, match="lacks signatures"):
        publish_staged(settings)
