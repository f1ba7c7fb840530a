"""AWS Signature Version 4 for S3 requests: pure functions, no I/O, no clock of their own.

The object store client (mirror.upstream.s3) signs every request with these; the unit tests
compare the result with botocore's signer for the same request. Spec: "Authenticating
Requests (AWS Signature Version 4)", S3 API reference, "Signature Calculations for the
Authorization Header: Transferring Payload in a Single Chunk".

Credentials never leave this module except as the signature and the access key id (which
AWS puts in the Authorization header in clear); the secret is only an HMAC key here.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True)
class Credentials:
    """An access key pair; `repr` never shows the secret or the session token."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Credentials | None:
        """The usual AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, for
        temporary credentials, AWS_SESSION_TOKEN); None when either key is missing."""
        env = os.environ if env is None else env
        key_id, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        if not key_id or not secret:
            return None
        return cls(key_id, secret, env.get("AWS_SESSION_TOKEN") or None)


def sign(
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    credentials: Credentials,
    region: str,
    now: datetime,
) -> dict[str, str]:
    """The headers to add to a request so S3 accepts it: x-amz-date, x-amz-content-sha256,
    x-amz-security-token (temporary credentials) and Authorization.

    `path` is the raw (unencoded) path, `/bucket/key` or `/key`; `headers` are the request's
    other headers, all of which are signed (so a proxy cannot change a Range or an If-Match
    without the store refusing the request). `now` must be UTC.
    """
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    added = {"x-amz-date": amz_date, "x-amz-content-sha256": payload_sha256}
    if credentials.session_token:
        added["x-amz-security-token"] = credentials.session_token
    signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    signed.update(added)
    signed["host"] = host
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            canonical_path(path),
            canonical_query(query),
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _signing_key(credentials.secret_access_key, day, region)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    added["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return added


def canonical_path(path: str) -> str:
    """Each segment percent-encoded once (S3 does not double-encode), slashes kept."""
    return quote(path, safe="/~")


def canonical_query(query: Mapping[str, str]) -> str:
    """Sorted by name, names and values percent-encoded, `name=` for an empty value."""
    pairs = sorted((quote(k, safe="~"), quote(v, safe="~")) for k, v in query.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


@functools.lru_cache(maxsize=8)
def _signing_key(secret: str, day: str, region: str) -> bytes:
    """Derived once per day and region (four HMACs saved on every request); the cache holds
    the secret as the process already does, and nothing prints it."""
    key = _hmac(("AWS4" + secret).encode(), day)
    for part in (region, "s3", "aws4_request"):
        key = _hmac(key, part)
    return key


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()
