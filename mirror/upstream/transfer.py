"""What the mirror's HTTP clients (upstream registry, object store) do alike: read a body in
chunks within a byte limit, noticing one that ends early; wait between retries; say what a
failed connection was."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable

import aiohttp

from mirror.errors import IntegrityError

CHUNK = 64 * 1024  # bytes read at a time


async def limited_chunks(
    response: aiohttp.ClientResponse,
    limit: int,
    *,
    what: str,
    cut_short: Callable[[str], Exception],
) -> AsyncIterator[bytes]:
    """The body of `response` (`what` names it in errors). More than `limit` bytes, declared
    or sent, is an IntegrityError; a body that ends early or breaks off raises `cut_short`."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise IntegrityError(f"{what} declared {declared} bytes, over the {limit}-byte limit")
    size = 0
    try:
        async for chunk in response.content.iter_chunked(CHUNK):
            size += len(chunk)
            if size > limit:
                raise IntegrityError(f"{what} is larger than the {limit}-byte limit")
            yield chunk
    except (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as e:
        raise cut_short(f"{what} cut short after {size} bytes: {describe(e)}") from e
    if declared is not None and size != declared:
        raise cut_short(f"{what}: got {size} of {declared} declared bytes")


def backoff(attempt: int) -> float:
    """Seconds before retry `attempt` + 1: exponential up to 2 s, with jitter."""
    return min(2.0, 0.1 * 2.0**attempt) * (0.5 + random.random() / 2)


def describe(e: BaseException) -> str:
    if isinstance(e, asyncio.TimeoutError):
        return "timed out"
    return f"connection failed: {str(e) or type(e).__name__}"
