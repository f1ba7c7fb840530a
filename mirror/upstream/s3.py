"""The object store client: S3's REST API on aiohttp, signed with SigV4, retrying, bounded.

A sibling of the registry client (mirror.upstream.client) and, like it, the only code that
opens connections to where it points: replicas share crates, index files and scan reports
through a bucket (mirror.store.s3 decides what goes where; this module only moves bytes).
Why not boto3 or aiobotocore: botocore brings ~80 MB, its own retry and timeout layer next to
ours (the brief wants them in one place), a pinned botocore/aiohttp pair that fights our
aiohttp pin, and connects that would not pass through mirror/upstream/. The handful of calls
the mirror needs (GET with Range, HEAD, PUT with If-Match / If-None-Match, multipart upload,
listing and aborting stale uploads) are short on aiohttp, and the signer (sigv4.py) is tested
against botocore's.

Every call: one retry loop (`_send`) with connect and read timeouts, exponential backoff on
connection errors, timeouts, 5xx and 429/SlowDown; every body read against a byte limit;
every failure is StoreUnavailable whose text names the operation, the key and S3's error
code, never a credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiohttp
import structlog
from yarl import URL

from mirror import USER_AGENT
from mirror.errors import IntegrityError, StoreUnavailable
from mirror.upstream.sigv4 import EMPTY_SHA256, Credentials, canonical_query, sign
from mirror.upstream.transfer import backoff, describe, limited_chunks

log = structlog.get_logger("mirror.s3")

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_XML_BYTES = 4 * 2**20  # bytes; S3's answers to listings and multipart calls
MIN_PART_BYTES = 5 * 2**20  # S3 refuses smaller parts (except the last)


@dataclass(frozen=True)
class S3Location:
    """Where the bucket is. `addressing`: "path" (endpoint/bucket/key: MinIO, Ceph, moto) or
    "virtual" (bucket.endpoint/key: AWS's default)."""

    bucket: str
    endpoint: str  # scheme://host[:port]
    region: str = "us-east-1"
    prefix: str = ""  # every key starts with this (several mirrors can share a bucket)
    addressing: str = "path"

    @classmethod
    def of(
        cls, bucket: str, endpoint: str | None, region: str, prefix: str, addressing: str
    ) -> S3Location:
        """`endpoint` None means AWS S3 in `region`; `addressing` "auto" picks virtual-hosted
        for AWS and path-style for anything else."""
        if endpoint is None:
            endpoint = f"https://s3.{region}.amazonaws.com"
        if addressing == "auto":
            host = urlsplit(endpoint).hostname or ""
            addressing = "virtual" if host.endswith("amazonaws.com") else "path"
        prefix = prefix.strip("/")
        return cls(bucket, endpoint.rstrip("/"), region, prefix + "/" if prefix else "", addressing)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix} at {self.endpoint}"


@dataclass(frozen=True)
class S3Limits:
    connect_timeout: float = 5.0  # seconds
    read_timeout: float = 30.0  # seconds without a byte from the store
    retries: int = 3  # extra attempts after a connection error, timeout, 5xx or 429
    concurrency: int = 32  # connections at once
    part_bytes: int = 8 * 2**20  # bytes; larger objects are uploaded in parts of this size


@dataclass
class _Answer:
    status: int
    headers: Mapping[str, str]
    response: aiohttp.ClientResponse = field(repr=False)


