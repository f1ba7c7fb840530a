"""Scan reports kept on disk by the crate's sha256, so each version is scanned once.

Layout: `<directory>/<sha256[0:2]>/<sha256>.json`, one `CapabilityReport.to_json()` each.
A report from an older scanner (`format` differs) or a damaged file reads as absent, so the
crate is simply scanned again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

from mirror.errors import StorageError
from mirror.files import write_atomic
from mirror.scan.archive import ArchiveLimits
from mirror.scan.capabilities import CapabilityReport, scan_crate

_SHA256_RE = re.compile(r"[0-9a-f]{64}\Z")


class ScanCache:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, sha256: str) -> Path:
        # Path injection: only a well-formed hex digest ever becomes a file name.
        if not _SHA256_RE.match(sha256):
            raise ValueError(f"malformed sha256 {sha256[:80]!r}")
        return self.directory / sha256[:2] / f"{sha256}.json"

    def get(self, sha256: str) -> CapabilityReport | None:
        try:
            raw = self.path(sha256).read_bytes()
            report = CapabilityReport.from_json(json.loads(raw))
        except (OSError, ValueError):
            return None
        return report if report.sha256 == sha256 else None

    def put(self, report: CapabilityReport) -> None:
        """Write atomically: a temp file, fsync, then `os.replace` (a crash leaves no half)."""
        final = self.path(report.sha256)
        body = json.dumps(report.to_json(), separators=(",", ":")).encode()
        try:
            write_atomic(final, body)
        except OSError as e:
            raise StorageError(f"cannot write a scan report: {e.strerror}") from e

    def scan(self, data: bytes, limits: ArchiveLimits = ArchiveLimits()) -> CapabilityReport:  # noqa: B008 - frozen, immutable default
        """The cached report for these bytes, scanning (and caching) them on a miss."""
        cached = self.get(hashlib.sha256(data).hexdigest())
        if cached is not None:
            return cached
        report = scan_crate(data, limits)
        self.put(report)
        return report

    def __iter__(self) -> Iterator[CapabilityReport]:
        """Every readable cached report (order unspecified)."""
        for path in self.directory.glob("??/*.json"):
            if _SHA256_RE.match(path.stem):
                report = self.get(path.stem)
                if report is not None:
                    yield report
