"""What a crate can do, read from its `.crate` alone: no compiling, no running its code.

`scan_crate` unpacks the archive in memory (`archive.read_crate`), reads `Cargo.toml` for build
scripts, proc-macros and `links`, looks for shipped binaries by name and magic bytes, and reads
every `.rs` file with tree-sitter (`rust.scan_rust`). Each capability carries its evidence.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib

from mirror.errors import ArchiveError, BadRequest
from mirror.index import validate_name, validate_version
from mirror.scan.archive import ArchiveLimits, CrateArchive, read_crate
from mirror.scan.report import (
    REPORT_FORMAT,
    Capability,
    CapabilityReport,
    CapabilitySet,
    Evidence,
    ordered,
)

__all__ = [  # the report types are re-exported: callers of this module keep working
    "REPORT_FORMAT",
    "Capability",
    "CapabilityReport",
    "CapabilitySet",
    "Evidence",
    "parse_capabilities",
    "report_lines",
    "scan_crate",
]

MAX_EVIDENCE = 20  # evidence entries kept per capability per crate (first in scan order)
MAX_MANIFEST_BYTES = 1024 * 1024  # bytes; real manifests are a few KiB


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


def scan_crate(
    data: bytes,
    limits: ArchiveLimits = ArchiveLimits(),  # noqa: B008 - frozen, immutable default
) -> CapabilityReport:
    """Scan one `.crate`; raises ArchiveError if it is hostile or malformed."""
    # Imported here: the Rust reader loads tree-sitter and hyperscan (~5 MB per process),
    # which a mirror without capability rules never needs.
    from mirror.scan.rust import scan_rust

    archive = read_crate(data, limits)
    name, version, manifest_evidence = _read_manifest(archive)
    found: dict[Capability, list[Evidence]] = {}

    def add(cap: Capability, evidence: Evidence) -> None:
        kept = found.setdefault(cap, [])
        if len(kept) < MAX_EVIDENCE:
            kept.append(evidence)

    for cap, evidence in manifest_evidence:
        add(cap, evidence)
    for path in sorted(archive.files, key=_scan_order):
        content = archive.files[path]
        kind = _binary_kind(path, content)
        if kind is not None:
            add(Capability.BINARY, Evidence(path, 1, kind))
        elif path.endswith(".rs"):
            # Once a capability has all the evidence we keep, its tokens stop costing parses.
            budget = {c: MAX_EVIDENCE - len(found.get(c, ())) for c in _ALL}
            wanted = frozenset(c for c, left in budget.items() if left > 0)
            for f in scan_rust(content, path, wanted, budget):
                add(f.capability, Evidence(path, f.line, f.item))
    sha = hashlib.sha256(data).hexdigest()
    caps = {cap: tuple(evidence) for cap, evidence in found.items()}
    build = next(
        (_build_path(e) for c, e in manifest_evidence if c is Capability.BUILD_SCRIPT), None
    )
    proc_macro = any(c is Capability.PROC_MACRO for c, _ in manifest_evidence)
    return CapabilityReport(
        name, version, sha, ordered(caps), build_script=build, proc_macro=proc_macro
    )


def _build_path(evidence: Evidence) -> str:
    """The build script's path from its manifest evidence (`package.build = 'x.rs'`)."""
    if evidence.file != "Cargo.toml":
        return evidence.file
    return evidence.item.split("=", 1)[1].strip().strip("'\"")


def _scan_order(path: str) -> tuple[int, str]:
    """Build script first, then library code, then the rest (tests, examples)."""
    if path == "build.rs":
        return 0, path
    if path.startswith("src/"):
        return 1, path
    return 2, path


