"""What a crate can do, read from its `.crate` alone: no compiling, no running its code.

`scan_crate` streams the archive (`archive.CrateFiles`), reads `Cargo.toml` for build scripts,
proc-macros and `links`, looks for shipped binaries by name and magic bytes, and reads every
`.rs` file, and every file one pulls in under another name (`include!("x.txt")`), with
tree-sitter (`rust.scan_rust`) for capabilities and (`content.read_content`) for suspicious
content (`findings`). Each capability and finding carries its evidence.
"""

from __future__ import annotations

import json
import re

from mirror.scan.archive import ArchiveLimits, CrateFiles
from mirror.scan.findings import context_of
from mirror.scan.report import (
    MAX_EVIDENCE,
    REPORT_FORMAT,
    Capability,
    CapabilityReport,
    CapabilitySet,
    Context,
    Evidence,
    Finding,
    ordered,
)

__all__ = [
    "MAX_EVIDENCE",
    "REPORT_FORMAT",
    "Capability",
    "CapabilityReport",
    "CapabilitySet",
    "Context",
    "Evidence",
    "Finding",
    "ordered",
    "parse_capabilities",
    "report_lines",
    "scan_crate",
]


def parse_capabilities(text: str) -> CapabilitySet:
    """`"net,fs"` -> {NET, FS}; raises ValueError naming an unknown capability."""
    caps: set[Capability] = set()
    for word in re.split(r"[,\s]+", text.strip()):
        if not word:
            continue
        try:
            caps.add(Capability(word))
        except ValueError:
            known = ", ".join(c.value for c in Capability)
            raise ValueError(f"unknown capability {word!r} (known: {known})") from None
    return frozenset(caps)


def scan_crate(
    data: bytes,
    limits: ArchiveLimits = ArchiveLimits(),  # noqa: B008 - frozen, immutable default
) -> CapabilityReport:
    """Scan one `.crate`; raises ArchiveError if it is hostile or malformed."""
    # Imported here: the Rust reader loads tree-sitter and hyperscan (~5 MB per process),
    # which a mirror without capability rules never needs.
    from mirror.scan.crate_scan import CrateScan

    return CrateScan(data, limits).report()


def check_archive(
    data: bytes,
    limits: ArchiveLimits = ArchiveLimits(),  # noqa: B008 - frozen, immutable default
) -> None:
    """Refuse a hostile or malformed `.crate` the way `scan_crate` would, without reading any
    file as code: every entry's name, type and size, the whole stream's length and ratio
    (about a tenth of a scan's time). Raises ArchiveError."""
    for _ in CrateFiles(data, limits, _keep_nothing):
        pass


def _keep_nothing(path: str, size: int) -> bool:
    return False


def report_lines(report: CapabilityReport) -> list[str]:
    """A human rendering: each capability, then each finding (with the context its file runs
    in), each with its evidence indented."""
    out = [f"{report.name} {report.version} (sha256 {report.sha256[:16]}...)"]
    if not report.capabilities:
        out.append("  no capabilities found")
    for cap, evidence in report.capabilities.items():
        out.append(f"  {cap.value}")
        out.extend(f"      {e}" for e in evidence)
    if report.findings:
        out.append("  findings:")
    for finding, evidence in report.findings.items():
        out.append(f"    {finding.value}")
        out.extend(f"      [{context_of(report, e.file).value}] {e}" for e in evidence)
    return out


def dumps(report: CapabilityReport) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=False)
