"""The scan's result types: what a crate can do (`Capability`), where it was seen (`Evidence`),
and the whole `CapabilityReport`, with its JSON form (stored by sha256, see mirror.store).

Plain data with no scanning code, so policy and sources can use them without importing the
scanner (and the scanner's modules can share them without importing each other in a circle).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from mirror.printable import printable

REPORT_FORMAT = 5  # bump when scanning changes, so stored reports are redone
MAX_EVIDENCE = 20  # evidence entries kept per capability or finding per crate (scan order)


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


class Finding(StrEnum):
    """Suspicious content (not a permission): what malicious crates on crates.io used
    (RustSec advisories of kind "malicious", 2022-2026).

    What triggers each kind (string literals in code only: comments, doc comments and
    `#[cfg(test)]`/`#[test]` items never count; inside an attribute a value counts only as a
    URL, and not if it names a documentation host):

    - url: an http(s)/ws(s)/ftp URL (the item names its host), or a raw IPv4/IPv6 address that
      is not loopback, "any" or broadcast (nor a dotted OID on a line naming one). Not: the
      crate's own repository/homepage/documentation URLs outside its build script;
      documentation hosts (docs.rs, crates.io, github.com, *.github.io, githubusercontent.com,
      rust-lang.org) in prose or in a `concat!` of prose.
    - encoded_blob: 120+ characters of a hex or base64 alphabet in one run (base64 holding
      `+`, `/`, `=` or `-`, and decoding), 64+ `\\xNN` escapes in one literal, or an array of
      12+ printable character codes that reads as text (not a lookup table); the item says
      what it decodes to (text, or a binary by its magic).
    - assembled_string: `concat!`/`format!`/`+`/`push_str` of literals that together form a
      URL, command, secret's path or variable none of them forms alone; `from_utf8` (and
      `_lossy`, `_unchecked`) of literal bytes that are text; literal bytes (also a constant
      the decoding code names) that one xor or subtraction key turns into a URL, command or
      path, where code turns bytes into text (`as char`, `^ KEY`, `^=`, `from_utf8`).
    - sensitive_path: paths to credentials, keys, wallets, browser profiles, shell history
      and `/etc/passwd|shadow`; `home_dir()` calls; `HOME`/`USERPROFILE` read from the env.
    - sensitive_env: a secret-looking variable name read by `env::var`/`var_os`/`env!`/
      `option_env!` (or named as a constant): TOKEN, SECRET, PASSWORD, KEY, CREDENTIAL,
      AUTH, MNEMONIC, ... as a `_` word, AWS_/AZURE_/CARGO_REGISTRIES_ prefixes; `vars()`.
    - write_outside_out_dir (build scripts only): `fs` writers, `File::create`, `OpenOptions`
      opening for writing, whose path does not mention OUT_DIR or a name derived from it
      (see `build_writes`).
    - embedded_binary: `include_bytes!` of a file of the crate that is an executable or an
      archive by its magic, or 16 KiB+ of data that is neither text nor a known media format.
    - shell_command: a literal naming a downloader (curl, wget, certutil, ...), a script host
      (powershell, mshta, osascript, nc, crontab, ...), a shell run with `-c`/`/C` (in the
      literal or the statement's next literals), a pipe into a shell, PowerShell download
      cradles. (Added: the advisories' droppers ran payloads this way; `process` alone cannot
      tell `cc` running a compiler from a build script running `curl | sh`.)
    - secret_pattern: a regex for private keys or tokens (base58 alphabets, 64 hex digits,
      `AKIA`, `ghp_`, ...). (Added: faster_log and async_println found keys in source files
      with them; no path or variable was involved.)
    """

    URL = "url"
    ENCODED_BLOB = "encoded_blob"
    ASSEMBLED_STRING = "assembled_string"
    SENSITIVE_PATH = "sensitive_path"
    SENSITIVE_ENV = "sensitive_env"
    WRITE_OUTSIDE_OUT_DIR = "write_outside_out_dir"
    EMBEDDED_BINARY = "embedded_binary"
    SHELL_COMMAND = "shell_command"
    SECRET_PATTERN = "secret_pattern"


class Context(StrEnum):
    """Where a file's code runs (mirror.scan.findings.context_of decides)."""

    BUILD = "build"  # the build script and what it pulls in: runs on every building machine
    MACRO = "macro"  # a proc-macro crate's code: runs inside the compiler
    RUNTIME = "runtime"  # library code: runs in the programs that use the crate
    OTHER = "other"  # tests/, examples/, benches/: never built for a dependent


CapabilitySet = frozenset[Capability]


@dataclass(frozen=True)
class Evidence:
    file: str
    line: int  # 1-based; 1 for whole-file evidence (a binary)
    item: str

    def __str__(self) -> str:
        return f"{printable(self.file)}:{self.line} {printable(self.item)}"


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


def ordered(
    found: Mapping[Any, tuple[Evidence, ...]], kinds: Any = Capability
) -> Mapping[Any, Any]:
    """`found` keyed in the enum's order (capabilities or findings), read-only."""
    return MappingProxyType({k: found[k] for k in kinds if k in found})
