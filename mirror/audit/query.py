"""Reading the log back: events in chain order, filters, and a readable table.

Pure functions over parsed events, except the two readers. Reading does not verify (that
is `verify_chain`'s job); damaged lines are skipped so a query still works after a crash.
"""

from __future__ import annotations

import collections
import heapq
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mirror.audit.event import parse_line
from mirror.audit.files import FEED_NAME, chain_directories, chain_files, read_tail
from mirror.printable import printable

_CLOCK_SLACK = timedelta(minutes=5)  # how far out of time order events may be written
_RELATIVE = re.compile(r"(\d+)\s*([smhdw])")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def read_events(directory: Path, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Every readable event of the chain, oldest first (damaged lines skipped).

    With `since`, whole files that end before it are skipped unread (their last event is
    found from the tail), so `query --since 2h` stays fast on a long history. Events may
    be written slightly out of time order by concurrent workers, hence `_CLOCK_SLACK`;
    the caller still filters each event.
    """
    for _, path in chain_files(directory):
        if since is not None and _ends_before(path, since - _CLOCK_SLACK):
            continue
        yield from _read_lines(path)


def read_all_events(root: Path, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """The events of every chain under `root` (one per replica), merged in time order; each
    event of a replica's chain carries its replica id as "replica" (not part of its hash)."""
    return _merged(
        (_tagged(read_events(directory, since), name), directory)
        for name, directory in chain_directories(root)
    )


def read_all_near_names(root: Path) -> Iterator[dict[str, Any]]:
    """The near-name feeds of every chain under `root`, merged in time order."""
    return _merged(
        (_tagged(read_near_names(directory), name), directory)
        for name, directory in chain_directories(root)
    )


def _merged(
    streams: Iterable[tuple[Iterator[dict[str, Any]], Path]],
) -> Iterator[dict[str, Any]]:
    # RFC 3339 UTC stamps of one format sort as text; each chain is (nearly) in time order.
    return heapq.merge(*(s for s, _ in streams), key=lambda e: str(e.get("time", "")))


def _tagged(events: Iterator[dict[str, Any]], name: str | None) -> Iterator[dict[str, Any]]:
    for event in events:
        if name is not None:
            event["replica"] = name
        yield event


def _ends_before(path: Path, moment: datetime) -> bool:
    with open(path, "rb") as handle:
        last = read_tail(handle).last
    end = event_time(last) if last is not None else None
    return end is not None and end < moment


def read_near_names(directory: Path) -> Iterator[dict[str, Any]]:
    """Every entry of the public near-name feed, oldest first."""
    path = directory / FEED_NAME
    if path.is_file():
        yield from _read_lines(path)


def _read_lines(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as handle:
        for raw in handle:
            parsed = parse_line(raw) if raw.endswith(b"\n") else None
            if parsed is not None:
                yield parsed


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """'2h', '30m', '7d', '90s', '2w' ago, or an ISO 8601 time (naive means UTC)."""
    match = _RELATIVE.fullmatch(text.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return (now or datetime.now(UTC)) - timedelta(**{_UNIT[unit]: amount})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"not a duration (2h, 30m, 7d) or an ISO time (2026-11-25T14:00Z): {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def event_time(event: dict[str, Any]) -> datetime | None:
    stamp = event.get("time")
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class EventFilter:
    """Which events to show; None means any."""

    action: str | None = None
    crate: str | None = None
    rule: str | None = None
    since: datetime | None = None

    def matches(self, event: dict[str, Any]) -> bool:
        if self.action is not None and event.get("action") != self.action:
            return False
        if self.rule is not None and event.get("rule") != self.rule:
            return False
        # crates.io treats - and _ (and case) as the same name, so the filter does too.
        if self.crate is not None and _crate_key(event.get("crate")) != _crate_key(self.crate):
            return False
        if self.since is not None:
            moment = event_time(event)
            if moment is None or moment < self.since:
                return False
        return True


def _crate_key(name: Any) -> str | None:
    return name.lower().replace("-", "_") if isinstance(name, str) else None


def select(
    events: Iterable[dict[str, Any]], wanted: EventFilter, limit: int | None = None
) -> list[dict[str, Any]]:
    """The matching events, oldest first; with `limit`, only the most recent `limit`."""
    if limit is None:
        return [e for e in events if wanted.matches(e)]
    recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=max(limit, 0))
    recent.extend(e for e in events if wanted.matches(e))
    return list(recent)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    # Requested names and reasons can carry client-chosen text: escaped, a crafted name
    # cannot move the cursor or rewrite earlier rows (terminal injection).
    return printable(value)


def _crate_at(event: dict[str, Any]) -> str:
    crate, version = event.get("crate"), event.get("version")
    if crate is None:
        return "-"
    return _cell(f"{crate}@{version}" if version is not None else crate)


def event_rows(events: Iterable[dict[str, Any]]) -> list[list[str]]:
    """The table; with events from several replicas, a REPLICA column after TIME."""
    events = list(events)
    replicas = any("replica" in e for e in events)
    header = ["TIME", "ACTION", "RULE", "CRATE", "CLIENT", "REASON"]
    rows = [["TIME", "REPLICA", *header[1:]] if replicas else header]
    for e in events:
        row = [_cell(e.get("time")), _cell(e.get("action")), _cell(e.get("rule")),
               _crate_at(e), _cell(e.get("client")), _cell(e.get("reason"))]  # fmt: skip
        if replicas:
            row.insert(1, _cell(e.get("replica")))
        rows.append(row)
    return rows


def near_name_rows(entries: Iterable[dict[str, Any]]) -> list[list[str]]:
    rows = [["TIME", "ACTION", "CRATE", "NEAR", "DISTANCE", "CHECK"]]
    for e in entries:
        rows.append(
            [_cell(e.get("time")), _cell(e.get("action")), _crate_at(e),
             _cell(e.get("protected")), _cell(e.get("distance")), _cell(e.get("check"))]
        )  # fmt: skip
    return rows


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)
