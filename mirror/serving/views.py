"""What is derived from one index file's content, computed once per content version.

An `IndexEntry` (mirror.serving.index_cache) carries `DerivedViews`; they are cleared when the
content changes or is revalidated (time-dependent rules such as release age are re-judged),
never per request. Each view remembers the decision generation it was computed under.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mirror.policy.decision import Decision

# (policy generation, capability generation): a view is current while both are unchanged.
Generation = tuple[int, int]


@dataclass(frozen=True)
class ServedIndex:
    """An index file exactly as we serve it, computed once per content and policy version."""

    body: bytes
    etag: str
    hidden: Mapping[str, Decision]  # version -> the decision that hid it
    summary: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class DerivedViews:
    # The full view (downloads, connected mirrors) and the offline one (only crates we hold)
    # are kept side by side: the index route asks for one and the download route the other.
    full: tuple[Generation, ServedIndex] | None = None
    offline: tuple[Generation, ServedIndex] | None = None
    # Scanning the newest versions of a locked crate before anyone sees them (once per
    # content); requests arriving meanwhile wait for it.
    scan_ahead: asyncio.Future[None] | None = None

    def clear(self) -> None:
        self.full = self.offline = self.scan_ahead = None
