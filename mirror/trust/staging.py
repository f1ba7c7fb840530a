"""Changes signed by several people, where each of them is: stage, sign, publish.

Root and targets are signed with offline keys that belong to different holders (a person,
CI, a token in a safe). A change is staged as a file, `<dir>/staged/<role>.json`. Each holder
signs a copy of it on their own machine (`sign_file`), never needing the repository or the
other keys; the copies come back and their signatures are merged (`add_signatures`); the
change is published once every threshold is met (`publish_staged`).

Checks, each naming the attack it stops:
  * a root must carry the threshold of the current root's keys and of its own keys (TUF
    5.3.4): one stolen root key, or one careless holder, cannot change trust alone;
  * a staged root must be exactly the next version (5.3.5): an old, fully signed root
    cannot be replayed to roll trust back; a staged targets must be newer than the
    published one (rollback);
  * a returned copy must sign exactly the staged content: a copy altered on its way (or
    signed for an earlier staging) is refused, and so is a signature that does not verify
    or comes from a key the role does not trust;
  * keys are enrolled by public key with their keyid recomputed, and never twice, so one
    holder cannot count as two.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from mirror.errors import TrustError
from mirror.trust._tuf import CryptoSigner, Key, Metadata, Root, Targets
from mirror.trust.keys import (
    distinct_keys,
    file_uri,
    generate_key_file,
    load_signer,
    write_private_key,
)
from mirror.trust.repository import (
    MirrorRepository,
    generate_online_keys,
    initial_root,
    initial_targets,
    refuse_existing,
    repository_lock,
    write_initial_metadata,
    write_metadata,
)
from mirror.trust.settings import STANDBY_ROLES, TufRepositorySettings

STAGED_ROLES = ("root", "targets")
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class StagedStatus:
    role: str
    version: int
    verified: bool  # every threshold the change needs is met
    signed: tuple[str, ...]  # keyids whose signatures verify
    missing: tuple[str, ...]  # keyids that could still sign
    needs: str  # the thresholds, in words


def staged_path(settings: TufRepositorySettings, role: str) -> Path:
    if role not in STAGED_ROLES:
        raise TrustError(f"only {' and '.join(STAGED_ROLES)} changes are staged, not {role!r}")
    return settings.dir / "staged" / f"{role}.json"


def read_metadata(path: Path, role: str | None = None) -> Metadata[Any]:
    try:
        md: Metadata[Any] = Metadata.from_bytes(path.read_bytes())
    except OSError as e:
        raise TrustError(f"cannot read {path}: {e.strerror}") from e
    except Exception as e:  # DeserializationError and friends
        raise TrustError(f"{path} is not TUF metadata: {e}") from e
    if role is not None and md.signed.type != role:
        raise TrustError(f"{path} holds {md.signed.type} metadata, not {role}")
    return md


def published_root(settings: TufRepositorySettings) -> Root | None:
    """The root clients trust now, or None before the first publish."""
    if not (settings.metadata_dir / "root.json").is_file():
        return None
    return MirrorRepository(settings).root().signed


def stage(settings: TufRepositorySettings, md: Metadata[Any]) -> Path:
    """Write an unsigned change for the holders to sign (replacing any earlier staging)."""
    md.signatures.clear()
    path = staged_path(settings, md.signed.type)
    write_metadata(path, md.to_bytes())
    return path


# -- the first version: keys created by their holders, enrolled by public key -------------------


def stage_initial(
    settings: TufRepositorySettings,
    root_keys: list[Key],
    root_threshold: int,
    targets_keys: list[Key],
    clock: Clock = _utcnow,
) -> None:
    """Create the online keys and stage version-1 root and targets for their holders."""
    check_initial(settings, root_keys, root_threshold)
    targets_keys = distinct_keys(targets_keys, "targets")
    online = generate_online_keys(settings)
    now = clock()
    stage(settings, initial_root(settings, root_keys, root_threshold, targets_keys, online, now))
    stage(settings, initial_targets(settings, online["bins"][0], now))


def check_initial(settings: TufRepositorySettings, root_keys: list[Key], threshold: int) -> None:
    """Refuse before anything is created: a repository, a staging, bad root keys."""
    refuse_existing(settings)
    if staged_path(settings, "root").exists():
        raise TrustError(f"{settings.dir} already has a staged root: publish it or remove it")
    distinct_keys(root_keys, "root")
    if not 1 <= threshold <= len(root_keys):
        raise TrustError("root threshold must be between 1 and the number of root keys")


# -- what may sign, and what is signed -----------------------------------------------------------


def allowed_keys(
    role: str, staged: Metadata[Any], current: Root | None, staged_root: Root | None
) -> dict[str, Key]:
    """The keys whose signatures count for this staged change."""
    if role == "root":
        new: Root = staged.signed
        keys = {k: new.keys[k] for k in new.roles["root"].keyids}
        if current is not None:
            keys |= {k: current.keys[k] for k in current.roles["root"].keyids}
        return keys
    root = staged_root or current
    if root is None:
        return {}
    return {k: root.keys[k] for k in root.roles["targets"].keyids}


def verification(
    role: str, staged: Metadata[Any], current: Root | None, staged_root: Root | None
) -> StagedStatus:
    version = staged.signed.version
    if role == "root":
        new: Root = staged.signed
        if current is None:
            # Version 1 has no predecessor: its own threshold is the whole requirement.
            result: Any = new.get_verification_result(
                "root", staged.signed_bytes, staged.signatures
            )
            needs = f"{new.roles['root'].threshold} of its {len(new.roles['root'].keyids)} keys"
        else:
            _check_next_root(new, current)
            result = new.get_root_verification_result(
                current, staged.signed_bytes, staged.signatures
            )
            needs = (
                f"{current.roles['root'].threshold} of the current root's keys and "
                f"{new.roles['root'].threshold} of its own"
            )
    else:
        root = staged_root or current
        if root is None:
            raise TrustError("no root to verify targets against")
        result = root.get_verification_result("targets", staged.signed_bytes, staged.signatures)
        needs = f"{root.roles['targets'].threshold} targets key(s)"
    return StagedStatus(
        role=role,
        version=version,
        verified=result.verified,
        signed=tuple(sorted(result.signed)),
        missing=tuple(sorted(result.unsigned)),
        needs=needs,
    )


def staged_status(settings: TufRepositorySettings, role: str) -> StagedStatus | None:
    path = staged_path(settings, role)
    if not path.is_file():
        return None
    staged = read_metadata(path, role)
    return verification(role, staged, published_root(settings), _staged_root(settings))


def _staged_root(settings: TufRepositorySettings) -> Root | None:
    path = staged_path(settings, "root")
    return read_metadata(path, "root").signed if path.is_file() else None


# -- signing, where the holder is ----------------------------------------------------------------


@dataclass(frozen=True)
class SignedFile:
    role: str
    version: int
    keyid: str
    summary: list[str]  # what was signed, for the holder to read


def sign_file(path: Path, signer_uri: str, trusted_root: Root | None = None) -> SignedFile:
    """Add one holder's signature to a staged file (a copy carried to them, or the original).

    Needs neither the repository nor network. `trusted_root` (the root clients trust now,
    e.g. a copy of /tuf/root.json) lets an outgoing root key sign a rotation, refuses to
    sign a root that is not the next version (replay), and shows what changes.
    """
    md = read_metadata(path)
    role = md.signed.type
    if role not in STAGED_ROLES:
        raise TrustError(f"{path}: only root and targets are signed offline, not {role}")
    if role == "root":
        if trusted_root is not None and md.signed.version != trusted_root.version + 1:
            raise TrustError(
                f"{path} is root v{md.signed.version}, but the trusted root is "
                f"v{trusted_root.version}: only v{trusted_root.version + 1} can follow it"
            )
        candidates: Mapping[str, Key] | None = allowed_keys(role, md, trusted_root, None)
    else:
        candidates = allowed_keys(role, md, trusted_root, None) if trusted_root else None
    signer = load_signer(signer_uri, candidates, role)
    md.sign(signer, append=True)
    write_metadata(path, md.to_bytes())
    return SignedFile(role, md.signed.version, signer.public_key.keyid, describe(md, trusted_root))


def describe(md: Metadata[Any], trusted_root: Root | None) -> list[str]:
    """What a holder is about to sign: the version, expiry, and every key and threshold."""
    signed = md.signed
    lines = [f"{signed.type} v{signed.version}, expires {signed.expires.isoformat()}"]
    if isinstance(signed, Root):
        for role, spec in sorted(signed.roles.items()):
            ids = sorted(spec.keyids)
            was = sorted(trusted_root.roles[role].keyids) if trusted_root else None
            change = (
                "" if was is None or was == ids else f"  (was {', '.join(k[:12] for k in was)})"
            )
            lines.append(f"  {role}: {spec.threshold} of {', '.join(k[:12] for k in ids)}{change}")
    elif isinstance(signed, Targets) and signed.delegations is not None:
        succinct = signed.delegations.succinct_roles
        if succinct is not None:
            lines.append(
                f"  delegates every index path to {succinct.number_of_bins} bins, key(s) "
                + ", ".join(k[:12] for k in succinct.keyids)
            )
    return lines


def sign_staged(settings: TufRepositorySettings, role: str, signer_uri: str) -> StagedStatus:
    """A holder at the repository signs its staged file directly."""
    path = staged_path(settings, role)
    if not path.is_file():
        raise TrustError(f"no staged {role}: stage a change first (`crate-mirror tuf rotate`)")
    staged = read_metadata(path, role)
    candidates = allowed_keys(role, staged, published_root(settings), _staged_root(settings))
    staged.sign(load_signer(signer_uri, candidates, role), append=True)
    write_metadata(path, staged.to_bytes())
    status = staged_status(settings, role)
    assert status is not None
    return status


def add_signatures(settings: TufRepositorySettings, copy: Path) -> StagedStatus:
    """Merge the signatures of a signed copy into the staged file, checking each one."""
    returned = read_metadata(copy)
    role = returned.signed.type
    path = staged_path(settings, role)
    if not path.is_file():
        raise TrustError(f"{copy} signs a {role} change, but none is staged")
    staged = read_metadata(path, role)
    if returned.signed_bytes != staged.signed_bytes:
        # Altered on its way to or from a holder, or signed for an earlier staging.
        raise TrustError(
            f"{copy} does not sign the staged {role} v{staged.signed.version}: its content "
            "differs (tampered, or from another staging); nothing was merged"
        )
    allowed = allowed_keys(role, staged, published_root(settings), _staged_root(settings))
    for keyid, signature in returned.signatures.items():
        key = allowed.get(keyid)
        if key is None:
            raise TrustError(f"{copy}: {keyid[:16]}... is not a {role} key; nothing was merged")
        try:
            key.verify_signature(signature, staged.signed_bytes)
        except Exception as e:  # securesystemslib's UnverifiedSignatureError and friends
            raise TrustError(
                f"{copy}: the signature by {keyid[:16]}... does not verify (tampered); "
                "nothing was merged"
            ) from e
    for keyid, signature in returned.signatures.items():
        staged.signatures[keyid] = signature
    write_metadata(path, staged.to_bytes())
    status = staged_status(settings, role)
    assert status is not None
    return status


# -- publishing ----------------------------------------------------------------------------------


def publish_staged(settings: TufRepositorySettings, clock: Clock = _utcnow) -> list[str]:
    """Publish every staged change whose thresholds are met; refuse if any is not.

    Returns what was published, e.g. ["root v3", "targets v2"]. Nothing is written unless
    every staged change verifies.
    """
    current = published_root(settings)
    root_md = _read_staged(settings, "root")
    targets_md = _read_staged(settings, "targets")
    if root_md is None and targets_md is None:
        return []
    new_root = root_md.signed if root_md is not None else None
    _check_versions(settings, current, root_md, targets_md)
    for role, md in (("root", root_md), ("targets", targets_md)):
        if md is None:
            continue
        status = verification(role, md, current, new_root)
        if not status.verified:
            raise TrustError(
                f"staged {role} v{status.version} lacks signatures (needs {status.needs}); "
                f"still unsigned: {', '.join(k[:12] for k in status.missing) or 'none'}"
            )
        if md.signed.expires <= clock():
            raise TrustError(f"staged {role} v{status.version} has expired: stage it again")
    done = []
    if current is None:
        if root_md is None or targets_md is None:
            raise TrustError("the first publish needs both the staged root and targets")
        write_initial_metadata(settings, root_md, targets_md, clock)
        done = [f"root v{root_md.signed.version}", f"targets v{targets_md.signed.version}"]
    else:
        repo = MirrorRepository(settings, clock)
        if root_md is not None:
            data = root_md.to_bytes()
            with repository_lock(settings.dir):
                write_metadata(settings.metadata_dir / f"{root_md.signed.version}.root.json", data)
                write_metadata(settings.metadata_dir / "root.json", data)
                for role in ("timestamp", "snapshot"):
                    _activate_next_key(settings, role, root_md.signed)
            done.append(f"root v{root_md.signed.version}")
        new_targets: Metadata[Targets] | None = targets_md
        rebinned = new_targets is not None and _activate_next_bins_key(settings, new_targets)
        repo.publish({}, force=True, new_targets=new_targets, resign_bins=rebinned)
        if targets_md is not None:
            done.append(f"targets v{targets_md.signed.version}")
    for role in STAGED_ROLES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged_path(settings, role))
    return done


def _read_staged(settings: TufRepositorySettings, role: str) -> Metadata[Any] | None:
    path = staged_path(settings, role)
    return read_metadata(path, role) if path.is_file() else None


def _check_versions(
    settings: TufRepositorySettings,
    current: Root | None,
    root_md: Metadata[Any] | None,
    targets_md: Metadata[Any] | None,
) -> None:
    """Replay and rollback: only the next root, only a newer targets."""
    if root_md is not None:
        _check_next_root(root_md.signed, current)
    if targets_md is not None:
        published = 0 if current is None else MirrorRepository(settings).targets().signed.version
        if targets_md.signed.version <= published:
            raise TrustError(
                f"staged targets v{targets_md.signed.version} is not newer than the "
                f"published v{published} (rollback)"
            )


def _check_next_root(new: Root, current: Root | None) -> None:
    expected = 1 if current is None else current.version + 1
    if new.version != expected:
        raise TrustError(
            f"staged root is v{new.version} but only v{expected} can follow the published "
            "root (an old root replayed?)"
        )


def _activate_next_key(settings: TufRepositorySettings, role: str, root: Root) -> None:
    """Rotated online keys (`ROLE.pem.next`, `ROLE.standby.pem.next`) replace the old ones
    once the published root names them."""
    keys = {k: root.keys[k] for k in root.roles[role].keyids}
    for final in (settings.keys_dir / f"{role}.pem", settings.standby_path(role)):
        nxt = final.with_name(final.name + ".next")
        if nxt.is_file():
            with contextlib.suppress(TrustError):
                load_signer(f"file2:{nxt}", keys, role)
                os.replace(nxt, final)


def _activate_next_bins_key(settings: TufRepositorySettings, targets: Metadata[Targets]) -> bool:
    """After a bins key rotation, the new key signs every bin once targets delegates to it."""
    nxt = settings.keys_dir / "bins.pem.next"
    delegations = targets.signed.delegations
    if not nxt.is_file() or delegations is None:
        return False
    try:
        load_signer(f"file2:{nxt}", dict(delegations.keys), "bins")
    except TrustError:
        return False
    with repository_lock(settings.dir):
        os.replace(nxt, settings.keys_dir / "bins.pem")
    return True


# -- rotation: stage the change, the holders sign -------------------------------------------------


def stage_root_change(
    settings: TufRepositorySettings, change: Callable[[Root], None], clock: Clock = _utcnow
) -> Metadata[Root]:
    """Apply `change` to the next root version (on top of any staged one), unsigned."""
    current = MirrorRepository(settings).root()
    path = staged_path(settings, "root")
    md: Metadata[Root] = read_metadata(path, "root") if path.is_file() else current
    md.signed.version = current.signed.version + 1
    md.signed.expires = clock() + settings.expiry.root
    change(md.signed)
    stage(settings, md)
    return md


def stage_targets_change(
    settings: TufRepositorySettings,
    change: Callable[[Targets], None] = lambda _: None,
    clock: Clock = _utcnow,
) -> Metadata[Targets]:
    """The next targets version (new expiry), with `change` applied, unsigned."""
    repo = MirrorRepository(settings)
    path = staged_path(settings, "targets")
    md: Metadata[Targets] = read_metadata(path, "targets") if path.is_file() else repo.targets()
    md.signed.version = repo.targets().signed.version + 1
    md.signed.expires = clock() + settings.expiry.root
    change(md.signed)
    stage(settings, md)
    return md


def rotate_key(
    settings: TufRepositorySettings,
    role: str,
    key_out: Path | None = None,
    remove_keyids: tuple[str, ...] = (),
    threshold: int | None = None,
    new_key: Key | None = None,
) -> tuple[Path | None, str]:
    """Stage a root that trusts a new key for a root-delegated role.

    The new key is `new_key` (enrolled by public key: its holder keeps the private half)
    or generated into `key_out`; timestamp and snapshot default to `<dir>/keys/ROLE.pem.next`,
    activated when the root is published. Online roles drop their old keys (a stolen online
    key must stop working); root and targets keep theirs unless `remove_keyids` names them.
    Returns (the generated key file or None, the new keyid).
    """
    if role not in ("root", "targets", "snapshot", "timestamp"):
        raise TrustError(
            f"cannot rotate {role!r} in root: choose root, targets, snapshot or timestamp"
        )
    if new_key is None:
        if key_out is None:
            if role not in STANDBY_ROLES:
                raise TrustError(f"{role} is an offline key: give --add-key PUB or --key-out FILE")
            key_out = settings.keys_dir / f"{role}.pem.next"
        new_key = _fresh_key(key_out).public_key
    key = new_key
    # An online role gets a new standby with its new key (the old standby goes with the old).
    standby = (
        _fresh_key(settings.standby_path(role).with_suffix(".pem.next")).public_key
        if role in STANDBY_ROLES
        else None
    )

    def change(root: Root) -> None:
        if key.keyid in root.keys and key.keyid in root.roles[role].keyids:
            raise TrustError(f"{key.keyid[:16]}... is already a {role} key")
        old = list(root.roles[role].keyids)
        drop = set(remove_keyids) if role in ("root", "targets") else set(old) | set(remove_keyids)
        unknown = set(remove_keyids) - set(old)
        if unknown:
            raise TrustError(f"not a {role} key: {', '.join(k[:16] for k in sorted(unknown))}")
        for keyid in old:
            if keyid in drop:
                root.revoke_key(keyid, role)
        root.add_key(key, role)
        if standby is not None:
            root.add_key(standby, role)
        if threshold is not None:
            root.roles[role].threshold = threshold
        if not 1 <= root.roles[role].threshold <= len(root.roles[role].keyids):
            raise TrustError(f"{role} threshold must be between 1 and its number of keys")

    stage_root_change(settings, change)
    if role == "targets":
        # Targets signed by the old key stops verifying once clients see the new root: the
        # re-signed targets is staged with it, and both are published together.
        stage_targets_change(settings)
    return key_out, str(key.keyid)


def _fresh_key(path: Path) -> CryptoSigner:
    with contextlib.suppress(FileNotFoundError):
        if path.name.endswith(".next"):
            path.unlink()  # an abandoned earlier rotation
    return generate_key_file(path)


def switch_to_standby(
    settings: TufRepositorySettings, role: str, standby_file: Path | None = None
) -> tuple[str, str, int]:
    """Sign `role` with its standby key from now on, without the root holders.

    Root already trusts the standby key (threshold 1), so clients accept what it signs at
    once: use it when the active key file was exposed or lost. The retired key stays trusted
    by clients until the root holders publish the root this stages, which revokes it and
    enrolls a fresh standby. Returns (retired keyid, now active keyid, staged root version).
    """
    if role not in STANDBY_ROLES:
        raise TrustError(f"only {' and '.join(STANDBY_ROLES)} have standby keys, not {role!r}")
    if role in settings.signers:
        raise TrustError(f"{role} signs with {settings.signers[role]}: switch keys there")
    repo = MirrorRepository(settings)
    root = repo.root().signed
    trusted = {k: root.keys[k] for k in root.roles[role].keyids}
    source = standby_file or settings.standby_path(role)
    if not source.is_file():
        raise TrustError(
            f"no standby {role} key at {source}: the root holders must sign a rotation "
            f"(`crate-mirror tuf rotate {role}`)"
        )
    standby = load_signer(file_uri(source), trusted, role)
    active = settings.keys_dir / f"{role}.pem"
    retired = load_signer(file_uri(active), None, role).public_key if active.is_file() else None
    if retired is not None and retired.keyid == standby.public_key.keyid:
        raise TrustError(f"{source} is already the active {role} key")
    private = load_pem_private_key(source.read_bytes(), password=None)
    with repository_lock(settings.dir):
        write_private_key(active, CryptoSigner(private), overwrite=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(settings.standby_path(role))  # now active: no longer a standby
    repo.publish({}, force=True)
    fresh = _fresh_key(settings.standby_path(role).with_suffix(".pem.next")).public_key

    def change(new_root: Root) -> None:
        if retired is not None and retired.keyid in new_root.roles[role].keyids:
            new_root.revoke_key(retired.keyid, role)
        new_root.add_key(fresh, role)

    staged = stage_root_change(settings, change)
    old_id = retired.keyid if retired is not None else "(none)"
    return old_id, str(standby.public_key.keyid), staged.signed.version


def rotate_bins_key(settings: TufRepositorySettings) -> str:
    """Stage targets re-delegating the bins to a new online key (`keys/bins.pem.next`).

    The bins are delegated by targets, not root: the targets key holder(s) sign the staged
    targets, and publishing it switches the server to the new key and re-signs every bin.
    The old bins key stops being trusted as soon as clients see the new targets version.
    """
    nxt = settings.keys_dir / "bins.pem.next"
    with contextlib.suppress(FileNotFoundError):
        nxt.unlink()  # an abandoned earlier rotation
    key = generate_key_file(nxt).public_key

    def change(targets: Targets) -> None:
        delegations = targets.delegations
        if delegations is None or delegations.succinct_roles is None:
            raise TrustError("targets metadata has no hashed-bin delegation")
        succinct = delegations.succinct_roles
        for keyid in list(succinct.keyids):
            succinct.keyids.remove(keyid)
            delegations.keys.pop(keyid, None)
        delegations.keys[key.keyid] = key
        succinct.keyids.append(key.keyid)

    stage_targets_change(settings, change)
    return str(key.keyid)
