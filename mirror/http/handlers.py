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
from mirror.http.prepared import HitTally, Prepared, PreparedTable, prepared_response
from mirror.index import parse_target_path, validate_name, validate_version
from mirror.serving.core import FEED_MAX_LIMIT, CrateAnswer, MirrorCore
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

    # -- GET /index/{path} --------------------------------------------------------------------

    async def index_file(self, request: web.Request) -> web.StreamResponse:
        name, digest = parse_target_path(request.match_info["path"])
        answer = await self.core.serve_index(name, client_of(request))
        if digest is not None and hashlib.sha256(answer.body).hexdigest() != digest:
            # A TUF client names the bytes its signed metadata lists (consistent snapshots);
            # newer bytes are served under their own name once the mirror has signed them.
            raise NotFound(f"{name}: no served index file has sha256 {digest}; refresh TUF")
        headers = {"ETag": answer.etag, "Cache-Control": INDEX_CACHE_CONTROL}
        if answer.stale:
            headers["Warning"] = STALE_WARNING
        elif answer.reusable is not None:
            self._prepare(
                request,
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
        if answer.etag in etags(request.headers.get("If-None-Match")):
            return web.Response(status=304, headers=headers)
        metrics.bytes_counter("index").inc(len(answer.body))
        return web.Response(body=answer.body, headers=headers, content_type="text/plain")

    # -- GET /api/v1/crates/{name}/{version}/download -----------------------------------------

    async def download(self, request: web.Request) -> web.StreamResponse:
        name = validate_name(request.match_info["name"])
        version = validate_version(request.match_info["version"])
        answer = await self.core.fetch_crate(name, version, client_of(request))
        body = answer.crate.body
        if body is None:  # a large crate: sendfile, never read into memory
            path = answer.crate.path
            metrics.bytes_counter("download").inc(path.stat().st_size)
            return web.FileResponse(path, headers={"Content-Type": CRATE_TYPE})
        if answer.reusable is not None:
            self._prepare_download(request, answer, body)
        metrics.bytes_counter("download").inc(len(body))
        return web.Response(body=body, content_type=CRATE_TYPE)

    def _prepare_download(self, request: web.Request, answer: CrateAnswer, body: bytes) -> None:
        assert answer.reusable is not None
        self._prepare(
            request,
            prepared_response(
                "download",
                body,
                {"Content-Type": CRATE_TYPE},
                answer.reusable,
                crate=answer.line.name,
                version=answer.line.vers,
                details={"cksum": answer.line.cksum},
            ),
        )

    # -- GET /index/config.json ---------------------------------------------------------------

    async def config_json(self, request: web.Request) -> web.StreamResponse:
        config = self.core.config
        body = await config.served()
        self._prepare(
            request,
            prepared_response(
                "config",
                body,
                {"Content-Type": "application/json"},
                lambda: config.is_current(body),
            ),
        )
        return web.Response(body=body, content_type="application/json")

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

    # -- helpers ------------------------------------------------------------------------------

    def _prepare(self, request: web.Request, prepared: Prepared) -> None:
        """Leave a decided response for the front door to repeat while it stays true."""
        target = request.raw_path
        if target.isascii() and "?" not in target and "%" not in target:
            self.prepared.put(target.encode("ascii"), prepared)


FEED_DEFAULT_LIMIT = 100  # entries when the request does not say


def _limit(text: str | None) -> int:
    if text is None:
        return FEED_DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= FEED_MAX_LIMIT:
        raise BadRequest(f"limit must be a number from 1 to {FEED_MAX_LIMIT}")
    return int(text)


def etags(header: str | None) -> list[str]:
    if not header:
        return []
    return [t.strip().removeprefix("W/") for t in header.split(",")]
