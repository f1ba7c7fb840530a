"""The aiohttp handlers of cargo's sparse protocol: parse the request, ask the core, render.

Every decision is the core's (mirror.serving.core); errors become statuses in mirror.http.edge.
What a handler renders the same way for the next identical request, it also leaves in the
table of prepared responses, for the front door (mirror.http.front) to repeat while the
core's `reusable` check holds.
"""

from __future__ import annotations

import hashlib

from aiohttp import web

from mirror import metrics
from mirror.config import Settings
from mirror.errors import BadRequest, NotFound
from mirror.http.edge import client_of
from mirror.http.prepared import HitTally, PreparedTable, prepared_response
from mirror.http.reply import Reply
from mirror.index import parse_target_path, validate_name, validate_version
from mirror.serving.core import FEED_MAX_LIMIT, Client, MirrorCore
from mirror.serving.readiness import Readiness, verdict
from mirror.sources.tokens import TokenStore

CRATE_TYPE = "application/x-tar"
INDEX_CACHE_CONTROL = "max-age=0, must-revalidate"  # cargo revalidates; we answer 304 cheaply
STALE_WARNING = '110 crate-mirror "Response is Stale: upstream unreachable"'


class Handlers:
    """The HTTP side of one mirror: its core, client tokens, and the prepared responses."""

    def __init__(self, core: MirrorCore, tokens: TokenStore | None = None) -> None:
        self.core = core
        self.settings: Settings = core.settings
        self.tokens = tokens  # None: anyone who can reach us may read
        # Warm hits the front door (mirror.http.front) answers without calling these handlers.
        self.prepared = PreparedTable(core.settings.prepared_bytes)
        self.tally = HitTally(core.gate)
        self.readiness = Readiness(core.store, core.upstream, core.gate, core.reloader)

    def admitted(self, authorization: bytes | None, address: str | None) -> tuple[bool, str | None]:
        """For the front door: whether a request to cargo's routes may be answered there, and
        who asked, for the audit log (the token's name and the address when tokens are on).
        Without a valid token it goes to aiohttp's route, which answers 401 or 503 and why."""
        if self.tokens is None:
            return True, address
        header = authorization.decode("latin-1") if authorization else None
        identity = self.tokens.authenticate(header)
        if identity is None:
            return False, None
        return True, f"{identity.name} ({address})"

    # -- GET /index/{path} --------------------------------------------------------------------

    async def index_file(self, request: web.Request) -> web.StreamResponse:
        reply = await self.index_reply(
            request.match_info["path"],
            client_of(request),
            request.headers.get("If-None-Match"),
            _table_key(request),
        )
        return reply.to_aiohttp()

    async def index_reply(
        self, path: str, client: Client, if_none_match: str | None, key: bytes | None
    ) -> Reply:
        """`key`: the request target, when the answer may be left in the prepared table."""
        name, digest = parse_target_path(path)
        answer = await self.core.serve_index(name, client)
        if digest is not None and hashlib.sha256(answer.body).hexdigest() != digest:
            # A TUF client names the bytes its signed metadata lists (consistent snapshots);
            # newer bytes are served under their own name once the mirror has signed them.
            raise NotFound(f"{name}: no served index file has sha256 {digest}; refresh TUF")
        headers = {"ETag": answer.etag, "Cache-Control": INDEX_CACHE_CONTROL}
        if answer.stale:
            headers["Warning"] = STALE_WARNING
        elif answer.reusable is not None and key is not None:
            self.prepared.put(
                key,
                prepared_response(
                    "index",
                    answer.body,
                    {**headers, "Content-Type": "text/plain"},
                    answer.reusable,
                    etag=answer.etag,
                    crate=name,
                    details=answer.summary,
                ),
            )
        if answer.etag in etags(if_none_match):
            return Reply(304, headers)
        metrics.bytes_counter("index").inc(len(answer.body))
        return Reply(200, {**headers, "Content-Type": "text/plain"}, answer.body)

    # -- GET /api/v1/crates/{name}/{version}/download -----------------------------------------

    async def download(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        reply = await self.download_reply(
            info["name"], info["version"], client_of(request), _table_key(request)
        )
        return reply.to_aiohttp()

    async def download_reply(
        self, name: str, version: str, client: Client, key: bytes | None
    ) -> Reply:
        answer = await self.core.fetch_crate(validate_name(name), validate_version(version), client)
        body = answer.crate.body
        headers = {"Content-Type": CRATE_TYPE}
        if body is None:  # a large crate: streamed from its file, never read into memory
            path = answer.crate.path
            metrics.bytes_counter("download").inc(path.stat().st_size)
            return Reply(200, headers, file=path)
        if answer.reusable is not None and key is not None:
            self.prepared.put(
                key,
                prepared_response(
                    "download",
                    body,
                    headers,
                    answer.reusable,
                    crate=answer.line.name,
                    version=answer.line.vers,
                    details={"cksum": answer.line.cksum},
                ),
            )
        metrics.bytes_counter("download").inc(len(body))
        return Reply(200, headers, body)

    # -- GET /index/config.json ---------------------------------------------------------------

    async def config_json(self, request: web.Request) -> web.StreamResponse:
        return (await self.config_reply(_table_key(request))).to_aiohttp()

    async def config_reply(self, key: bytes | None) -> Reply:
        config = self.core.config
        body = await config.served()
        headers = {"Content-Type": "application/json"}
        if key is not None:
            self.prepared.put(
                key,
                prepared_response("config", body, headers, lambda: config.is_current(body)),
            )
        return Reply(200, headers, body)

    # -- GET /feed/near-names.{json,atom} -----------------------------------------------------

    async def near_name_feed(self, request: web.Request) -> web.StreamResponse:
        """Every look-alike the mirror judged and every would-block, newest first, with the
        evidence weighed."""
        limit = _limit(request.query.get("limit"))
        body, content_type = await self.core.near_names(
            limit, request.match_info["format"], str(request.url.with_query(None))
        )
        return web.Response(body=body, content_type=content_type)

    # -- health and metrics -------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(dict(self.core.health()))

    async def readyz(self, request: web.Request) -> web.StreamResponse:
        """200 when upstream, the cache, the policy (and the token file) are fine, else 503
        with the reasons: for load balancers and orchestrators (liveness is /healthz)."""
        checks = await self.readiness.checks()
        if self.tokens is not None:
            problem = self.tokens.file_problem()
            checks["tokens"] = (
                {"ok": True}
                if problem is None
                else {"ok": False, "error": "the token file is invalid; no token is accepted"}
            )
        ready, reasons = verdict(checks)
        body = {"ready": ready, "reasons": reasons, "checks": checks}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        self.tally.flush()  # what the front door served since its last tick
        return web.Response(body=metrics.render(), content_type="text/plain")


FEED_DEFAULT_LIMIT = 100  # entries when the request does not say


def _limit(text: str | None) -> int:
    if text is None:
        return FEED_DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= FEED_MAX_LIMIT:
        raise BadRequest(f"limit must be a number from 1 to {FEED_MAX_LIMIT}")
    return int(text)


def _table_key(request: web.Request) -> bytes | None:
    """The target the front door looks answers up by, for targets it can look up at all."""
    target = request.raw_path
    if target.isascii() and "?" not in target and "%" not in target:
        return target.encode("ascii")
    return None


def etags(header: str | None) -> list[str]:
    if not header:
        return []
    return [t.strip().removeprefix("W/") for t in header.split(",")]
