"""The one HTTP client that calls out: polite, bounded, retrying.

Everything the mirror fetches goes through `UpstreamClient`: index files, crates, upstream's
config.json, TUF metadata (python-tuf gets `mirror.upstream.tuf_fetcher` on top of it) and
the registry API pages of a corpus update. Polite means: an identifying User-Agent, a cap on
concurrent connections, timeouts on connect and on every read, and retries with exponential
backoff (honouring Retry-After) only for idempotent GETs that failed with 5xx, 429 or a
broken connection. Bounded means every body is read against a byte limit while streaming.

`Upstream` is the interface the rest of the mirror sees, so tests and fault-injecting fakes
can stand in for the real client.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from mirror import USER_AGENT, metrics
from mirror.config import Settings
from mirror.errors import TruncatedBody, UpstreamNotFound, UpstreamUnavailable
from mirror.index import index_path
from mirror.upstream.transfer import backoff, describe, limited_chunks

MAX_CONFIG_BYTES = 64 * 1024  # bytes; config.json is a few hundred bytes in practice
MAX_RETRY_AFTER = 10.0  # seconds; a longer Retry-After is treated as "down"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
ANSWER_TIMES_KEPT = 32  # upstream answer times kept for `quickest_answer_time`
ANSWER_TIMES_NEEDED = 4  # ... and how many it needs before it says anything


@dataclass(frozen=True)
class IndexFetch:
    status: int  # 200 (new body), 304 (cached copy still good) or 404 (no such crate)
    body: bytes
    etag: str | None
    last_modified: str | None


@dataclass(frozen=True)
class ClientLimits:
    connect_timeout: float = 10.0  # seconds
    read_timeout: float = 30.0  # seconds without a byte from upstream
    concurrency: int = 32  # connections at once
    retries: int = 3  # extra attempts for 5xx/429/connection errors on GETs
    max_index_bytes: int = 32 * 2**20  # bytes; one index file
    max_crate_bytes: int = 64 * 2**20  # bytes; one crate

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientLimits:
        return cls(
            connect_timeout=settings.upstream_connect_timeout,
            read_timeout=settings.upstream_read_timeout,
            concurrency=settings.upstream_concurrency,
            retries=settings.upstream_retries,
            max_index_bytes=settings.max_index_bytes,
            max_crate_bytes=settings.max_crate_bytes,
        )


@dataclass(frozen=True)
class Response:
    """An answer to `get`: status, headers, and the body as chunks within the byte limit."""

    status: int
    headers: Mapping[str, str]
    chunks: AsyncIterator[bytes]

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks])


class Upstream(Protocol):
    """What the mirror asks of the registry (and of anything that stands in for it)."""

    @property
    def has_config(self) -> bool:
        """Whether upstream's `dl` template is known (downloads need it)."""
        ...

    async def fetch_config(self) -> bytes: ...

    def set_config(self, body: bytes) -> None:
        """Learn the `dl` template from a config.json body (e.g. one kept in the store)."""
        ...

    async def fetch_index(
        self, name: str, etag: str | None = None, last_modified: str | None = None
    ) -> IndexFetch: ...

    def download(
        self, name: str, version: str, cksum: str
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """The crate's body as chunks; truncation raises TruncatedBody."""
        ...

    def get(
        self, url: str, *, kind: str, max_bytes: int, headers: Mapping[str, str] | None = None
    ) -> AbstractAsyncContextManager[Response]:
        """Any other GET (TUF metadata, registry API pages), with the same retries/limits."""
        ...

    async def open(self) -> None:
        """Get ready on the running loop (before worker threads submit requests to it)."""
        ...

    async def close(self) -> None: ...


@dataclass
class UpstreamHealth:
    """How upstream has been answering this process (the console's status page), and how
    fast (what looking ahead is worth: mirror/serving/look_ahead.py)."""

    last_ok: float | None = None  # unix time of the last answer (any status it means)
    last_failure: float | None = None  # unix time of the last request that failed for good
    last_error: str | None = None
    failing: int = 0  # requests failed in a row (each after its retries)
    # Seconds from sending a request to its answer's head, for the latest requests (not the
    # wait for a free connection: with many requests at once, that would be all it measured).
    answer_times: deque[float] = field(default_factory=lambda: deque(maxlen=ANSWER_TIMES_KEPT))

    def quickest_answer_time(self) -> float | None:
        """The quickest of the latest answer times (seconds), None until there are a few:
        how far away upstream is at the least. Not the median: while this process is busy,
        its event loop adds to every sample (cold fetches from a loopback upstream measured
        1.3-4.4 ms medians, 0.9-2.2 ms minimums), never takes away."""
        times = self.answer_times
        return min(times) if len(times) >= ANSWER_TIMES_NEEDED else None

    def ok(self) -> None:
        self.last_ok = time.time()
        self.failing = 0

    def failed(self, error: str) -> None:
        self.last_failure = time.time()
        self.last_error = error
        self.failing += 1


class UpstreamClient:
    def __init__(self, index_url: str, limits: ClientLimits | None = None) -> None:
        self._base = index_url.rstrip("/") + "/"
        self._limits = limits or ClientLimits()
        self._session: aiohttp.ClientSession | None = None
        self._dl_template: str | None = None
        # The loop the session lives on: worker threads (python-tuf) submit requests to it.
        self.loop: asyncio.AbstractEventLoop | None = None
        self.health = UpstreamHealth()
        # A request waits here for one of the connections; the session's pool never queues.
        self._slots: asyncio.Semaphore | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> UpstreamClient:
        return cls(settings.upstream_index, ClientLimits.from_settings(settings))

    async def __aenter__(self) -> UpstreamClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            limits = self._limits
            self.loop = asyncio.get_running_loop()
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": USER_AGENT},
                connector=aiohttp.TCPConnector(limit=limits.concurrency, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=limits.connect_timeout,
                    sock_connect=limits.connect_timeout,
                    sock_read=limits.read_timeout,
                ),
                auto_decompress=True,
            )
        return self._session

    async def open(self) -> None:
        """Create the session now, on the running loop (before worker threads need it)."""
        _ = self.session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- config.json --------------------------------------------------------------------------

    async def fetch_config(self) -> bytes:
        async with self._get(self._base + "config.json", kind="config") as resp:
            if resp.status == 404:
                raise UpstreamNotFound("upstream has no config.json")
            body = await _read_limited(resp, MAX_CONFIG_BYTES)
        self.set_config(body)
        return body

    def set_config(self, body: bytes) -> None:
        try:
            config = json.loads(body)
            dl = config["dl"]
            if not isinstance(dl, str):
                raise TypeError
        except (ValueError, KeyError, TypeError) as e:
            raise UpstreamUnavailable("upstream config.json has no usable `dl`") from e
        self._dl_template = dl

    @property
    def has_config(self) -> bool:
        return self._dl_template is not None

    def download_url(self, name: str, version: str, cksum: str) -> str:
        """Fill in upstream's `dl` template the way cargo does."""
        if self._dl_template is None:
            raise UpstreamUnavailable("upstream config.json not loaded")
        return expand_dl_template(self._dl_template, name, version, cksum)

    # -- index files --------------------------------------------------------------------------

    async def fetch_index(
        self, name: str, etag: str | None = None, last_modified: str | None = None
    ) -> IndexFetch:
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        url = self._base + index_path(name)
        async with self._get(url, kind="index", headers=headers) as resp:
            if resp.status == 304:
                return IndexFetch(304, b"", etag, last_modified)
            # crates.io answers 403 as well as 404 for names it has never seen.
            if resp.status in (404, 410, 451, 403):
                return IndexFetch(404, b"", None, None)
            body = await _read_limited(resp, self._limits.max_index_bytes)
            return IndexFetch(
                200, body, resp.headers.get("ETag"), resp.headers.get("Last-Modified")
            )

    # -- downloads ----------------------------------------------------------------------------

    @asynccontextmanager
    async def download(
        self, name: str, version: str, cksum: str
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Yield an async iterator of body chunks; truncation raises IntegrityError."""
        url = self.download_url(name, version, cksum)
        async with self._get(url, kind="crate") as resp:
            if resp.status == 404:
                raise UpstreamNotFound(f"upstream has no download for {name} {version}")
            yield _body(resp, self._limits.max_crate_bytes)

    # -- anything else ------------------------------------------------------------------------

    @asynccontextmanager
    async def get(
        self, url: str, *, kind: str, max_bytes: int, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[Response]:
        """GET `url` with retries; yields 2xx/3xx answers and 403/404/410/451 (for the caller
        to judge); other statuses raise UpstreamUnavailable."""
        async with self._get(url, kind=kind, headers=dict(headers or {})) as resp:
            yield Response(resp.status, resp.headers, _body(resp, max_bytes))

    # -- the retrying GET ---------------------------------------------------------------------

    @asynccontextmanager
    async def _get(
        self, url: str, *, kind: str, headers: dict[str, str] | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        attempts = self._limits.retries + 1
        last_error = "no attempt made"
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._limits.concurrency)
        for attempt in range(attempts):
            retry_after = None
            async with self._slots:  # held until the answer is read: never waiting for a retry
                started = time.perf_counter()
                try:
                    resp = await self.session.get(url, headers=headers, allow_redirects=True)
                except (TimeoutError, aiohttp.ClientError, OSError) as e:
                    last_error = f"upstream {describe(e)}"
                else:
                    elapsed = time.perf_counter() - started
                    metrics.upstream_latency.labels(kind).observe(elapsed)
                    self.health.answer_times.append(elapsed)
                    if resp.status in _RETRY_STATUSES:
                        last_error = f"upstream answered HTTP {resp.status}"
                        retry_after = _retry_after(resp)
                        resp.release()
                        if retry_after is not None and retry_after > MAX_RETRY_AFTER:
                            break
                    else:
                        if resp.status >= 400 and resp.status not in (403, 404, 410, 451):
                            resp.release()
                            self.health.failed(f"HTTP {resp.status} for {kind}")
                            raise UpstreamUnavailable(
                                f"upstream answered HTTP {resp.status} for {kind}"
                            )
                        self.health.ok()
                        try:
                            yield resp
                        finally:
                            resp.release()
                        return
            if attempt + 1 < attempts:
                await asyncio.sleep(retry_after if retry_after is not None else backoff(attempt))
        self.health.failed(last_error)
        raise UpstreamUnavailable(f"{last_error} (after {attempts} attempts)")


def expand_dl_template(template: str, name: str, version: str, cksum: str) -> str:
    markers = ("{crate}", "{version}", "{prefix}", "{lowerprefix}", "{sha256-checksum}")
    if not any(m in template for m in markers):
        return f"{template.rstrip('/')}/{name}/{version}/download"
    prefix = _prefix(name)
    return (
        template.replace("{crate}", name)
        .replace("{version}", version)
        .replace("{prefix}", prefix)
        .replace("{lowerprefix}", prefix.lower())
        .replace("{sha256-checksum}", cksum)
    )


def _prefix(name: str) -> str:
    """cargo's directory prefix for a name, in its original case (`{prefix}` marker)."""
    if len(name) <= 2:
        return str(len(name))
    if len(name) == 3:
        return f"3/{name[0]}"
    return f"{name[0:2]}/{name[2:4]}"


def _body(resp: aiohttp.ClientResponse, limit: int) -> AsyncIterator[bytes]:
    """Over `limit` bytes: IntegrityError; ended early: TruncatedBody (retried once)."""
    return limited_chunks(resp, limit, what="the upstream answer", cut_short=TruncatedBody)


async def _read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    return b"".join([chunk async for chunk in _body(resp, limit)])


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds: float = float(value)
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
    return max(0.0, seconds)
