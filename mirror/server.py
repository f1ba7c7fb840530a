"""The HTTP edge: cargo's sparse protocol top to bottom; the one place errors become statuses.

index path:    validate -> decide (name) -> cache or upstream (+TUF) -> decide (versions)
               -> respond (ETag/304) -> audit
download path: validate -> decide (name) -> index line -> decide (version) -> store or
               upstream (checksum) -> decide (capabilities) -> respond (sendfile) -> audit
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from aiohttp import web

from mirror import metrics
from mirror.auth import TokenStore
from mirror.config import Settings
from mirror.downloads import CrateFetcher, HotCrates
from mirror.errors import (
    ArchiveError,
    BadRequest,
    Blocked,
    IntegrityError,
    MirrorError,
    NotFound,
    StorageError,
    TrustError,
    UpstreamNotFound,
    UpstreamUnavailable,
)
from mirror.gate import Gate, Request, ServedIndex
from mirror.index import IndexLine, parse_target_path, validate_name, validate_version
from mirror.index_cache import IndexCache, IndexEntry
from mirror.prepared import HitTally, Prepared, PreparedTable, prepared_response
from mirror.request_ids import next_request_id
from mirror.upstream import Upstream

log = structlog.get_logger("mirror.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)
IDENTITY = web.RequestKey("identity", str)  # the authenticated token's name
CRATE_TYPE = "application/x-tar"
INDEX_CACHE_CONTROL = "max-age=0, must-revalidate"  # cargo revalidates; we answer 304 cheaply


class Mirror:
    """Everything a request needs, built once at start-up."""

    def __init__(
        self,
        settings: Settings,
        indexes: IndexCache,
        crates: CrateFetcher,
        gate: Gate,
        upstream: Upstream | None,
        tokens: TokenStore | None = None,
    ) -> None:
        self.settings = settings
        self.tokens = tokens  # None: anyone who can reach us may read
        self.indexes = indexes
        self.crates = crates
        self.gate = gate
        self.upstream = upstream
        self._config_body: bytes | None = None
        self.hot = HotCrates(settings.hot_cache_bytes, settings.hot_cache_max_file)
        # Warm hits the front door (mirror.front) answers without calling these handlers.
        self.prepared = PreparedTable(settings.prepared_bytes)
        self.tally = HitTally(gate)

    # -- GET /index/{path} --------------------------------------------------------------------

    async def index_file(self, request: web.Request) -> web.StreamResponse:
        name, digest = parse_target_path(request.match_info["path"])
        req = self._request(request, "index", name)
        self.gate.check_name(req)
        entry = await self.indexes.get(name)
        await self.gate.prepare(entry, self.crates)
        offline = self.indexes.offline
        served = self.gate.served_index(entry, self._is_cached if offline else None)
        if digest is not None and hashlib.sha256(served.body).hexdigest() != digest:
            # A TUF client names the bytes its signed metadata lists (consistent snapshots);
            # newer bytes are served under their own name once the mirror has signed them.
            raise NotFound(f"{name}: no served index file has sha256 {digest}; refresh TUF")
        self.gate.allowed(req, served.summary)
        headers = {"ETag": served.etag, "Cache-Control": INDEX_CACHE_CONTROL}
        if entry.stale_reason is not None:
            headers["Warning"] = '110 crate-mirror "Response is Stale: upstream unreachable"'
        elif self.gate.quietly_allowed(name):
            self._prepare(
                request,
                prepared_response(
                    "index",
                    served.body,
                    {**headers, "Content-Type": "text/plain"},
                    self._index_check(entry, served, offline),
                    etag=served.etag,
                    crate=name,
                    details=served.summary,
                ),
            )
        if served.etag in etags(request.headers.get("If-None-Match")):
            return web.Response(status=304, headers=headers)
        metrics.bytes_counter("index").inc(len(served.body))
        return web.Response(body=served.body, headers=headers, content_type="text/plain")

    # -- GET /api/v1/crates/{name}/{version}/download -----------------------------------------

    async def download(self, request: web.Request) -> web.StreamResponse:
        name = validate_name(request.match_info["name"])
        version = validate_version(request.match_info["version"])
        req = self._request(request, "download", name, version)
        self.gate.check_name(req)
        entry = await self.indexes.get(name)
        line = entry.index.find(version)
        if line is None:
            raise NotFound(f"{name} {version} is not in the index")
        self.gate.check_version(req, entry, line)
        body = self.hot.get(line.cksum)  # small crates: memory, else disk or upstream
        if body is not None:
            metrics.cache_counter("crate", "hit").inc()
            path = self.crates.store.crate_path(line.cksum)
        else:
            if self.upstream is not None and not self.upstream.has_config:
                await self.start_upstream()  # upstream was down at start: learn its `dl` now
            path = await self.crates.ensure(line)
        quiet = await self.gate.check_capabilities(req, line, path)
        self.gate.allowed(req, {"cksum": line.cksum})
        if body is None:
            body = self.hot.load(line.cksum, path)
        if body is None:  # a large crate: sendfile, never read into memory
            metrics.bytes_counter("download").inc(path.stat().st_size)
            return web.FileResponse(path, headers={"Content-Type": CRATE_TYPE})
        if quiet:
            self._prepare_download(request, entry, line, body)
        metrics.bytes_counter("download").inc(len(body))
        return web.Response(body=body, content_type=CRATE_TYPE)

    # -- GET /index/config.json ---------------------------------------------------------------

    async def config_json(self, request: web.Request) -> web.StreamResponse:
        if self._config_body is None:
            self._config_body = await self._build_config()
        body = self._config_body
        self._prepare(
            request,
            prepared_response(
                "config",
                body,
                {"Content-Type": "application/json"},
                lambda: self._config_body is body,
            ),
        )
        return web.Response(body=body, content_type="application/json")

    async def _build_config(self) -> bytes:
        upstream_config = await self._upstream_config()
        config = dict(upstream_config)
        # Downloads must come back through us, and no `api` may send cargo around the mirror.
        config["dl"] = f"{self.settings.base_url}/api/v1/crates"
        config.pop("api", None)
        config.pop("auth-required", None)
        if self.tokens is not None:
            config["auth-required"] = True  # cargo then sends its token on every request
        return json.dumps(config, indent=2).encode() + b"\n"

    async def _upstream_config(self) -> dict[str, object]:
        store = self.crates.store
        if self.upstream is not None:
            try:
                body = await self.upstream.fetch_config()
                store.write_upstream_config(body)
            except (UpstreamUnavailable, UpstreamNotFound) as e:
                body_or_none = store.read_upstream_config()
                if body_or_none is None:
                    raise UpstreamUnavailable(f"cannot read upstream config.json: {e}") from e
                body = body_or_none
                self.upstream.set_config(body)
        else:
            body = store.read_upstream_config() or b"{}"
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {}
        return parsed if isinstance(parsed, dict) else {}

    async def start_upstream(self) -> None:
        """Load upstream's `dl` template before the first download needs it."""
        if self.upstream is not None:
            try:
                self._config_body = await self._build_config()
            except UpstreamUnavailable as e:
                log.warning("upstream.config_unavailable", error=str(e))

    # -- health and metrics -------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok", "offline": self.indexes.offline})

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        self.tally.flush()  # what the front door served since its last tick
        return web.Response(body=metrics.render(), content_type="text/plain")

    # -- helpers ------------------------------------------------------------------------------

    def _prepare(self, request: web.Request, prepared: Prepared) -> None:
        """Leave a decided response for the front door to repeat while it stays true."""
        target = request.raw_path
        if target.isascii() and "?" not in target and "%" not in target:
            self.prepared.put(target.encode("ascii"), prepared)

    def _index_check(
        self, entry: IndexEntry, served: ServedIndex, offline: bool
    ) -> Callable[[], bool]:
        gate, is_fresh = self.gate, self.indexes.is_fresh

        def still_valid() -> bool:
            return is_fresh(entry) and gate.still_serves(entry, served, offline=offline)

        return still_valid

    def _prepare_download(
        self, request: web.Request, entry: IndexEntry, line: IndexLine, body: bytes
    ) -> None:
        served = self.gate.served_index(entry)
        if not self.gate.quietly_allowed(line.name) or line.vers in served.hidden:
            return  # a warning is audited per request, so only the handler may answer it
        self._prepare(
            request,
            prepared_response(
                "download",
                body,
                {"Content-Type": CRATE_TYPE},
                self._index_check(entry, served, offline=False),
                crate=line.name,
                version=line.vers,
                details={"cksum": line.cksum},
            ),
        )

    def _is_cached(self, cksum: str) -> bool:
        return self.crates.store.has_crate(cksum)

    @staticmethod
    def _request(
        request: web.Request, route: str, name: str, version: str | None = None
    ) -> Request:
        rid = next_request_id()
        request[REQUEST_ID] = rid
        return Request(rid, _client(request), route, name, version)


