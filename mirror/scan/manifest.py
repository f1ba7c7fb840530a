"""What a crate's `Cargo.toml` says that the scan needs: identity, build script, proc-macro,
native links, and the crate's own URLs (which are not suspicious in its code)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection
from dataclasses import dataclass

from mirror.errors import ArchiveError, BadRequest
from mirror.index import validate_name, validate_version
from mirror.scan.literals import own_url
from mirror.scan.report import Capability, Evidence

MAX_MANIFEST_BYTES = 1024 * 1024  # bytes; real manifests are a few KiB


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    build_script: str | None  # path inside the crate, by cargo's rules; None if none
    proc_macro: bool
    own_urls: tuple[str, ...]  # repository, homepage, documentation (as `own_url` gives them)
    evidence: tuple[tuple[Capability, Evidence], ...]  # build_script, proc_macro, links


def read_manifest(raw: bytes, prefix: str, files: Collection[str]) -> Manifest:
    """Parse `Cargo.toml` (its bytes) of the archive `prefix`/ holding `files`."""
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
    if prefix != f"{name}-{version}":
        raise ArchiveError(f"archive prefix {prefix!r} is not {name}-{version}")
    lines = text.splitlines()
    evidence: list[tuple[Capability, Evidence]] = []
    build = package.get("build")
    build_script: str | None = None
    if isinstance(build, str):
        build_script = build.removeprefix("./")
        at = _line_of(lines, "build") or 1
        evidence.append(
            (Capability.BUILD_SCRIPT, Evidence("Cargo.toml", at, f"package.build = {build!r}"))
        )
    elif build is not False and "build.rs" in files:  # cargo's implicit build script
        build_script = "build.rs"
        evidence.append((Capability.BUILD_SCRIPT, Evidence("build.rs", 1, "build.rs")))
    lib = manifest.get("lib")
    proc_macro = isinstance(lib, dict) and (
        lib.get("proc-macro") is True or lib.get("proc_macro") is True
    )
    if proc_macro:
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
    own = tuple(
        own_url(url)
        for key in ("repository", "homepage", "documentation")
        if isinstance(url := package.get(key), str) and url.strip()
    )
    return Manifest(name, version, build_script, proc_macro, own, tuple(evidence))


def _line_of(lines: list[str], key: str) -> int | None:
    pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
    for number, line in enumerate(lines, start=1):
        if pattern.match(line):
            return number
    return None
