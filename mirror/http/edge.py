"""The edge of every route: client authentication, and exceptions -> statuses, in one place.

Nothing else in the package knows about status codes: the core raises the errors of
mirror.errors, and `edge` turns each into the status and text cargo understands.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from mirror import metrics
from mirror.errors import (
    ArchiveError,
    BadRequest,
    Blocked,
    ConfigError,
    IntegrityError,
    MirrorError,
    NotFound,
    StorageError,
    StoreUnavailable,
    TrustError,
    UpstreamNotFound,
    UpstreamUnavailable,
)
from mirror.http.reply import Reply
from mirror.request_ids import next_request_id
from mirror.serving.core import Client, MirrorCore
from mirror.sources.tokens import TokenStore

log = structlog.get_logger("mirror.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)
IDENTITY = web.RequestKey("identity", str)  # the authenticated token's name


def status_for(error: MirrorError) -> int:
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
    if isinstance(error, StoreUnavailable):
        return 503  # the shared bucket is down: try again (another replica may answer)
    if isinstance(error, StorageError):
        return 507
    if isinstance(error, ConfigError):
        return 503  # a file the server reads is invalid (a lock edited by hand): until fixed
    return 500


def client_of(request: web.Request) -> Client:
    """The request's audit identity; its id is kept on the request for the error text."""
    rid = next_request_id()
    request[REQUEST_ID] = rid
    return Client(rid, _who(request))


def failure(
    route: str,
    error: Exception,
    core: MirrorCore,
    *,
    request_id: str | None,
    who: str | None,
    path: str,
    crate: str,
    version: str | None,
) -> Reply:
    """What a request that raised gets, whichever protocol carries it (aiohttp's or the front
    door's): the status and the text cargo prints, one log line, and the audit record of a
    verification failure."""
    if not isinstance(error, MirrorError):
        # A bug, not a verdict: never leak internals, but give the id to find the traceback.
        log.error("request.crashed", route=route, path=path, request_id=request_id, exc_info=error)
        return Reply.text(500, f"crate-mirror: internal error (request {request_id})\n")
    status = status_for(error)
    text = str(error) if isinstance(error, Blocked) else f"crate-mirror: {error}"
    if request_id and not isinstance(error, Blocked):
        text += f" (request {request_id})"
    if isinstance(error, Blocked):
        # One line per refused request in the server's own log (the audit log has the
        # decision; this is for whoever watches the server).
        log.warning(
            "request.blocked",
            route=route,
            rule=error.rule,
            path=path,
            client=who,
            request_id=request_id,
        )
    elif status >= 500:
        log.error(
            "request.failed",
            route=route,
            path=path,
            status=status,
            error=str(error),
            request_id=request_id,
        )
    client = Client(request_id or next_request_id(), who)
    core.record_failure(client, route, crate, version, error)
    return Reply.text(status, text + "\n")


def crate_of_index_path(path: str) -> str:
    """The crate an index path names: its last segment, without the sha256 prefix of a TUF
    consistent-snapshot name."""
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[-1]


def edge(
    route: str,
    handler: Handler,
    core: MirrorCore,
    tokens: TokenStore | None,
    base_url: str,
    *,
    public: bool = False,
) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            if tokens is not None and not public:
                identity = tokens.authenticate(request.headers.get("Authorization"))
                if identity is None and tokens.problem is not None:
                    metrics.request_counter(route, 503).inc()
                    return _tokens_unusable()
                if identity is None:
                    metrics.request_counter(route, 401).inc()
                    return _challenge(base_url)
                request[IDENTITY] = identity.name
            response = await handler(request)
        except Exception as e:
            info = request.match_info
            response = failure(
                route,
                e,
                core,
                request_id=request.get(REQUEST_ID),
                who=_who(request),
                path=request.path,
                crate=info.get("name") or crate_of_index_path(info.get("path", "")),
                version=info.get("version"),
            ).to_aiohttp()
        metrics.request_counter(route, response.status).inc()
        return response

    return wrapped


# Methods whose routes may read a body (none of cargo's; a form a future route posts).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@web.middleware
async def refuse_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A body is for a route that reads one; cargo never sends one.

    A request that announces a body anywhere else (`GET` with `Content-Length: 10737418240`,
    or a `POST` no route takes) is answered 413 at once, and its connection is closed after
    at most the app's short lingering time: otherwise the handler would answer 200 and aiohttp
    would keep the connection while it drains whatever the client keeps sending (a cheap way
    to tie up connections). A route that does read a body is held to `client_max_size`.
    """
    if not request.body_exists or (
        request.method in _BODY_METHODS and request.match_info.http_exception is None
    ):
        return await handler(request)
    metrics.request_counter("body", 413).inc()
    response = web.Response(status=413, text="crate-mirror: this route takes no request body\n")
    response.force_close()
    return response


def _who(request: web.Request) -> str | None:
    """Who asked, for the audit log: the token's name when authenticated, and the address."""
    identity = request.get(IDENTITY)
    return f"{identity} ({request.remote})" if identity else request.remote


def _challenge(base_url: str) -> web.Response:
    # cargo answers a 401 carrying this challenge by retrying with the registry's token.
    return web.Response(
        status=401,
        headers={"WWW-Authenticate": f'Cargo login_url="{base_url}/"'},
        text="crate-mirror: a valid token is required; ask the mirror's operators for one "
        "(`crate-mirror token add NAME`) and give it to cargo as CARGO_REGISTRIES_<NAME>_TOKEN\n",
    )


def _tokens_unusable() -> web.Response:
    # Not a 401: the client's token may be fine; the mirror cannot tell (fail closed). The
    # reason (with the file's path) is in the server's log, not in this body.
    return web.Response(
        status=503,
        text="crate-mirror: the mirror's token file is invalid, so no token is accepted until "
        "its operators fix it (the server log says what is wrong: tokens.file_invalid)\n",
    )


class _QuietBadRequests(logging.Filter):
    """aiohttp logs every unparseable request at ERROR with a traceback: a client could fill
    the disk with them. The client already got its 400; keep one short debug line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.exc_info, record.exc_text = None, None
            record.msg, record.args = f"bad request: {exc.message}", ()
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def quiet_bad_requests() -> None:
    """Demote aiohttp's tracebacks for unparseable requests (once per serving process)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _QuietBadRequests) for f in logger.filters):
        logger.addFilter(_QuietBadRequests())
