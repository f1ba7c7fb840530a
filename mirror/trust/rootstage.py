"""Root changes that need several parties: stage, collect signatures, then promote.

Root is the trust anchor, so a new root must carry a threshold of signatures from the keys
of the current root *and* from its own keys (TUF spec 5.3.4): one stolen root key, or one
careless operator, cannot rotate trust alone. The staged root lives in `<dir>/staged/` and
is never served until `promote_staged_root` has checked both thresholds.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mirror.errors import TrustError
from mirror.trust._tuf import Metadata, Root, Signer, Targets
from mirror.trust.keys import generate_key_file, load_signer
from mirror.trust.repository import TOP_ROLES, MirrorRepository, repository_lock, write_metadata
from mirror.trust.settings import ONLINE_ROLES, TufRepositorySettings

_ROOT_DELEGATED = ("targets", "snapshot", "timestamp")


@dataclass(frozen=True)
class StagedRootStatus:
    version: int
    verified: bool  # both the old and the new root's thresholds are met
    signed: tuple[str, ...]  # keyids that have signed
    missing: tuple[str, ...]  # keyids that could still sign


def staged_path(settings: TufRepositorySettings) -> Path:
    return settings.dir / "staged" / "root.json"


def _load(path: Path) -> Metadata[Root]:
    try:
        md: Metadata[Root] = Metadata.from_bytes(path.read_bytes())
    except OSError as e:
        raise TrustError(f"cannot read {path}: {e.strerror}") from e
    return md


def stage_root_change(
    settings: TufRepositorySettings,
    change: Callable[[Root], None],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC).replace(microsecond=0),
) -> Metadata[Root]:
    """Apply `change` to the next root version (on top of any staged one), unsigned."""
    current = MirrorRepository(settings).root()
    path = staged_path(settings)
    md = _load(path) if path.is_file() else current
    md.signatures.clear()  # content changes: earlier signatures no longer apply
    md.signed.version = current.signed.version + 1
    md.signed.expires = clock() + settings.expiry.root
    change(md.signed)
    write_metadata(path, md.to_bytes())
    return md


def staged_status(settings: TufRepositorySettings) -> StagedRootStatus | None:
    path = staged_path(settings)
    if not path.is_file():
        return None
    new = _load(path)
    current = MirrorRepository(settings).root().signed
    result = new.signed.get_root_verification_result(current, new.signed_bytes, new.signatures)
    return StagedRootStatus(
        version=new.signed.version,
        verified=result.verified,
        signed=tuple(sorted(result.signed)),
        missing=tuple(sorted(result.unsigned)),
    )


def sign_staged_root(settings: TufRepositorySettings, signer_uri: str) -> StagedRootStatus:
    """Add one party's signature (old or new root key) to the staged root."""
    path = staged_path(settings)
    if not path.is_file():
        raise TrustError("no staged root: run `crate-mirror tuf rotate ...` first")
    new = _load(path)
    current = MirrorRepository(settings).root().signed
    candidates = {k: current.keys[k] for k in current.roles["root"].keyids}
    candidates |= {k: new.signed.keys[k] for k in new.signed.roles["root"].keyids}
    new.sign(load_signer(signer_uri, candidates, "root"), append=True)
    write_metadata(path, new.to_bytes())
    status = staged_status(settings)
    assert status is not None
    return status


def promote_staged_root(settings: TufRepositorySettings) -> int:
    """Publish a fully signed staged root, switch to rotated online keys, re-sign online roles."""
    status = staged_status(settings)
    if status is None:
        raise TrustError("no staged root to publish")
    if not status.verified:
        raise TrustError(
            f"staged root v{status.version} lacks signatures (threshold of old and new root "
            f"keys); still unsigned: {', '.join(k[:12] for k in status.missing)}"
        )
    repo = MirrorRepository(settings)
    data = staged_path(settings).read_bytes()
    new = _load(staged_path(settings)).signed
    with repository_lock(settings.dir):
        write_metadata(settings.metadata_dir / f"{status.version}.root.json", data)
        write_metadata(settings.metadata_dir / "root.json", data)
        for role in ONLINE_ROLES:
            _activate_next_key(settings, role, new)
        os.unlink(staged_path(settings))
    repo.publish({}, force=True)
    return status.version


def _activate_next_key(settings: TufRepositorySettings, role: str, root: Root) -> None:
    """A rotated online key (`<role>.pem.next`) replaces the old one once root names it."""
    nxt = settings.keys_dir / f"{role}.pem.next"
    if nxt.is_file() and role in root.roles:
        keys = {k: root.keys[k] for k in root.roles[role].keyids}
        with contextlib.suppress(TrustError):
            load_signer(f"file2:{nxt}", keys, role)
            os.replace(nxt, settings.keys_dir / f"{role}.pem")


