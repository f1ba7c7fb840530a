"""Client tokens: who may read from the mirror, stored hashed, checked on every request.

cargo sends a registry token as the raw value of the `Authorization` header on every index,
config.json and download request once the registry's config.json says `"auth-required": true`
(RFC 3139; cargo's registry-authentication docs). This module only decides whether such a
header names a live token; `mirror.http.edge` turns "no" into a 401 with a `WWW-Authenticate`
challenge, so this module stays free of HTTP types.

The file is re-read when it changes. If it becomes invalid while the mirror runs (a hand
edit gone wrong, a half-copied file), the store fails closed: no token is accepted, not even
the old ones (an operator who meant to remove one must not find it still working), `problem`
says why, and one `tokens.file_invalid` error is logged; the edge answers 503 until the file
is valid again.

Admins of the review console have tokens of their own, in a file of their own with another
prefix (`cma_`, scope `admin`; `admin_tokens()`): a cargo token is never an admin token, and
an admin token is never accepted from cargo, whatever is in either file.

The token file holds no secret: each token is kept as sha256(token). Tokens are 256 random
bits, so a fast hash is enough (a slow KDF protects guessable passwords, and would cost
milliseconds per request for 1,000 clients); a stolen file cannot be turned back into a
token. The plaintext is printed once by `crate-mirror token add` and never stored or logged.

File format (JSON, written atomically, mode 0600):

    {"version": 1, "tokens": [{"name": "ci", "sha256": "<64 hex>", "scopes": ["read"],
                                "created": "2026-11-25T15:00:00Z"}]}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from mirror.errors import BadRequest, ConfigError, NotFound, Problem
from mirror.files import write_atomic

__all__ = [
    "ADMIN_PREFIX",
    "KNOWN_SCOPES",
    "TOKEN_PREFIX",
    "Identity",
    "TokenRecord",
    "TokenStore",
    "admin_tokens",
    "hash_token",
    "load_or_create_key",
]

FILE_VERSION = 1
TOKEN_PREFIX = "cmt_"  # makes a leaked token recognisable to secret scanners
TOKEN_BYTES = 32  # random bytes per token (256 bits)
MAX_HEADER_CHARS = 512  # longer Authorization values are rejected before hashing
RELOAD_CHECK_SECONDS = 1.0  # how often the file's mtime is checked (revocation latency)
# Client tokens only read. Console admins' tokens live in another file, with another prefix
# and the scope "admin" (`admin_tokens`): the two kinds are never interchangeable.
KNOWN_SCOPES = ("read",)
ADMIN_PREFIX = "cma_"
ADMIN_SCOPES = ("admin",)

log = structlog.get_logger("mirror.tokens")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")
_HEX64_RE = re.compile(r"[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class Identity:
    """The holder of a valid token, as recorded in the audit log."""

    name: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class TokenRecord:
    name: str
    sha256: str  # hex digest of the token; the token itself is never stored
    scopes: tuple[str, ...]
    created: str  # ISO 8601 UTC


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_from_header(header: str | None) -> str | None:
    """The token in an Authorization header: cargo sends it raw; `Bearer x` is accepted too."""
    if header is None:
        return None
    value = header.strip()
    if not value or len(value) > MAX_HEADER_CHARS:
        return None
    scheme, _, rest = value.partition(" ")
    if rest and scheme.lower() == "bearer":
        value = rest.strip()
    return value or None


class TokenStore:
    """The token file, re-read when it changes so `token revoke` needs no restart."""

    def __init__(
        self, path: Path, *, scopes: tuple[str, ...] = KNOWN_SCOPES, prefix: str = TOKEN_PREFIX
    ) -> None:
        self.path = path
        self.scopes = scopes  # the scopes this file may grant
        self.prefix = prefix
        self._lock = threading.Lock()
        self._by_hash: dict[str, TokenRecord] = {}
        self._records: list[TokenRecord] = []
        self._stamp: tuple[int, int] | None = None  # (mtime_ns, size) of what we loaded
        self._checked = 0.0  # monotonic time of the last stat
        # Why the file, changed while serving, accepts nobody (None while it is valid).
        self.problem: str | None = None
        self._load()  # at start-up an invalid file is a ConfigError: the server does not start

    # -- checking (the request path) ----------------------------------------------------------

    def authenticate(self, authorization_header: str | None) -> Identity | None:
        """The identity a request's Authorization header proves, or None (always None while
        the file is invalid: see `problem`)."""
        token = token_from_header(authorization_header)
        if token is None or not token.startswith(self.prefix):
            return None  # the other kind of token (client vs admin) never counts here
        self._reload_if_changed()
        digest = hash_token(token)
        record = self._by_hash.get(digest)
        # The dict lookup is keyed by a hash of the secret, so its timing reveals nothing
        # useful about the token; compare_digest keeps the final check constant-time anyway.
        if record is None or not hmac.compare_digest(record.sha256, digest):
            return None
        return Identity(record.name, frozenset(record.scopes))

    def file_problem(self) -> str | None:
        """Why the file accepts nobody right now (re-read first if it changed), or None."""
        self._reload_if_changed()
        return self.problem

    # -- administration (CLI only) ------------------------------------------------------------

    def find(self, name: str, sha256_prefix: str) -> TokenRecord | None:
        """The live token of this name whose hash starts so (a console session's holder)."""
        self._reload_if_changed()
        for record in self._records:
            if record.name == name and hmac.compare_digest(
                record.sha256[: len(sha256_prefix)], sha256_prefix
            ):
                return record
        return None

    def records(self) -> list[TokenRecord]:
        """Every token's record; raises ConfigError if the file is invalid."""
        with self._lock:
            self._load()
        return list(self._records)

    def add(self, name: str, scopes: Iterable[str] | None = None) -> str:
        """Create a token named `name`; returns the plaintext, which is shown once only."""
        if not _NAME_RE.match(name):
            raise BadRequest(
                "token names are 1-64 characters: letters, digits and . _ @ - "
                "(starting with a letter or digit)"
            )
        scope_list = tuple(sorted(set(scopes if scopes is not None else self.scopes[:1])))
        unknown = [s for s in scope_list if s not in self.scopes]
        if unknown or not scope_list:
            raise BadRequest(f"unknown scope(s) {unknown}; known: {', '.join(self.scopes)}")
        with self._lock:
            self._load()
            if any(r.name == name for r in self._records):
                raise BadRequest(f"a token named {name!r} exists; revoke it first")
            token = self.prefix + secrets.token_urlsafe(TOKEN_BYTES)
            created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            record = TokenRecord(name, hash_token(token), scope_list, created)
            self._save([*self._records, record])
        return token

    def revoke(self, name: str) -> TokenRecord:
        with self._lock:
            self._load()
            kept = [r for r in self._records if r.name != name]
            if len(kept) == len(self._records):
                raise NotFound(f"no token named {name!r}")
            gone = next(r for r in self._records if r.name == name)
            self._save(kept)
        return gone

    # -- the file -----------------------------------------------------------------------------

    def _reload_if_changed(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_CHECK_SECONDS:
            return
        self._checked = now
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return
        with self._lock:
            try:
                self._load()
            except ConfigError as e:
                self._fail_closed(stamp, str(e))
                return
        if self.problem is not None:
            log.warning("tokens.file_valid_again", file=str(self.path), tokens=len(self._records))
            self.problem = None

    def _fail_closed(self, stamp: tuple[int, int] | None, problem: str) -> None:
        """The file changed into something invalid: accept nobody until it is valid again."""
        self._records, self._by_hash = [], {}
        self._stamp = stamp  # re-read (and re-reported) only when it changes again
        if problem != self.problem:
            log.error(
                "tokens.file_invalid",
                file=str(self.path),
                problem=problem,
                effect="every request is refused with 503 until the file is valid again",
            )
        self.problem = problem

    def _load(self) -> None:
        """Read the file; a missing file means no tokens (every request is refused)."""
        stamp = _stamp(self.path)
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            records: list[TokenRecord] = []
        except OSError as e:
            raise ConfigError(
                [Problem(str(self.path), None, "(file)", e.strerror or str(e))]
            ) from e
        else:
            records = _parse(raw, str(self.path), self.scopes)
        self._records = records
        self._by_hash = {r.sha256: r for r in records}
        self._stamp = stamp

    def _save(self, records: list[TokenRecord]) -> None:
        data = {
            "version": FILE_VERSION,
            "tokens": [
                {"name": r.name, "sha256": r.sha256, "scopes": list(r.scopes), "created": r.created}
                for r in records
            ],
        }
        body = json.dumps(data, indent=2).encode() + b"\n"
        # Hashes are not secrets, but names and scopes are nobody's business.
        write_atomic(self.path, body, mode=0o600)
        self._records = records
        self._by_hash = {r.sha256: r for r in records}
        self._stamp = _stamp(self.path)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _parse(raw: bytes, where: str, known: tuple[str, ...]) -> list[TokenRecord]:
    def bad(field: str, message: str) -> ConfigError:
        return ConfigError([Problem(where, None, field, message)])

    try:
        data: Any = json.loads(raw)
    except ValueError as e:
        raise bad("(file)", f"not JSON: {e}") from e
    if not isinstance(data, dict) or data.get("version") != FILE_VERSION:
        raise bad("version", f"expected a token file with version {FILE_VERSION}")
    for key in data.keys() - {"version", "tokens"}:
        # Rewriting the file (`token add`) would drop it: say so now rather than lose it.
        raise bad(str(key), "unknown key (a token file has version and tokens)")
    items = data.get("tokens")
    if not isinstance(items, list):
        raise bad("tokens", "expected a list")
    records = []
    for i, item in enumerate(items):
        field = f"tokens[{i}]"
        if not isinstance(item, dict):
            raise bad(field, "expected a mapping")
        name, digest = item.get("name"), item.get("sha256")
        scopes, created = item.get("scopes", list(known[:1])), item.get("created", "")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise bad(field + ".name", "missing or malformed token name")
        if not isinstance(digest, str) or not _HEX64_RE.match(digest):
            raise bad(field + ".sha256", "expected 64 lowercase hex digits")
        if not isinstance(scopes, list) or not all(s in known for s in scopes):
            kind = ""
            if isinstance(scopes, list) and scopes and all(isinstance(s, str) for s in scopes):
                kind = f" (scopes {', '.join(scopes)}: is this the other kind of token file?)"
            raise bad(field + ".scopes", f"expected a list of {', '.join(known)}{kind}")
        records.append(TokenRecord(name, digest, tuple(scopes), str(created)))
    return records


def admin_tokens(path: Path) -> TokenStore:
    """The console admins' token file: `cma_` tokens with the scope `admin` only."""
    return TokenStore(path, scopes=ADMIN_SCOPES, prefix=ADMIN_PREFIX)


KEY_BYTES = 32  # bytes of a console session signing key


def load_or_create_key(path: Path) -> bytes:
    """A random secret key kept in `path` (mode 0600), made on first use. Workers starting
    together agree on one: it is written under a temporary name and linked into place only if
    no other process did first (then that one is read)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    except OSError as e:
        raise ConfigError([Problem(str(path), None, "(file)", e.strerror or str(e))]) from e
    if len(data) == KEY_BYTES:
        return data
    if data:
        raise ConfigError([Problem(str(path), None, "(file)", "not a session key (wrong size)")])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    write_atomic(tmp, secrets.token_bytes(KEY_BYTES), mode=0o600)
    try:
        os.link(tmp, path)  # fails if another process made the key first: theirs wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return load_or_create_key(path)
