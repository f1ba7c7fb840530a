"""Signs the index files we serve into the mirror's TUF repository, in batches.

Signing is synchronous and touches disk, so it runs in a thread every few seconds with
everything served differently since the last round, never on the request path.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from mirror.index import index_path
from mirror.trust.repository import MirrorRepository

log = structlog.get_logger("mirror.publisher")
PUBLISH_SECONDS = 2.0  # how often served index files are signed into the TUF repository


class Publisher:
    def __init__(self, repository: MirrorRepository) -> None:
        self._repository = repository
        self._pending: dict[str, bytes] = {}

    @property
    def metadata_dir(self) -> Path:
        """The signed metadata, served to downstream mirrors and clients under /tuf/."""
        return self._repository.metadata_dir

    def note(self, name: str, body: bytes) -> None:
        """A new served view of `name` exists (the gate calls this)."""
        self._pending[index_path(name)] = body

    async def run(self) -> None:
        while True:
            await self.flush()
            await asyncio.sleep(PUBLISH_SECONDS)

    async def flush(self) -> None:
        changes, self._pending = self._pending, {}
        try:
            await asyncio.to_thread(self._repository.publish, changes)
        except Exception as e:  # keep serving; the next round retries what failed
            log.error("tuf.publish_failed", error=str(e), files=len(changes))
            self._pending = {**changes, **self._pending}