def rotate_key(
    settings: TufRepositorySettings,
    role: str,
    key_out: Path | None = None,
    remove_keyids: tuple[str, ...] = (),
    threshold: int | None = None,
) -> tuple[Path, str]:
    """Generate a new key for a root-delegated role and stage a root that trusts it.

    Online roles drop their old keys (a stolen online key must stop working); root keeps
    its other keys unless `remove_keyids` names them. Returns (key file, new keyid).
    """
    if role not in TOP_ROLES:
        raise TrustError(f"cannot rotate {role!r}: choose one of {', '.join(TOP_ROLES)}")
    if key_out is None:
        if role not in ("timestamp", "snapshot"):
            raise TrustError(f"{role} is an offline key: pass --key-out for the new key file")
        key_out = settings.keys_dir / f"{role}.pem.next"
    with contextlib.suppress(FileNotFoundError):
        if key_out.name.endswith(".next"):
            key_out.unlink()  # an abandoned earlier rotation
    signer = generate_key_file(key_out)
    new_keyid = signer.public_key.keyid

    def change(root: Root) -> None:
        old = list(root.roles[role].keyids)
        drop = set(remove_keyids) if role == "root" else set(old) | set(remove_keyids)
        for keyid in old:
            if keyid in drop:
                root.revoke_key(keyid, role)
        root.add_key(signer.public_key, role)
        if threshold is not None:
            root.roles[role].threshold = threshold
        if root.roles[role].threshold > len(root.roles[role].keyids):
            raise TrustError(f"{role} threshold exceeds its number of keys")

    stage_root_change(settings, change)
    return key_out, new_keyid


def resign_targets(settings: TufRepositorySettings, signer_uris: list[str]) -> int:
    """Re-sign targets (new version and expiry) with offline keys, then publish it."""
    repo = MirrorRepository(settings)
    root = repo.root().signed
    keys = {k: root.keys[k] for k in root.roles["targets"].keyids}
    md: Metadata[Targets] = repo.targets()
    md.signed.version += 1
    md.signed.expires = datetime.now(UTC).replace(microsecond=0) + settings.expiry.root
    md.signatures.clear()
    signers: list[Signer] = [load_signer(uri, keys, "targets") for uri in signer_uris]
    for signer in signers:
        md.sign(signer, append=True)
    result = root.get_verification_result("targets", md.signed_bytes, md.signatures)
    if not result.verified:
        raise TrustError("targets signatures do not meet the threshold root requires")
    repo.publish({}, new_targets=md)
    return md.signed.version


def rotate_bins_key(settings: TufRepositorySettings, targets_signer_uris: list[str]) -> str:
    """Replace the online bins key: targets re-delegates the bins, every bin is re-signed.

    Needs the offline targets key(s), because the delegation lives in targets metadata; the
    old bins key stops being trusted as soon as clients see the new targets version.
    """
    repo = MirrorRepository(settings)
    root = repo.root().signed
    md: Metadata[Targets] = repo.targets()
    delegations = md.signed.delegations
    if delegations is None or delegations.succinct_roles is None:
        raise TrustError("targets metadata has no hashed-bin delegation")
    succinct = delegations.succinct_roles
    current = settings.keys_dir / "bins.pem"
    nxt = settings.keys_dir / "bins.pem.next"
    with contextlib.suppress(FileNotFoundError):
        nxt.unlink()  # an abandoned earlier rotation
    signer = generate_key_file(nxt)
    for keyid in list(succinct.keyids):
        succinct.keyids.remove(keyid)
        delegations.keys.pop(keyid, None)
    delegations.keys[signer.public_key.keyid] = signer.public_key
    succinct.keyids.append(signer.public_key.keyid)
    md.signed.version += 1
    md.signed.expires = datetime.now(UTC).replace(microsecond=0) + settings.expiry.root
    md.signatures.clear()
    keys = {k: root.keys[k] for k in root.roles["targets"].keyids}
    for uri in targets_signer_uris:
        md.sign(load_signer(uri, keys, "targets"), append=True)
    if not root.get_verification_result("targets", md.signed_bytes, md.signatures).verified:
        raise TrustError("targets signatures do not meet the threshold root requires")
    with repository_lock(settings.dir):
        if current.exists():
            os.replace(current, settings.keys_dir / "bins.pem.old")
        os.replace(nxt, current)
    repo.publish({}, new_targets=md, resign_bins=True)
    with contextlib.suppress(FileNotFoundError):
        (settings.keys_dir / "bins.pem.old").unlink()
    return str(signer.public_key.keyid)
