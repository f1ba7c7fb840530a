"""python-tuf's downloads through the mirror's one upstream client.

ngclient's `Updater` runs in worker threads (its API is blocking) and asks its fetcher for
each metadata file. `TufFetcher` submits every request to the client's event loop and hands
the body back chunk by chunk, so TUF metadata gets the same User-Agent, connection limits,
timeouts and retries as everything else the mirror fetches, and python-tuf's own length caps
(`UpdaterConfig.*_max_length`) still stop an endless body while it streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from tuf.api import exceptions as tuf_errors
from tuf.ngclient.fetcher import FetcherInterface

from mirror.errors import IntegrityError, MirrorError, TruncatedBody
from mirror.upstream.client import Response, UpstreamClient

T = TypeVar("T")
WAIT_SECONDS = 300.0  # seconds one step (connect, one chunk) may take before giving up


class TufFetcher(FetcherInterface):
    def __init__(self, client: UpstreamClient, max_bytes: int) -> None:
        self._client = client
        self._max_bytes = max_bytes  # bytes; no metadata file may be larger (endless data)

    def _fetch(self, url: str) -> Iterator[bytes]:
        """Called from a worker thread. A 4xx reaches python-tuf as DownloadHTTPError: a 404
        for root N+1 means "no newer root", not a failure."""
        stream = _Stream(self._client.get(url, kind="tuf", max_bytes=self._max_bytes))
        response = self._run(stream.open())
        if response.status >= 400:
            self._release(stream)
            raise tuf_errors.DownloadHTTPError(
                f"upstream answered HTTP {response.status}", response.status
            )
        return self._chunks(stream)

    def _chunks(self, stream: _Stream) -> Iterator[bytes]:
        try:
            while True:
                chunk = self._run(stream.next())
                if chunk is None:
                    return
                yield chunk
        except TruncatedBody as e:  # a broken connection: worth trying again later
            raise tuf_errors.DownloadError(str(e)) from e
        except IntegrityError as e:  # over the byte limit, declared or sent: endless data
            raise tuf_errors.DownloadLengthMismatchError(str(e)) from e
        except MirrorError as e:
            raise tuf_errors.DownloadError(str(e)) from e
        finally:
            self._release(stream)

    def _release(self, stream: _Stream) -> None:
        """Give the connection back. python-tuf may drop a stream half read (it stops at its
        length cap); the generator is then closed whenever it is collected, which may be on
        the loop's own thread (waiting there would deadlock) or after the loop is gone."""
        loop = self._client.loop
        if loop is None or loop.is_closed():
            return  # the session, and every connection with it, is already closed
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        future = asyncio.run_coroutine_threadsafe(stream.close(), loop)
        if not on_loop:
            future.result(WAIT_SECONDS)

    def _run(self, step: Coroutine[Any, Any, T]) -> T:
        loop = self._client.loop
        if loop is None:
            step.close()
            raise tuf_errors.DownloadError("the upstream client is not open yet")
        return asyncio.run_coroutine_threadsafe(step, loop).result(WAIT_SECONDS)


class _Stream:
    """One `get` held open across several calls from the worker thread."""

    def __init__(self, request: AbstractAsyncContextManager[Response]) -> None:
        self._request = request
        self._chunks: AsyncIterator[bytes] | None = None
        self._open = False

    async def open(self) -> Response:
        response = await self._request.__aenter__()
        self._open = True
        self._chunks = response.chunks
        return response

    async def next(self) -> bytes | None:
        assert self._chunks is not None
        return await anext(self._chunks, None)

    async def close(self) -> None:
        if self._open:
            self._open = False
            await self._request.__aexit__(None, None, None)