def _read_manifest(archive: CrateArchive) -> tuple[str, str, list[tuple[Capability, Evidence]]]:
    raw = archive.files.get("Cargo.toml")
    if raw is None:
        raise ArchiveError(f"{archive.prefix}/Cargo.toml is missing")
    # tomllib is pure Python: a giant manifest would be a slow-scan denial of service.
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ArchiveError(f"Cargo.toml is larger than {MAX_MANIFEST_BYTES} bytes")
    text = raw.decode("utf-8", errors="replace")
    try:
        manifest = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as e:
        raise ArchiveError(f"Cargo.toml is not valid TOML: {e}") from e
    package = manifest.get("package")
    if not isinstance(package, dict):
        raise ArchiveError("Cargo.toml has no [package] table")
    name, version = package.get("name"), package.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        raise ArchiveError("Cargo.toml lacks a literal package name or version")
    try:
        validate_name(name)
        validate_version(version)
    except BadRequest as e:
        raise ArchiveError(f"Cargo.toml: {e}") from e
    # cargo refuses archives whose prefix is not NAME-VERSION; so do we, or a crate could
    # be scanned under one identity and unpacked under another.
    if archive.prefix != f"{name}-{version}":
        raise ArchiveError(f"archive prefix {archive.prefix!r} is not {name}-{version}")
    lines = text.splitlines()
    evidence: list[tuple[Capability, Evidence]] = []
    build = package.get("build")
    if isinstance(build, str):
        at = _line_of(lines, "build") or 1
        evidence.append(
            (Capability.BUILD_SCRIPT, Evidence("Cargo.toml", at, f"package.build = {build!r}"))
        )
    elif build is not False and "build.rs" in archive.files:  # cargo's implicit build script
        evidence.append((Capability.BUILD_SCRIPT, Evidence("build.rs", 1, "build.rs")))
    lib = manifest.get("lib")
    if isinstance(lib, dict) and (lib.get("proc-macro") is True or lib.get("proc_macro") is True):
        at = _line_of(lines, "proc-macro") or _line_of(lines, "proc_macro") or 1
        evidence.append(
            (Capability.PROC_MACRO, Evidence("Cargo.toml", at, "lib.proc-macro = true"))
        )
    links = package.get("links")
    if isinstance(links, str):
        at = _line_of(lines, "links") or 1
        evidence.append(
            (Capability.LINKS, Evidence("Cargo.toml", at, f"package.links = {links!r}"))
        )
    return name, version, evidence


def _line_of(lines: list[str], key: str) -> int | None:
    pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
    for number, line in enumerate(lines, start=1):
        if pattern.match(line):
            return number
    return None


_BINARY_SUFFIXES = (".so", ".dll", ".dylib", ".a", ".lib", ".exe", ".o", ".obj", ".node", ".wasm")
_MACHO_MAGIC = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")


def _binary_kind(path: str, content: bytes) -> str | None:
    """What pre-built code a file is, by magic bytes first and then by name; None if none."""
    head = content[:64]
    if head.startswith(b"\x7fELF"):
        return "ELF binary"
    if head.startswith(b"MZ") and _is_pe(content):
        return "PE (Windows) binary"
    if head[:4] in _MACHO_MAGIC:
        return "Mach-O binary"
    if head.startswith(b"\xca\xfe\xba\xbe") and len(content) > 8 and content[7] < 20:
        return "Mach-O universal binary"  # (a Java class shares the magic; its byte 7 is >= 45)
    if head.startswith(b"!<arch>\n"):
        return "static library (ar archive)"
    if head.startswith(b"\0asm"):
        return "WebAssembly module"
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith(_BINARY_SUFFIXES) or ".so." in name:
        return f"binary by name ({name.rsplit('.', 1)[-1]})"
    return None


def _is_pe(content: bytes) -> bool:
    if len(content) < 0x40:
        return False
    offset = int.from_bytes(content[0x3C:0x40], "little")
    return content[offset : offset + 4] == b"PE\0\0"


def report_lines(report: CapabilityReport) -> list[str]:
    """A human rendering: one line per capability, then its evidence indented."""
    out = [f"{report.name} {report.version} (sha256 {report.sha256[:16]}...)"]
    if not report.capabilities:
        out.append("  no capabilities found")
    for cap, evidence in report.capabilities.items():
        out.append(f"  {cap.value}")
        out.extend(f"      {e}" for e in evidence)
    return out


def dumps(report: CapabilityReport) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=False)
