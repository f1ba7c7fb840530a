"""RustSec advisories as data: parse one advisory file's bytes, look advisories up by crate.

Advisory files (https://github.com/rustsec/advisory-db) are Markdown whose front matter is a
TOML block in a ```toml fence:

    [advisory]
    id = "RUSTSEC-2023-0044"
    package = "openssl"
    informational = "unmaintained"   # optional: unmaintained | unsound | notice
    withdrawn = "2023-07-01"         # optional: filed in error, ignored here
    [versions]
    patched = [">= 0.10.55"]
    unaffected = ["< 0.10.0"]

A version is affected when it lies in none of the `patched` and `unaffected` ranges (the
rule of the `rustsec` crate). Ranges are read by version ordering (`VersionReq.covers`), so
a pre-release cannot fall between the cracks. `[affected]` (functions, os, arch) is not
used: the mirror cannot know which functions a build calls, so it treats every version in
range as affected. The older all-TOML format (`RUSTSEC-*.toml` with `patched_versions`)
is read too.

Pure: bytes in, data out. Reading the database directory is `mirror.sources.advisories`;
the decisions are `mirror.policy.versions`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror.index import canonical_name
from mirror.policy.semver import Version, VersionReq

MAX_ADVISORY_BYTES = 1_000_000  # bytes; real advisories are a few KiB
_ID_RE = re.compile(r"RUSTSEC-\d{4}-\d{4}\Z")
_FENCE_RE = re.compile(r"\A\s*```toml[ \t]*\r?\n(.*?)\r?\n```", re.DOTALL)


@dataclass(frozen=True)
class Advisory:
    id: str
    package: str
    title: str = ""
    patched: tuple[VersionReq, ...] = ()
    unaffected: tuple[VersionReq, ...] = ()
    informational: str | None = None  # None for a vulnerability
    url: str | None = None
    aliases: tuple[str, ...] = ()

    def affects(self, version: Version) -> bool:
        """Affected unless some `patched` or `unaffected` range covers the version."""
        return not any(req.covers(version) for req in (*self.patched, *self.unaffected))


@dataclass(frozen=True)
class AdvisoryDb:
    root: Path
    by_crate: Mapping[str, tuple[Advisory, ...]] = field(default_factory=dict)
    withdrawn: int = 0  # how many withdrawn advisories were skipped

    def for_crate(self, name: str) -> list[Advisory]:
        return list(self.by_crate.get(canonical_name(name), ()))

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_crate.values())


class AdvisoryError(ValueError):
    """A malformed advisory file (the loader turns it into a located Problem)."""

    def __init__(self, message: str, field: str = "", line: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.line = line


def parse_advisory(data: bytes, *, toml_only: bool = False) -> Advisory | None:
    """Parse one advisory file; None if it is withdrawn."""
    if len(data) > MAX_ADVISORY_BYTES:
        raise AdvisoryError(f"larger than {MAX_ADVISORY_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise AdvisoryError(f"not UTF-8: {e.reason}") from e
    if not toml_only:
        match = _FENCE_RE.match(text)
        if match is None:
            raise AdvisoryError("no ```toml front matter at the start of the file", line=1)
        text = match.group(1)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # tomllib (3.11) puts the position only in the message. The fence line shifts TOML
        # line numbers by one in Markdown files.
        at = re.search(r"at line (\d+)", str(e))
        line = int(at.group(1)) + (0 if toml_only else 1) if at else None
        raise AdvisoryError(f"invalid TOML: {e}", line=line) from e
    meta = _table(doc, "advisory")
    if meta.get("withdrawn"):
        return None
    ident = _text(meta, "id", "advisory.id")
    if not _ID_RE.match(ident):
        raise AdvisoryError(f"{ident!r} is not a RUSTSEC id", "advisory.id")
    versions = _table(doc, "versions") if "versions" in doc else {}
    informational = meta.get("informational")
    if informational is not None and not isinstance(informational, str):
        raise AdvisoryError("must be a string", "advisory.informational")
    url = meta.get("url")
    return Advisory(
        id=ident,
        package=_text(meta, "package", "advisory.package"),
        title=str(meta.get("title", "")),
        patched=_reqs(versions, meta, "patched"),
        unaffected=_reqs(versions, meta, "unaffected"),
        informational=informational,
        url=url if isinstance(url, str) else None,
        aliases=tuple(a for a in meta.get("aliases", []) if isinstance(a, str)),
    )


def _table(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = doc.get(name)
    if not isinstance(value, dict):
        raise AdvisoryError(f"missing [{name}] table", name)
    return value


def _text(table: Mapping[str, Any], key: str, fld: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise AdvisoryError("missing or not a string", fld)
    return value


def _reqs(versions: Mapping[str, Any], meta: Mapping[str, Any], key: str) -> tuple[VersionReq, ...]:
    # Current format: [versions] patched/unaffected; old format: [advisory] *_versions.
    fld = f"versions.{key}"
    raw = versions.get(key)
    if raw is None:
        raw, fld = meta.get(f"{key}_versions", []), f"advisory.{key}_versions"
    if not isinstance(raw, list):
        raise AdvisoryError("must be a list of version requirements", fld)
    out = []
    for i, text in enumerate(raw):
        if not isinstance(text, str):
            raise AdvisoryError("must be a string", f"{fld}[{i}]")
        try:
            out.append(VersionReq.parse(text))
        except ValueError as e:
            raise AdvisoryError(str(e), f"{fld}[{i}]") from e
    return tuple(out)
