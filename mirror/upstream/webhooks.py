"""The webhook client: the one way alerts leave the mirror (a sibling of the upstream client).

It POSTs one JSON body to one URL and says what happened; it never retries by itself (the
alert queue, mirror.serving.alert_queue, owns retries and backoff and records each outcome).
Bounded: its own connection cap, a total timeout per delivery, and the receiver's answer is
read only up to a few KiB (a hostile receiver cannot make the mirror buffer a large body).
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from mirror import USER_AGENT
from mirror.errors import UpstreamUnavailable

MAX_ANSWER_BYTES = 4096  # bytes of a receiver's answer read (and discarded)


class WebhookClient:
    def __init__(self, *, timeout: float = 5.0, concurrency: int = 4) -> None:
        self._timeout = timeout  # seconds for one whole delivery
        self._concurrency = concurrency  # deliveries in flight at once
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": USER_AGENT},
                connector=aiohttp.TCPConnector(limit=self._concurrency),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """Deliver `body`; returns the receiver's status. Raises UpstreamUnavailable when it
        cannot be reached or does not answer in time."""
        try:
            async with self.session.post(
                url,
                data=body,
                headers={"Content-Type": "application/json", **headers},
                allow_redirects=False,  # a receiver must not bounce alerts somewhere else
            ) as resp:
                await resp.content.read(MAX_ANSWER_BYTES)
                return resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            reason = "timed out" if isinstance(e, TimeoutError) else str(e) or type(e).__name__
            raise UpstreamUnavailable(f"webhook receiver unreachable: {reason}") from e

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
