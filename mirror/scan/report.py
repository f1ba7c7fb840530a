"""The scan's result types: what a crate can do (`Capability`), where it was seen (`Evidence`),
and the whole `CapabilityReport`, with its JSON form (stored by sha256, see mirror.store).

Plain data with no scanning code, so policy and sources can use them without importing the
scanner (and the scanner's modules can share them without importing each other in a circle).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

REPORT_FORMAT = 3  # bump when scanning changes, so stored reports are redone


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


@dataclass(frozen=True)
class Evidence:
    file: str
    line: int  # 1-based; 1 for whole-file evidence (a binary)
    item: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.item}"


@dataclass(frozen=True)
class CapabilityReport:
    name: str
    version: str
    sha256: str
    capabilities: Mapping[Capability, tuple[Evidence, ...]]

    @property
    def capability_set(self) -> CapabilitySet:
        return frozenset(self.capabilities)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "capabilities": {
                cap.value: [{"file": e.file, "line": e.line, "item": e.item} for e in evidence]
                for cap, evidence in self.capabilities.items()
            },
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> CapabilityReport:
        """Inverse of `to_json`; raises ValueError on anything malformed or from another format."""
        try:
            if obj["format"] != REPORT_FORMAT:
                raise ValueError(f"report format {obj['format']!r} is not {REPORT_FORMAT}")
            caps = {
                Capability(name): tuple(
                    Evidence(str(e["file"]), int(e["line"]), str(e["item"])) for e in evidence
                )
                for name, evidence in obj["capabilities"].items()
            }
            return cls(str(obj["name"]), str(obj["version"]), str(obj["sha256"]), ordered(caps))
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"malformed capability report: {e!r}") from e


def ordered(caps: Mapping[Capability, tuple[Evidence, ...]]) -> Mapping[Capability, Any]:
    return MappingProxyType({c: caps[c] for c in Capability if c in caps})
