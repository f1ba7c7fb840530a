"""Keys: private key files, public key files, and signers behind securesystemslib URIs.

Private keys are PEM/PKCS#8 files created with mode 0600 (never group/world readable, never
logged), or keys inside a PKCS#11 token (mirror.trust.pkcs11) that never leave it. Each is
reached through a signer URI: `file2:<path>` or `hsm:<id>?label=<token>`; a KMS URI
(`gcpkms:...`, `awskms:...`) works wherever the public key is known.

A key held by someone else is enrolled by its public key file (`tuf key new` writes one):
JSON with keytype, scheme, keyval and keyid. The keyid is recomputed from the key itself, so
a file cannot claim another key's id.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from mirror.errors import TrustError
from mirror.trust._tuf import CryptoSigner, Key, Signer, compute_default_keyid

KEY_FILE_MODE = 0o600
KEY_DIR_MODE = 0o700
PUBLIC_KEY_SUFFIX = ".pub"


def write_private_key(path: Path, signer: CryptoSigner, overwrite: bool = False) -> None:
    """Write a private key readable by its owner only; refuses to clobber an existing key."""
    if path.is_dir():
        raise TrustError(f"{path} is a directory: give the key file's name")
    if not path.parent.is_dir():
        # A directory made for keys is private. One that exists is left as it is: it was
        # made 0700 too when `--out key.pem` named the working directory (or `--out /x`, /).
        path.parent.mkdir(parents=True)
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


def signer_uri(value: str) -> str:
    """A signer URI as given, or `file2:` + absolute path for a plain PEM path."""
    if ":" in value and not Path(value).exists():
        return value
    return file_uri(Path(value))


# -- public keys ------------------------------------------------------------------------------


def public_key_json(key: Key) -> bytes:
    return json.dumps({"keyid": key.keyid, **key.to_dict()}, indent=1, sort_keys=True).encode()


def write_public_key(path: Path, key: Key) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError as e:
        raise TrustError(f"refusing to overwrite existing file {path}") from e
    with os.fdopen(fd, "wb") as f:
        f.write(public_key_json(key) + b"\n")


def parse_public_key(data: bytes, source: str) -> Key:
    """A public key from `tuf key new`'s JSON, its keyid checked against its content."""
    try:
        raw: Any = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("expected a JSON object")
        claimed = raw.pop("keyid", None)
        keyid = compute_default_keyid(raw["keytype"], raw["scheme"], raw["keyval"])
        key = Key.from_dict(keyid, raw)
    except (ValueError, KeyError, TypeError) as e:
        raise TrustError(f"{source} is not a public key file: {e}") from e
    if claimed is not None and claimed != keyid:
        # A key file claiming another key's id could make one key count twice toward a
        # threshold, or pass for someone else's key in a review.
        raise TrustError(f"{source}: keyid {claimed[:16]}... does not match the key's content")
    return key


def read_public_key(path: Path) -> Key:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TrustError(f"cannot read public key {path}: {e.strerror}") from e
    return parse_public_key(data, str(path))


def distinct_keys(keys: list[Key], role: str) -> list[Key]:
    """Refuse the same key twice: one holder must never meet a threshold of two."""
    seen: dict[str, Key] = {}
    for key in keys:
        if key.keyid in seen:
            raise TrustError(f"{role}: key {key.keyid[:16]}... is enrolled twice")
        seen[key.keyid] = key
    return list(seen.values())


# -- signers ----------------------------------------------------------------------------------


def load_signer(uri: str, candidates: Mapping[str, Key] | None, role: str) -> Signer:
    """The signer behind `uri`; with `candidates`, only if it is one of the role's keys.

    Stops signing with a key the role does not trust (which clients would reject anyway,
    but only after the repository had published unusable metadata). File and token keys
    know their public half; other URIs (KMS) are matched against the candidates.
    """
    scheme = uri.split(":", 1)[0]
    own = _own_public_key(uri, role)
    if own is not None:
        if candidates is not None and own.keyid not in candidates:
            raise TrustError(
                f"the key at {scheme}:... ({own.keyid[:16]}...) is not a trusted {role} key"
            )
        return _signer(uri, own)
    for key in (candidates or {}).values():
        # Each signer backend raises its own types for "not this key"; try the next one.
        with contextlib.suppress(Exception):
            return Signer.from_priv_key_uri(uri, key)
    raise TrustError(f"the key at {scheme}:... is not a trusted {role} key")


def public_key_of(uri: str, role: str = "signing") -> Key:
    """The public half of a file or token key (what `tuf key new` prints)."""
    key = _own_public_key(uri, role)
    if key is None:
        raise TrustError(f"cannot read a public key from {uri.split(':', 1)[0]}:... URIs")
    return key


def _own_public_key(uri: str, role: str) -> Key | None:
    if uri.startswith("file2:"):
        path = Path(uri.removeprefix("file2:"))
        if not path.is_file():
            raise TrustError(f"{role} key not found: {path}")
        if path.stat().st_mode & 0o077:
            raise TrustError(f"{role} key {path} is readable by group or others (chmod 600)")
        try:
            private = load_pem_private_key(path.read_bytes(), password=None)
            return CryptoSigner(private).public_key
        except (ValueError, TypeError) as e:
            raise TrustError(f"{role} key {path} is not a PEM private key: {e}") from e
    if uri.startswith("hsm:"):
        from mirror.trust.pkcs11 import token_public_key

        return token_public_key(uri)
    return None


def _signer(uri: str, key: Key) -> Signer:
    if uri.startswith("hsm:"):
        from mirror.trust.pkcs11 import token_signer

        return token_signer(uri, key)
    return Signer.from_priv_key_uri(uri, key)
