"""Key files and signer URIs for the mirror's TUF repository.

Private keys are PEM/PKCS#8 files created with mode 0600 (never group/world readable, never
logged) and loaded through securesystemslib signer URIs (`file2:<path>`), so a KMS or HSM
URI (`gcpkms:...`, `awskms:...`, `hsm:...`) can replace any of them without code changes.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from mirror.errors import TrustError
from mirror.trust._tuf import CryptoSigner, Key, Signer

KEY_FILE_MODE = 0o600
KEY_DIR_MODE = 0o700


def write_private_key(path: Path, signer: CryptoSigner, overwrite: bool = False) -> None:
    """Write a private key readable by its owner only; refuses to clobber an existing key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, KEY_DIR_MODE)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        # The mode is applied at creation: there is no moment where the key is world-readable.
        fd = os.open(path, flags, KEY_FILE_MODE)
    except FileExistsError as e:
        raise TrustError(f"refusing to overwrite existing key file {path}") from e
    with os.fdopen(fd, "wb") as f:
        f.write(signer.private_bytes)
    os.chmod(path, KEY_FILE_MODE)


def generate_key_file(path: Path) -> CryptoSigner:
    signer = CryptoSigner.generate_ed25519()
    write_private_key(path, signer)
    return signer


def file_uri(path: Path) -> str:
    return f"file2:{path.resolve()}"


def load_signer(uri: str, candidates: dict[str, Key], role: str) -> Signer:
    """The signer behind `uri`, matched against the public keys `role` is allowed to use.

    Stops signing with a key the role does not trust (which clients would reject anyway,
    but only after the repository had published unusable metadata).
    """
    if uri.startswith("file2:"):
        path = Path(uri.removeprefix("file2:"))
        if not path.is_file():
            raise TrustError(f"{role} key not found: {path}")
        if path.stat().st_mode & 0o077:
            raise TrustError(f"{role} key {path} is readable by group or others (chmod 600)")
    for key in candidates.values():
        # Each signer backend raises its own types for "not this key"; try the next one.
        with contextlib.suppress(Exception):
            return Signer.from_priv_key_uri(uri, key)
    raise TrustError(f"the key at {uri.split(':', 1)[0]}:... is not a trusted {role} key")