class S3Client:
    """One bucket. Keys are relative to the location's prefix."""

    def __init__(
        self,
        location: S3Location,
        credentials: Credentials | None,
        limits: S3Limits | None = None,
    ) -> None:
        self.location = location
        self._credentials = credentials  # None: anonymous requests (a public test bucket)
        self._limits = limits or S3Limits()
        if self._limits.part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part size must be at least {MIN_PART_BYTES} bytes")
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never the credentials, whatever logs this object
        return f"S3Client({self.location.describe()})"

    def describe(self) -> str:
        return self.location.describe()

    # -- lifetime -----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._session is None:
            limits = self._limits
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": USER_AGENT},
                connector=aiohttp.TCPConnector(limit=limits.concurrency, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=limits.connect_timeout,
                    sock_connect=limits.connect_timeout,
                    sock_read=limits.read_timeout,
                ),
                auto_decompress=False,  # bytes as stored: their hash is what we check
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- reads ----------------------------------------------------------------------------------

    async def check(self) -> None:
        """Whether the bucket is there and these credentials may use it (StoreUnavailable)."""
        async with self._send("HEAD", "", ok=(200, 404, 403)) as answer:
            if answer.status == 404:
                raise StoreUnavailable(f"object store: there is no bucket {self.describe()}")
            if answer.status == 403:
                raise StoreUnavailable(f"object store: access denied to {self.describe()}")

    async def get(self, key: str, max_bytes: int) -> tuple[bytes, str] | None:
        """The whole object and its ETag, or None if there is none."""
        async with self._send("GET", key, ok=(200, 404)) as answer:
            if answer.status == 404:
                await self._missing_object(answer)
                return None
            try:
                body = b"".join([c async for c in _chunks(answer.response, max_bytes, key)])
            except _CutShort as e:
                raise StoreUnavailable(f"object store: reading {key} failed: {e}") from e
            return body, answer.headers.get("ETag", "")

    async def head(self, key: str) -> str | None:
        """The object's ETag, or None if there is none."""
        async with self._send("HEAD", key, ok=(200, 404)) as answer:
            return None if answer.status == 404 else answer.headers.get("ETag", "")

    @asynccontextmanager
    async def stream(self, key: str, max_bytes: int) -> AsyncIterator[AsyncIterator[bytes] | None]:
        """The object as chunks (None if there is none). A body cut short is resumed where it
        stopped with a ranged GET bound to the first answer's ETag (If-Match), so a retry never
        splices two versions of an object together."""
        async with self._send("GET", key, ok=(200, 404)) as first:
            if first.status == 404:
                await self._missing_object(first)
                yield None
                return
            declared = first.response.content_length
            if declared is not None and declared > max_bytes:
                raise IntegrityError(f"stored {key} is {declared} bytes, over {max_bytes}")
            yield self._resuming(key, first, max_bytes)

    async def _resuming(self, key: str, first: _Answer, max_bytes: int) -> AsyncIterator[bytes]:
        etag = first.headers.get("ETag")
        got = 0
        answer = first
        async with contextlib.AsyncExitStack() as stack:
            for attempt in range(self._limits.retries + 1):
                try:
                    async for chunk in _chunks(answer.response, max_bytes - got, key):
                        got += len(chunk)
                        yield chunk
                    return
                except _CutShort as e:
                    if attempt == self._limits.retries or not etag:
                        raise StoreUnavailable(f"object store: reading {key} failed: {e}") from e
                    log.warning("s3.read_resumed", key=key, offset=got, error=str(e))
                headers = {"Range": f"bytes={got}-", "If-Match": etag}
                answer = await stack.enter_async_context(
                    self._send("GET", key, headers=headers, ok=(206, 412))
                )
                if answer.status == 412 or not _range_starts_at(answer.headers, got):
                    raise StoreUnavailable(f"object store: {key} changed while it was read")

    async def _missing_object(self, answer: _Answer) -> None:
        """A 404 means "no such object" only if the bucket exists: a missing bucket (a typo in
        the settings) must not look like an empty one, or every read would quietly miss."""
        if await _error_code(answer.response) == "NoSuchBucket":
            raise StoreUnavailable(f"object store: there is no bucket {self.describe()}")

    # -- writes ---------------------------------------------------------------------------------

    async def put(
        self,
        key: str,
        body: bytes,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> str | None:
        """Store `body` (atomic: readers see the old object or the new one). Returns the new
        ETag, or None when the condition failed (If-Match: someone else changed it first;
        If-None-Match "*": it exists already)."""
        headers = {"Content-Type": "application/octet-stream"}
        if if_match is not None:
            headers["If-Match"] = if_match
        if if_none_match is not None:
            headers["If-None-Match"] = if_none_match
        digest = hashlib.sha256(body).hexdigest()
        async with self._send(
            "PUT", key, headers=headers, body=body, payload_sha256=digest, ok=(200, 412)
        ) as answer:
            return None if answer.status == 412 else answer.headers.get("ETag", "")

    async def put_file(self, key: str, path: Path, sha256: str) -> None:
        """Upload a local file whose sha256 is known. The store checks every byte against the
        signed payload hash; files over `part_bytes` go up in parts (multipart upload), which
        the store assembles only on completion: a writer killed half-way leaves no object,
        only an unfinished upload (`abort_stale_uploads` removes those)."""
        size = path.stat().st_size
        if size <= self._limits.part_bytes:
            body = await asyncio.to_thread(path.read_bytes)
            headers = {"Content-Type": "application/octet-stream"}
            async with self._send(
                "PUT", key, headers=headers, body=body, payload_sha256=sha256, ok=(200,)
            ):
                return
        await self._multipart(key, path)

    async def _multipart(self, key: str, path: Path) -> None:
        async with self._send("POST", key, query={"uploads": ""}, ok=(200,)) as answer:
            upload_id = _xml_text(await _read_xml(answer.response, key), "UploadId")
        if not upload_id:
            raise StoreUnavailable(f"object store: no UploadId for {key}")
        try:
            parts = []
            with open(path, "rb") as handle:
                number = 1
                while data := await asyncio.to_thread(handle.read, self._limits.part_bytes):
                    query = {"partNumber": str(number), "uploadId": upload_id}
                    digest = hashlib.sha256(data).hexdigest()
                    async with self._send(
                        "PUT", key, query=query, body=data, payload_sha256=digest, ok=(200,)
                    ) as answer:
                        parts.append((number, answer.headers.get("ETag", "")))
                    number += 1
            listing = "".join(
                f"<Part><PartNumber>{n}</PartNumber><ETag>{_xml_escape(tag)}</ETag></Part>"
                for n, tag in parts
            )
            body = f"<CompleteMultipartUpload>{listing}</CompleteMultipartUpload>".encode()
            digest = hashlib.sha256(body).hexdigest()
            async with self._send(
                "POST",
                key,
                query={"uploadId": upload_id},
                body=body,
                payload_sha256=digest,
                ok=(200,),
            ) as answer:
                # S3 may answer 200 and report the failure in the body (API reference,
                # CompleteMultipartUpload): an <Error> there means no object was made.
                root = await _read_xml(answer.response, key)
                if root.tag.endswith("Error"):
                    code = _xml_text(root, "Code") or "error"
                    raise StoreUnavailable(f"object store: completing {key} failed: {code}")
        except BaseException:
            await asyncio.shield(self._abort(key, upload_id))
            raise

    async def _abort(self, key: str, upload_id: str) -> None:
        try:
            async with self._send("DELETE", key, query={"uploadId": upload_id}, ok=(204, 200, 404)):
                pass
        except StoreUnavailable as e:  # the store's lifecycle rule or the next start cleans up
            log.warning("s3.abort_failed", key=key, error=str(e))

    async def abort_stale_uploads(self, older_than: float) -> int:
        """Abort unfinished multipart uploads under our prefix started more than `older_than`
        seconds ago (a replica killed mid-upload); returns how many."""
        query = {"uploads": "", "prefix": self.location.prefix}
        async with self._send("GET", "", query=query, ok=(200,)) as answer:
            root = await _read_xml(answer.response, "uploads")
        aborted = 0
        for key, upload_id in stale_uploads(root, time.time() - older_than):
            await self._abort(key[len(self.location.prefix) :], upload_id)
            aborted += 1
        return aborted

    async def delete(self, key: str) -> None:
        async with self._send("DELETE", key, ok=(204, 200, 404)):
            pass

    # -- the one retrying, signing request ------------------------------------------------------

    @asynccontextmanager
    async def _send(
        self,
        method: str,
        key: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        payload_sha256: str = EMPTY_SHA256,
        ok: tuple[int, ...],
    ) -> AsyncIterator[_Answer]:
        if self._session is None:
            await self.open()
        assert self._session is not None
        url, host, path = self._address(key)
        query = dict(query or {})
        what = f"{method} {key or '/'}"
        attempts = self._limits.retries + 1
        last = "no attempt made"
        for attempt in range(attempts):
            signed = dict(headers or {})
            if self._credentials is not None:
                now = datetime.now(UTC)
                signed.update(
                    sign(method, host, path, query, signed, payload_sha256, self._credentials,
                         self.location.region, now)
                )  # fmt: skip
            else:
                signed["x-amz-content-sha256"] = payload_sha256
            signed["Host"] = host
            target = URL(url + ("?" + canonical_query(query) if query else ""), encoded=True)
            try:
                response = await self._session.request(
                    method, target, headers=signed, data=body, allow_redirects=False
                )
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                last = describe(e)
            else:
                if response.status in ok:
                    try:
                        yield _Answer(response.status, response.headers, response)
                    finally:
                        response.release()
                    return
                code = await _error_code(response)
                response.release()
                last = f"HTTP {response.status} {code}".rstrip()
                if response.status not in _RETRY_STATUSES:
                    raise StoreUnavailable(f"object store refused {what}: {last}")
            if attempt + 1 < attempts:
                await asyncio.sleep(backoff(attempt))
        raise StoreUnavailable(f"object store: {what} failed: {last} (after {attempts} attempts)")

    def _address(self, key: str) -> tuple[str, str, str]:
        """(URL without query, Host header, unencoded path to sign) of a key."""
        loc = self.location
        parts = urlsplit(loc.endpoint)
        full = loc.prefix + key if key else ""
        if loc.addressing == "virtual":
            host = f"{loc.bucket}.{parts.netloc}"
            path = "/" + full
        else:
            host = parts.netloc
            path = f"/{loc.bucket}/{full}" if full else f"/{loc.bucket}"
        return f"{parts.scheme}://{host}{quote(path, safe='/~')}", host, path


class _CutShort(Exception):
    """The connection broke or went silent in the middle of a body."""


def _chunks(response: aiohttp.ClientResponse, limit: int, key: str) -> AsyncIterator[bytes]:
    return limited_chunks(response, limit, what=f"stored {key}", cut_short=_CutShort)


async def _read_xml(response: aiohttp.ClientResponse, key: str) -> ET.Element:
    try:
        body = b"".join([c async for c in _chunks(response, MAX_XML_BYTES, key)])
        # The answer comes from the configured store, bounded in size; Python's expat
        # refuses entity-expansion bombs (billion laughs) since 3.7.1 / expat 2.4.1.
        return ET.fromstring(body)
    except (_CutShort, ET.ParseError) as e:
        raise StoreUnavailable(f"object store: unreadable answer for {key}: {e}") from e


async def _error_code(response: aiohttp.ClientResponse) -> str:
    """S3's error code (AccessDenied, NoSuchBucket, SlowDown...) from an error body."""
    if response.method == "HEAD":
        return ""
    try:
        body = await response.content.read(64 * 1024)
        return _xml_text(ET.fromstring(body), "Code") or ""
    except (ET.ParseError, aiohttp.ClientError, TimeoutError, OSError):
        return ""


def stale_uploads(listing: ET.Element, cutoff: float) -> list[tuple[str, str]]:
    """(key, upload id) of each upload in a ListMultipartUploads answer started before
    `cutoff` (unix time); one without a readable start time is left alone."""
    found = []
    for upload in _children(listing, "Upload"):
        key, upload_id = _xml_text(upload, "Key"), _xml_text(upload, "UploadId")
        started = _parse_time(_xml_text(upload, "Initiated"))
        if key and upload_id and started is not None and started < cutoff:
            found.append((key, upload_id))
    return found


def _children(root: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in root if child.tag.rsplit("}", 1)[-1] == name]


def _xml_text(root: ET.Element, name: str) -> str | None:
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == name:
            return element.text
    return None


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _range_starts_at(headers: Mapping[str, str], offset: int) -> bool:
    """Content-Range: bytes START-END/TOTAL must start where the cut body stopped."""
    value = headers.get("Content-Range", "")
    return value.startswith(f"bytes {offset}-")
