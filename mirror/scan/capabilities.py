"""What a crate can do, read from its `.crate` alone: no compiling, no running its code.

`scan_crate` streams the archive (`archive.CrateFiles`), reads `Cargo.toml` for build scripts,
proc-macros and `links`, looks for shipped binaries by name and magic bytes, and reads every
`.rs` file, and every file one pulls in under another name (`include!("x.txt")`), with
tree-sitter (`rust.scan_rust`) for capabilities and (`content.read_content`) for suspicious
content (`findings`). Each capability and finding carries its evidence.
"""

from __future__ import annotations

import gzip
import importlib
import io
import json
import re
import tarfile
from collections.abc import Mapping

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
    "compiled_patterns",
    "ordered",
    "parse_capabilities",
    "report_json",
    "report_lines",
    "scan_crate",
    "warm_up",
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


def warm_up(databases: Mapping[str, bytes] | None = None) -> None:
    """Load what a first scan would: the Rust reader, tree-sitter's grammar and the pattern
    databases (about 0.3 s of CPU; `databases` from `compiled_patterns` in another process
    spares their compiling). A server calls it before it serves, so the first crate a build
    waits for is not the one that pays for it."""
    importlib.import_module("mirror.scan.crate_scan")  # the readers: they make the patterns
    from mirror.scan import multimatch

    if databases:
        multimatch.adopt(databases)
    multimatch.compile_all()
    scan_crate(_sample_crate())  # what is loaded at a first scan: tree-sitter's parser


def compiled_patterns() -> dict[str, bytes]:
    """The scanner's pattern databases this process compiled, for `warm_up` in another."""
    from mirror.scan import multimatch

    return multimatch.compiled()


# A crate that reaches every reader a real one does: a manifest with a build script, Rust
# code with a `use`, a process, a file, an FFI declaration and a string literal.
_SAMPLE = {
    "Cargo.toml": '[package]\nname = "sample"\nversion = "0.1.0"\nbuild = "build.rs"\n',
    "build.rs": 'fn main() { std::process::Command::new("rustc").status().ok(); }\n',
    "src/lib.rs": (
        "use std::fs;\n"
        'extern "C" { fn abs(x: i32) -> i32; }\n'
        'pub fn read() -> Vec<u8> { fs::read("sample.txt").unwrap_or_default() }\n'
    ),
}


def _sample_crate() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, text in _SAMPLE.items():
            data = text.encode()
            info = tarfile.TarInfo(f"sample-0.1.0/{path}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def check_archive(
    data: bytes,
    limits: ArchiveLimits = ArchiveLimits(),  # noqa: B008 - frozen, immutable default
) -> None:
    """Refuse a hostile or malformed `.crate` the way `scan_crate` would, without reading any
    file as code: every entry's name, type and size, the whole stream's length and ratio
    (about a tenth of a scan's time). Raises ArchiveError."""
    CrateFiles(data, limits).check()


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


def report_json(report: CapabilityReport) -> bytes:
    """The report as compact JSON: what the store keeps (`CapabilityReport.from_json` reads it)."""
    return json.dumps(report.to_json(), separators=(",", ":")).encode()


def dumps(report: CapabilityReport) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=False)
