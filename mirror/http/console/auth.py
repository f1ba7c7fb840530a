"""Who is using the console: admin tokens, signed session cookies, CSRF tokens, origin checks.

An admin logs in with their own token (mirror.sources.tokens.admin_tokens: never a cargo
client token) and gets a session cookie: `HttpOnly` (no script can read it), `SameSite=Strict`
(a page on another site cannot make the browser send it), `Secure` when the mirror's public
URL is https, scoped to /-/. The cookie is signed (HMAC-SHA256 with a key kept in the
server's state directory, shared by all workers) and names the admin and a prefix of their
token's hash, so revoking the token ends every session opened with it at once.

Every POST with a session must carry the session's CSRF token (a hidden form field, an HMAC
of the session id) and must not come from another origin (`Origin`, `Sec-Fetch-Site`):
cross-site request forgery is stopped three times over. A request may instead carry the
admin token as `Authorization: Bearer cma_...` (scripts): a browser never attaches that by
itself, so it needs no CSRF token. Admin actions are POST only; GET never changes anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from mirror.sources.tokens import TokenStore, hash_token, token_from_header

SESSION_COOKIE = "cm_session"
LOGIN_COOKIE = "cm_login"  # the login form's CSRF nonce (no session exists yet)
SESSION_SECONDS = 8 * 3600  # a session lasts a working day
COOKIE_PATH = "/-/"
HASH_PREFIX = 16  # hex digits of the token's sha256 a session names
ADMIN = web.RequestKey("admin", str)


@dataclass(frozen=True)
class Session:
    admin: str
    token_hash: str  # prefix of sha256(token)
    session_id: str
    expires: float  # unix time


class ConsoleAuth:
    def __init__(self, admins: TokenStore, key: bytes, *, secure: bool, origin: str) -> None:
        self.admins = admins
        self._key = key
        self._secure = secure  # the mirror is reached over https: cookies only go that way
        self._origin = origin.rstrip("/")  # scheme://host[:port] the console is served at

    # -- sessions -----------------------------------------------------------------------------

    def login(self, token: str) -> Session | None:
        identity = self.admins.authenticate(token)
        if identity is None:
            return None
        return Session(
            identity.name,
            hash_token(token)[:HASH_PREFIX],
            secrets.token_hex(16),
            time.time() + SESSION_SECONDS,
        )

    def cookie_value(self, session: Session) -> str:
        payload = json.dumps(
            {"a": session.admin, "h": session.token_hash, "i": session.session_id,
             "e": int(session.expires)},
            separators=(",", ":"),
        )  # fmt: skip
        body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"{body}.{self._sign('session', body)}"

    def session(self, value: str | None) -> Session | None:
        """The live session a cookie proves, or None (forged, expired, token revoked)."""
        if not value or len(value) > 1024 or "." not in value:
            return None
        body, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature, self._sign("session", body)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            session = Session(str(data["a"]), str(data["h"]), str(data["i"]), float(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires < time.time():
            return None
        if self.admins.find(session.admin, session.token_hash) is None:
            return None  # the token was revoked (or replaced): its sessions end with it
        return session

    def csrf_token(self, session: Session) -> str:
        return self._sign("csrf", session.session_id)

    def _sign(self, purpose: str, text: str) -> str:
        mac = hmac.new(self._key, f"{purpose}|{text}".encode(), hashlib.sha256)
        return mac.hexdigest()

    # -- requests -----------------------------------------------------------------------------

    def who(self, request: web.Request) -> tuple[str, Session | None] | None:
        """(admin name, session or None for a bearer token) for an authenticated request."""
        header = request.headers.get("Authorization")
        if header is not None:
            token = token_from_header(header)
            identity = self.admins.authenticate(token) if token else None
            return (identity.name, None) if identity is not None else None
        session = self.session(request.cookies.get(SESSION_COOKIE))
        return (session.admin, session) if session is not None else None

    def same_origin(self, request: web.Request) -> bool:
        """A state-changing request must come from the console's own pages."""
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return False
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not sent: SameSite=Strict and the CSRF token still apply
        own = {_origin_of(self._origin), f"{request.scheme}://{request.host}".lower()}
        return origin != "null" and _origin_of(origin) in own

    def set_session(self, response: web.StreamResponse, session: Session) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self.cookie_value(session),
            max_age=SESSION_SECONDS,
            path=COOKIE_PATH,
            httponly=True,
            samesite="Strict",
            secure=self._secure,
        )

    def clear_session(self, response: web.StreamResponse) -> None:
        response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)

    def set_login_nonce(self, response: web.StreamResponse, nonce: str) -> None:
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            max_age=3600,
            path=COOKIE_PATH,
            httponly=True,
            samesite="Strict",
            secure=self._secure,
        )


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
