"""What the review console asks of the mirror, in one place below HTTP: the audit index's
queries (decisions, one event, the near-name feed), the review desk (pending reviews,
approve, deny, a lockfile's holds) and the status snapshot. The HTTP pages
(mirror.http.console) only parse, call these and render."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from mirror.audit import AuditEvent, parse_since
from mirror.audit.index import EventQuery, EventRow, Hold, IndexPlace, StoredEvent
from mirror.config import Settings
from mirror.errors import BadRequest
from mirror.serving.capability_guard import CapabilityGuard, LockPlaces
from mirror.serving.core import MirrorCore
from mirror.serving.review import Outcome, Review, ReviewDesk, Target, parse_targets
from mirror.serving.status import StatusReport, collect

__all__ = [
    "ConsoleBackend",
    "EventQuery",
    "EventRow",
    "Hold",
    "Outcome",
    "Review",
    "StatusReport",
    "StoredEvent",
    "Target",
    "parse_targets",
]

DEFAULT_LOCK = Path("policies/capabilities.lock.yaml")  # when the server runs without a policy
PENDING_SHOWN = 200  # pending reviews on one page (the next page has the older ones)
DENIED_SHOWN = 50


class ConsoleBackend:
    def __init__(self, core: MirrorCore) -> None:
        self.core = core
        self.settings: Settings = core.settings
        self.index = IndexPlace.of(core.settings).open()  # every replica's chain
        self.places = _places(core)
        self.desk = ReviewDesk(self.index, core.store, self.places, core.gate.audit)

    async def settle(self) -> None:
        """Before the desk reads the store and the locks (`MirrorCore.settle`)."""
        await self.core.settle()

    def decisions(self, query: EventQuery, before: int | None, limit: int) -> list[EventRow]:
        self.desk.current()
        return self.index.events(query, limit=limit, before=before)

    def event(self, seq: int) -> StoredEvent | None:
        self.desk.current()
        return self.index.event(seq)

    def near_names(self, before: int | None, limit: int) -> list[EventRow]:
        self.desk.current()
        return self.index.near_names(limit=limit, before=before)

    def pending_page(self, offset: int) -> tuple[list[Hold], list[Hold], dict[int, EventRow], int]:
        """A page of pending reviews (most recently held first) and recent denials, with the
        latest hold's row of each, and how many are pending in all."""
        holds = self.desk.pending(limit=PENDING_SHOWN, offset=offset)
        denied = self.index.denied(limit=DENIED_SHOWN) if offset == 0 else []
        rows = self.index.rows([h.last_seq for h in (*holds, *denied)])
        return holds, denied, rows, self.index.pending_count()

    def lockfile_page(self, text: str) -> tuple[list[Hold], dict[int, EventRow]]:
        holds = self.desk.holds_in_lockfile(text)
        return holds, self.index.rows(h.last_seq for h in holds)

    def near_page(self, before: int | None, limit: int) -> list[tuple[EventRow, Mapping[str, Any]]]:
        """Near-name events with their `near_name` details (protected, check, distance)."""
        out = []
        for row in self.near_names(before, limit):
            stored = self.index.event(row.seq)
            details = stored.fields.get("details") if stored is not None else None
            near = details.get("near_name") if isinstance(details, Mapping) else None
            out.append((row, near if isinstance(near, Mapping) else {}))
        return out

    def record_login(self, admin: str, client: str | None) -> None:
        self.core.gate.audit.record(
            AuditEvent("console.login", "console", f"{admin} logged in to the console",
                       route="console", client=client, details={"by": admin})
        )  # fmt: skip

    @staticmethod
    def parse_time(text: str) -> datetime:
        """`2h`, `30m`, `7d` ago or an ISO time (naive: UTC); BadRequest otherwise."""
        try:
            return parse_since(text)
        except ValueError as e:
            raise BadRequest(str(e)) from e

    def status(self) -> StatusReport:
        return collect(self.core, self.index, self.places)

    def close(self) -> None:
        self.index.close()


def _places(core: MirrorCore) -> LockPlaces:
    """The lock the server decides by (approvals must land there), as the guard has it."""
    guard = core.gate.capabilities
    if isinstance(guard, CapabilityGuard):
        return guard.places
    reloader = core.reloader
    if reloader is not None and reloader.files.policy is not None:
        return LockPlaces.of(reloader.files.lock_path(reloader.files.policy), core.settings)
    return LockPlaces.of(DEFAULT_LOCK, core.settings)