def etags(header: str | None) -> list[str]:
    if not header:
        return []
    return [t.strip().removeprefix("W/") for t in header.split(",")]


# -- the edge: exceptions -> responses, in one place ------------------------------------------


def _status_for(error: MirrorError) -> int:
    if isinstance(error, BadRequest):
        return 400
    if isinstance(error, Blocked):
        return 403  # not 404: cargo prints the body of a 403, but says only "not found" for 404
    if isinstance(error, NotFound | UpstreamNotFound):
        return 404
    if isinstance(error, UpstreamUnavailable):
        return 503
    if isinstance(error, IntegrityError | TrustError | ArchiveError):
        return 502
    if isinstance(error, StorageError):
        return 507
    return 500


# Failures that mean "someone may be attacking us": each is an audited block, not just a log.
_AUDITED_FAILURES: tuple[tuple[type[MirrorError], str], ...] = (
    (TrustError, "tuf"),
    (IntegrityError, "checksum"),
    (ArchiveError, "archive"),
)


def edge(route: str, handler: Handler, mirror: Mirror, *, public: bool = False) -> Handler:
    gate = mirror.gate

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            if mirror.tokens is not None and not public:
                identity = mirror.tokens.authenticate(request.headers.get("Authorization"))
                if identity is None:
                    metrics.request_counter(route, 401).inc()
                    return _challenge(mirror)
                request[IDENTITY] = identity.name
            response = await handler(request)
        except MirrorError as e:
            status = _status_for(e)
            rid = request.get(REQUEST_ID)
            text = str(e) if isinstance(e, Blocked) else f"crate-mirror: {e}"
            if rid and not isinstance(e, Blocked):
                text += f" (request {rid})"
            if status >= 500:
                log.error(
                    "request.failed",
                    route=route,
                    path=request.path,
                    status=status,
                    error=str(e),
                    request_id=rid,
                )
            for kind, rule in _AUDITED_FAILURES:
                if isinstance(e, kind):
                    gate.failed(_failed_request(request, route, rid), rule, str(e))
            response = web.Response(status=status, text=text + "\n")
        except Exception:
            # A bug, not a verdict: never leak internals, but give the id to find the traceback.
            rid = request.get(REQUEST_ID)
            log.exception("request.crashed", route=route, path=request.path, request_id=rid)
            response = web.Response(
                status=500, text=f"crate-mirror: internal error (request {rid})\n"
            )
        metrics.request_counter(route, response.status).inc()
        return response

    return wrapped


