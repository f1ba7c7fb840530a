"""Sealed records refuse damaged, swapped and forged objects from a shared bucket."""

from __future__ import annotations

import hashlib
import json

import pytest

from mirror.errors import IntegrityError
from mirror.store.records import seal, unseal

KEY = b"replicas-share-this"


def test_a_record_round_trips_with_its_metadata() -> None:
    data = seal("index", "serde", b'{"name":"serde"}\n', {"etag": '"x"', "fetched": 1.5}, KEY)
    meta, body = unseal("index", "serde", data, KEY)
    assert body == b'{"name":"serde"}\n'
    assert meta == {"etag": '"x"', "fetched": 1.5}


@pytest.mark.parametrize("key", [None, KEY])
def test_a_flipped_or_cut_body_is_refused(key: bytes | None) -> None:
    """Bit flips in transit or at rest, and a half-written object, fail the body's sha256."""
    data = seal("scan", "ab" * 32, b"report body", {}, key)
    flipped = data[:-3] + bytes([data[-3] ^ 1]) + data[-2:]
    for damaged in (flipped, data[:-4], data + b"extra"):
        with pytest.raises(IntegrityError, match="damaged"):
            unseal("scan", "ab" * 32, damaged, key)


def test_a_record_stored_under_another_name_is_refused() -> None:
    """Mix-and-match: serde's genuine index file copied to the key of another crate."""
    data = seal("index", "serde", b"lines", {}, KEY)
    with pytest.raises(IntegrityError, match="about 'serde'"):
        unseal("index", "serde_json", data, KEY)
    with pytest.raises(IntegrityError):
        unseal("scan", "serde", data, KEY)


def test_a_forged_record_is_refused_when_replicas_share_a_key() -> None:
    """Someone who can write the bucket but lacks the key: an unsigned record, or one
    signed with another key, or a signed one whose body was changed and re-hashed."""
    with pytest.raises(IntegrityError, match="not signed"):
        unseal("index", "serde", seal("index", "serde", b"evil", {}, None), KEY)
    with pytest.raises(IntegrityError, match="not signed"):
        unseal("index", "serde", seal("index", "serde", b"evil", {}, b"other"), KEY)
    genuine = seal("index", "serde", b"good", {"fetched": 1.0}, KEY)
    header, _, _ = genuine.partition(b"\n")
    doctored = json.loads(header)
    doctored.update(sha256=hashlib.sha256(b"evil").hexdigest(), size=4)
    forged = json.dumps(doctored).encode() + b"\nevil"
    with pytest.raises(IntegrityError, match="not signed"):
        unseal("index", "serde", forged, KEY)


@pytest.mark.parametrize("data", [b"", b"no header line", b"[1,2]\nbody", b"\xff\xfe\nbody"])
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        unseal("index", "serde", data, None)
