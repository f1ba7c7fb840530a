"""Sealed records: how index files, scan reports and config.json travel through a shared bucket.

A crate names itself (its key is its sha256), so a reader checks it by hashing. An index file
or a scan report does not, so each is stored with a record: one JSON header line, then the
body. The header says what the object is (kind and name: an object copied to another key is
refused, a mix-and-match attack), the body's sha256 and size (a truncated, bit-flipped or
half-written object is refused), the metadata the local cache keeps beside it (upstream's
validators for an index file), and, when the replicas share a record key, an HMAC-SHA256 over
all of it: then whoever can write the bucket but does not hold the key cannot forge an index
file (which would name the checksums crates are verified against) or a scan report (which
would hide a crate's capabilities). Pure: bytes in, bytes or IntegrityError out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from mirror.errors import IntegrityError

MAX_HEADER_BYTES = 64 * 1024  # bytes; a header is a few hundred in practice


def seal(kind: str, name: str, body: bytes, meta: Mapping[str, Any], key: bytes | None) -> bytes:
    header = {
        **meta,
        "kind": kind,
        "name": name,
        "sha256": hashlib.sha256(body).hexdigest(),
        "size": len(body),
    }
    if key is not None:
        header["mac"] = _mac(key, header, body)
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n" + body


def unseal(kind: str, name: str, data: bytes, key: bytes | None) -> tuple[dict[str, Any], bytes]:
    """(metadata, body) of a record that is what it claims; IntegrityError otherwise."""
    raw, sep, body = data.partition(b"\n")
    if not sep or len(raw) > MAX_HEADER_BYTES:
        raise IntegrityError(f"{kind} record {name!r} has no header")
    try:
        header = json.loads(raw)
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise IntegrityError(f"{kind} record {name!r} has an unreadable header")
    if header.get("kind") != kind or header.get("name") != name:
        # Mix-and-match: a valid record of another file stored under this key.
        raise IntegrityError(f"{kind} record {name!r} is about {header.get('name')!r}")
    if header.get("size") != len(body) or header.get("sha256") != hashlib.sha256(body).hexdigest():
        raise IntegrityError(f"{kind} record {name!r} is damaged (its body fails its sha256)")
    if key is not None:
        mac = header.pop("mac", None)
        if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(key, header, body)):
            # Forgery: written by someone without the replicas' record key.
            raise IntegrityError(f"{kind} record {name!r} is not signed with the record key")
    else:
        header.pop("mac", None)
    for field in ("kind", "name", "sha256", "size"):
        header.pop(field)
    return header, body


def _mac(key: bytes, header: Mapping[str, Any], body: bytes) -> str:
    signed = json.dumps(dict(header), sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, signed + b"\n" + body, hashlib.sha256).hexdigest()