def _failed_request(request: web.Request, route: str, rid: str | None) -> Request:
    info = request.match_info
    # The last path segment, without the sha256 prefix of a TUF consistent-snapshot name.
    crate = info.get("name") or info.get("path", "").rsplit("/", 1)[-1].rsplit(".", 1)[-1]
    return Request(rid or next_request_id(), _client(request), route, crate, info.get("version"))


def _client(request: web.Request) -> str | None:
    """Who asked, for the audit log: the token's name when authenticated, and the address."""
    identity = request.get(IDENTITY)
    return f"{identity} ({request.remote})" if identity else request.remote


def _challenge(mirror: Mirror) -> web.Response:
    # cargo answers a 401 carrying this challenge by retrying with the registry's token.
    return web.Response(
        status=401,
        headers={"WWW-Authenticate": f'Cargo login_url="{mirror.settings.base_url}/"'},
        text="crate-mirror: a valid token is required; ask the mirror's operators for one "
        "(`crate-mirror token add NAME`) and give it to cargo as CARGO_REGISTRIES_<NAME>_TOKEN\n",
    )


MIRROR = web.AppKey("mirror", Mirror)


def build_app(mirror: Mirror) -> web.Application:
    # Generous but finite limits on what a client may send (slowloris, header floods).
    app = web.Application(client_max_size=64 * 1024, handler_args={"max_field_size": 8190})
    app.router.add_get("/index/config.json", edge("config", mirror.config_json, mirror))
    app.router.add_get("/index/{path:.+}", edge("index", mirror.index_file, mirror))
    app.router.add_get(
        "/api/v1/crates/{name}/{version}/download", edge("download", mirror.download, mirror)
    )
    app.router.add_get("/healthz", edge("healthz", mirror.healthz, mirror, public=True))
    app.router.add_get("/metrics", edge("metrics", mirror.metrics, mirror))
    app[MIRROR] = mirror
    return app


def tuf_static(app: web.Application, metadata_dir: Path) -> None:
    """Serve the mirror's signed TUF metadata for downstream mirrors and clients."""
    app.router.add_static("/tuf/", metadata_dir, show_index=False, follow_symlinks=False)
