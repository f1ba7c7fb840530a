"""What a crate can do, read from its `.crate` alone: no compiling, no running its code.

`scan_crate` streams the archive (`archive.CrateFiles`), reads `Cargo.toml` for build scripts,
proc-macros and `links`, looks for shipped binaries by name and magic bytes, and reads every
`.rs` file with tree-sitter (`rust.scan_rust`) for capabilities and (`content.read_content`)
for suspicious content (`findings`). Each capability and finding carries its evidence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from mirror.scan.archive import ArchiveLimits
from mirror.scan.findings import Context, Finding, context_of

MAX_EVIDENCE = 20  # evidence entries kept per capability or finding per crate (scan order)
REPORT_FORMAT = 4  # bump when scanning changes, so cached reports are redone


class Capability(StrEnum):
    BUILD_SCRIPT = "build_script"  # runs arbitrary code on the building machine
    PROC_MACRO = "proc_macro"  # runs arbitrary code inside the compiler
    LINKS = "links"  # links a native library (`links =`, `#[link]`)
    FFI = "ffi"  # declares or exports foreign functions (`extern "C"`)
    UNSAFE = "unsafe"
    NET = "net"
    FS = "fs"
    PROCESS = "process"  # spawns or replaces processes
    ENV = "env"  # reads or changes environment variables
    INCLUDE_OUTSIDE = "include_outside"  # include_bytes!/include_str! of a file not in the crate
    BINARY = "binary"  # ships pre-built code (.so, .dll, .a, .exe, ELF/PE/Mach-O/wasm)


CapabilitySet = frozenset[Capability]
_ALL = tuple(Capability)  # iterating the enum itself is slow, and is done once per file


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


@dataclass(frozen=True)
class Evidence:
    file: str
    line: int  # 1-based; 1 for whole-file evidence (a binary)
    item: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.item}"


def _empty() -> Mapping[Any, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class CapabilityReport:
    name: str
    version: str
    sha256: str
    capabilities: Mapping[Capability, tuple[Evidence, ...]]
    findings: Mapping[Finding, tuple[Evidence, ...]] = field(default_factory=_empty)
    build_script: str | None = None  # by cargo's rules: `package.build` or an implicit build.rs
    proc_macro: bool = False
    # Files outside their directory's usual context that a built file pulls in (`mod`,
    # `#[path]`, `include!`): path -> the context they run in. See `findings.context_of`.
    pulled_in: Mapping[str, Context] = field(default_factory=_empty)

    @property
    def capability_set(self) -> CapabilitySet:
        return frozenset(self.capabilities)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "capabilities": _evidence_json(self.capabilities),
            "findings": _evidence_json(self.findings),
            "build_script": self.build_script,
            "proc_macro": self.proc_macro,
            "pulled_in": {path: context.value for path, context in self.pulled_in.items()},
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> CapabilityReport:
        """Inverse of `to_json`; raises ValueError on anything malformed or from another format."""
        try:
            if obj["format"] != REPORT_FORMAT:
                raise ValueError(f"report format {obj['format']!r} is not {REPORT_FORMAT}")
            build_script = obj["build_script"]
            if build_script is not None and not isinstance(build_script, str):
                raise ValueError(f"build_script {build_script!r} is not a path")
            if not isinstance(obj["proc_macro"], bool):
                raise ValueError(f"proc_macro {obj['proc_macro']!r} is not a boolean")
            return cls(
                str(obj["name"]),
                str(obj["version"]),
                str(obj["sha256"]),
                ordered(_evidence_from_json(obj["capabilities"], Capability), Capability),
                ordered(_evidence_from_json(obj["findings"], Finding), Finding),
                build_script,
                obj["proc_macro"],
                MappingProxyType(
                    {str(path): Context(context) for path, context in obj["pulled_in"].items()}
                ),
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"malformed capability report: {e!r}") from e


def _evidence_json(kinds: Mapping[Any, tuple[Evidence, ...]]) -> dict[str, Any]:
    return {
        kind.value: [{"file": e.file, "line": e.line, "item": e.item} for e in evidence]
        for kind, evidence in kinds.items()
    }


def _evidence_from_json(obj: Mapping[str, Any], kind: Any) -> dict[Any, tuple[Evidence, ...]]:
    return {
        kind(name): tuple(Evidence(str(e["file"]), int(e["line"]), str(e["item"])) for e in items)
        for name, items in obj.items()
    }


def ordered(found: Mapping[Any, tuple[Evidence, ...]], kinds: Any) -> Mapping[Any, Any]:
    """`found` keyed in the enum's order (capabilities or findings), read-only."""
    return MappingProxyType({k: found[k] for k in kinds if k in found})


def scan_crate(
    data: bytes,
    limits: ArchiveLimits = ArchiveLimits(),  # noqa: B008 - frozen, immutable default
) -> CapabilityReport:
    """Scan one `.crate`; raises ArchiveError if it is hostile or malformed."""
    # Imported here: the reader's modules need `Capability` from this module.
    from mirror.scan.crate_scan import CrateScan

    return CrateScan(data, limits).report()


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
