"""The console's handlers: parse the request, ask the backend (mirror.serving.console), render.

Every handler goes through `Pages.guard`: it authenticates (a session cookie or an admin
bearer token), and for a POST checks the CSRF token and the origin; an unauthenticated GET
is sent to the login page, anything else refused. Work that touches SQLite or files runs in a
thread, never on the event loop that serves cargo.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import structlog
from aiohttp import web

from mirror.errors import BadRequest, MirrorError, NotFound
from mirror.http.console.auth import LOGIN_COOKIE, ConsoleAuth, Session, new_nonce
from mirror.http.console.render import page
from mirror.http.edge import status_for
from mirror.serving.console import ConsoleBackend, EventQuery, parse_targets
from mirror.sources.tokens import MAX_HEADER_CHARS

log = structlog.get_logger("mirror.console")
MAX_FORM_BYTES = 4 * 2**20  # a pasted Cargo.lock of a large workspace fits
MAX_REASON_CHARS = 2000
PAGE_ROWS = 100  # decisions per page
FILTERS = ("action", "rule", "crate", "client", "request_id", "since", "until")
LIVE_SECONDS = 5  # refresh interval of the live decisions view (a meta refresh: no script)

Handler = Callable[[web.Request, "Context"], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Context:
    admin: str
    session: Session | None  # None: a bearer token
    csrf: str
    form: dict[str, list[str]]  # POST fields (empty for GET)

    def field(self, name: str) -> str:
        values = self.form.get(name, [])
        return values[0] if values else ""


class Pages:
    def __init__(self, backend: ConsoleBackend, auth: ConsoleAuth) -> None:
        self.backend = backend
        self.auth = auth

    # -- the guard ----------------------------------------------------------------------------

    def guard(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            who = self.auth.who(request)
            if who is None:
                if request.method == "GET":
                    target = quote(request.path_qs, safe="/?=&")
                    raise web.HTTPSeeOther(f"/-/login?next={target}")
                return self._refused(401, "log in first")
            admin, session = who
            form: dict[str, list[str]] = {}
            csrf = self.auth.csrf_token(session) if session is not None else ""
            if request.method == "POST":
                if session is not None and not self.auth.same_origin(request):
                    return self._refused(403, "cross-origin request refused")
                form = await read_form(request)
                sent = form.get("_csrf", [""])[0]
                # A bearer token is never sent by a browser on its own: no CSRF possible.
                if session is not None and not hmac.compare_digest(sent, csrf):
                    return self._refused(403, "missing or wrong CSRF token: reload the page")
            try:
                return await handler(request, Context(admin, session, csrf, form))
            except (BadRequest, ValueError) as e:
                return page("message.html", status=400, admin=admin, csrf=csrf, nav="",
                            title="Not understood", message=str(e))  # fmt: skip
            except NotFound as e:
                return page("message.html", status=404, admin=admin, csrf=csrf, nav="",
                            title="Not found", message=str(e))  # fmt: skip
            except MirrorError as e:
                log.error("console.failed", path=request.path, error=str(e))
                return page("message.html", status=status_for(e), admin=admin, csrf=csrf,
                            nav="", title="Failed", message=str(e))  # fmt: skip

        return wrapped

    @staticmethod
    def _refused(status: int, message: str) -> web.Response:
        return page("message.html", status=status, admin=None, csrf="", nav="",
                    title="Refused", message=message)  # fmt: skip

    # -- logging in and out -------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        if self.auth.who(request) is not None:
            raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
        return self._login_page(_safe_next(request.query.get("next")), None, 200)

    def _login_page(self, target: str, error: str | None, status: int) -> web.Response:
        nonce = new_nonce()
        response = page("login.html", status=status, admin=None, csrf="", nav="", error=error,
                        next=target, nonce=nonce)  # fmt: skip
        self.auth.set_login_nonce(response, nonce)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await read_form(request)
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        sent = form.get("_csrf", [""])[0]
        if not nonce or not hmac.compare_digest(nonce, sent) or not self.auth.same_origin(request):
            return self._refused(403, "the login form expired or came from elsewhere: reload it")
        token = form.get("token", [""])[0].strip()
        session = self.auth.login(token) if 0 < len(token) <= MAX_HEADER_CHARS else None
        target = _safe_next(form.get("next", [""])[0])
        if session is None:
            log.warning("console.login_failed", client=request.remote)
            return self._login_page(target, "That is not an admin token.", 401)
        await asyncio.to_thread(self.backend.record_login, session.admin, request.remote)
        response = _see_other(target)
        self.auth.set_session(response, session)
        response.del_cookie(LOGIN_COOKIE, path="/-/")
        return response

    async def logout(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        response = _see_other("/-/login")
        self.auth.clear_session(response)
        return response

    # -- pages --------------------------------------------------------------------------------

    async def home(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        raise web.HTTPSeeOther("/-/pending")

    async def pending(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        offset = _integer(request.query.get("offset")) or 0
        holds, denied, rows, total = await asyncio.to_thread(self.backend.pending_page, offset)
        more = offset + len(holds) if offset + len(holds) < total else None
        return page("pending.html", admin=ctx.admin, csrf=ctx.csrf, nav="pending",
                    holds=holds, denied=denied, rows=rows, lockfile=None, total=total,
                    offset=offset, more=more)  # fmt: skip

    async def review(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        crate = request.query.get("crate", "")
        version = request.query.get("version", "")
        await self.backend.settle()
        review = await asyncio.to_thread(self.backend.desk.review, crate, version)
        if review is None:
            raise NotFound(f"nothing is held under {crate} {version}")
        return page("review.html", admin=ctx.admin, csrf=ctx.csrf, nav="pending", r=review)

    async def decide(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        decision = ctx.field("decision")
        reason = ctx.field("reason").strip()
        if not reason:
            raise BadRequest("give a reason: it is kept in the lock and the audit log")
        if len(reason) > MAX_REASON_CHARS:
            raise BadRequest(f"the reason is longer than {MAX_REASON_CHARS} characters")
        chosen = ctx.form.get("shown" if decision == "approve-all" else "target", [])
        targets = parse_targets(chosen)
        if not targets:
            raise BadRequest("choose at least one crate version")
        await self.backend.settle()
        desk = self.backend.desk
        if decision in ("approve", "approve-all"):
            outcome = await asyncio.to_thread(
                desk.approve, targets, ctx.admin, reason, via="console"
            )
        elif decision == "deny":
            outcome = await asyncio.to_thread(desk.deny, targets, ctx.admin, reason, via="console")
        else:
            raise BadRequest("decision must be approve, approve-all or deny")
        verb = "denied" if decision == "deny" else "approved"
        return page("result.html", admin=ctx.admin, csrf=ctx.csrf, nav="pending",
                    verb=verb, outcome=outcome)  # fmt: skip

    async def lockfile(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        text = ctx.field("lockfile")
        if not text.strip():
            raise BadRequest("paste the contents of a Cargo.lock")
        await self.backend.settle()
        holds, rows = await asyncio.to_thread(self.backend.lockfile_page, text)
        return page("pending.html", admin=ctx.admin, csrf=ctx.csrf, nav="pending",
                    holds=holds, denied=[], rows=rows, lockfile=True, total=len(holds),
                    offset=0, more=None)  # fmt: skip

    async def decisions(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        q = request.query
        query = EventQuery(
            action=q.get("action") or None,
            rule=q.get("rule") or None,
            crate=q.get("crate") or None,
            client=q.get("client") or None,
            request_id=q.get("request_id") or None,
            since=_moment(q.get("since")),
            until=_moment(q.get("until")),
        )
        before = _integer(q.get("before"))
        rows = await asyncio.to_thread(self.backend.decisions, query, before, PAGE_ROWS)
        filters = {k: q.get(k, "") for k in FILTERS}
        live = q.get("live") == "1" and before is None
        older = rows[-1].seq if len(rows) == PAGE_ROWS else None
        return page("decisions.html", admin=ctx.admin, csrf=ctx.csrf, nav="decisions",
                    rows=rows, filters=filters, live=live, refresh=LIVE_SECONDS,
                    older=older, query_string=_without(q, "before"))  # fmt: skip

    async def event(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        seq = _integer(request.match_info["seq"])
        stored = await asyncio.to_thread(self.backend.event, seq) if seq is not None else None
        if stored is None:
            raise NotFound(f"no event {request.match_info['seq']}")
        return page("event.html", admin=ctx.admin, csrf=ctx.csrf, nav="decisions", e=stored,
                    details=stored.fields.get("details"))  # fmt: skip

    async def near_names(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        before = _integer(request.query.get("before"))
        rows = await asyncio.to_thread(self.backend.near_page, before, PAGE_ROWS)
        older = rows[-1][0].seq if len(rows) == PAGE_ROWS else None
        return page("near.html", admin=ctx.admin, csrf=ctx.csrf, nav="near", rows=rows,
                    older=older)  # fmt: skip

    async def status(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        report = await asyncio.to_thread(self.backend.status)
        return page("status.html", admin=ctx.admin, csrf=ctx.csrf, nav="status", s=report)


# -- helpers --------------------------------------------------------------------------------


async def read_form(request: web.Request) -> dict[str, list[str]]:
    """An urlencoded form, read against MAX_FORM_BYTES while streaming."""
    if request.content_type not in ("application/x-www-form-urlencoded", ""):
        raise web.HTTPUnsupportedMediaType(text="forms are sent urlencoded")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM_BYTES, actual_size=size)
        chunks.append(chunk)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    form: dict[str, list[str]] = {}
    for key, value in parse_qsl(text, keep_blank_values=True, max_num_fields=20_000):
        form.setdefault(key, []).append(value)
    return form


def _see_other(location: str) -> web.Response:
    """A 303 that can carry cookies (raising HTTPSeeOther would drop what was set on it)."""
    return web.Response(status=303, headers={"Location": location})


def _safe_next(target: str | None) -> str:
    """Only a console path: a login link must not redirect anyone off-site (open redirect)."""
    if target and target.startswith("/-/") and not target.startswith("/-//") and "\\" not in target:
        return target
    return "/-/pending"


def _integer(text: str | None) -> int | None:
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:
        raise BadRequest(f"not a number: {text!r}")
    return int(text)


def _moment(text: str | None) -> datetime | None:
    return ConsoleBackend.parse_time(text) if text else None


def _without(query: Any, key: str) -> str:
    return urlencode([(k, v) for k, v in query.items() if k != key and v])
