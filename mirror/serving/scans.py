"""Capability scan reports, once per crate content: memory, then the store, else a scan.

A crate is immutable (named by its sha256), so its scan never changes: the report is kept in
the store as JSON by sha256 (`Store.read_scan`/`write_scan`) and in memory for the hot ones.
Concurrent requests for the same new crate share one scan (in a worker thread: scanning is
CPU work and must not stall the event loop). Anything that wants content evidence about a
crate (the capability guard today) asks here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator

from mirror.scan.capabilities import scan_crate
from mirror.scan.report import CapabilityReport
from mirror.serving.singleflight import SingleFlight
from mirror.store import Store

MAX_REPORTS_IN_MEMORY = 20_000  # reports kept in memory; the rest are read from the store


class Scans:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._reports: dict[str, CapabilityReport] = {}
        self._in_flight: SingleFlight[CapabilityReport] = SingleFlight()
        # Counts reports made by this process: views that hide what is not scanned yet are
        # recomputed when it moves (the capability guard adds it to its generation).
        self.generation = 0

    def known(self, sha256: str) -> CapabilityReport | None:
        """The report of an already scanned crate, without scanning."""
        report = self._reports.get(sha256)
        if report is None:
            report = decode(self._store.read_scan(sha256), sha256)
            if report is not None:
                self._remember(report)
        return report

    async def report(self, sha256: str, read: Callable[[], bytes]) -> CapabilityReport:
        """The report of the crate with this sha256; `read` gives its bytes if it needs a scan.
        Raises ArchiveError for a hostile or malformed crate (never stored: asked again)."""
        known = self.known(sha256)
        if known is not None:
            return known
        return await self._in_flight.run(sha256, lambda: self._shared_or_scan(sha256, read))

    async def _shared_or_scan(self, sha256: str, read: Callable[[], bytes]) -> CapabilityReport:
        """A replica that shares a store asks it first: a peer may have scanned this crate."""
        report = decode(await self._store.load_scan(sha256), sha256)
        if report is not None:
            self._remember(report)
            return report
        return await asyncio.to_thread(lambda: self.scan_bytes(read()))

    def scan_bytes(self, data: bytes) -> CapabilityReport:
        """Scan a crate's bytes and store the report (StorageError if the store refuses)."""
        report = scan_crate(data)
        body = json.dumps(report.to_json(), separators=(",", ":")).encode()
        self._store.write_scan(report.sha256, body)
        self._remember(report)
        self.generation += 1
        return report

    def stored(self) -> Iterator[CapabilityReport]:
        """Every readable stored report (order unspecified)."""
        for sha256 in self._store.iter_scans():
            report = self.known(sha256)
            if report is not None:
                yield report

    def _remember(self, report: CapabilityReport) -> None:
        if len(self._reports) >= MAX_REPORTS_IN_MEMORY:
            self._reports.clear()  # the store still has them all
        self._reports[report.sha256] = report


def decode(body: bytes | None, sha256: str) -> CapabilityReport | None:
    """A stored report, or None when absent, damaged, from an older scanner (another
    format), or about another crate than its name says: then the crate is scanned again."""
    if body is None:
        return None
    try:
        report = CapabilityReport.from_json(json.loads(body))
    except ValueError:
        return None
    return report if report.sha256 == sha256 else None
