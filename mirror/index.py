"""Crate names, sparse-index paths and index files, with the bytes of every line kept intact.

An index file is newline-separated JSON, one line per published version. The mirror never
re-serializes a line: a peer proxy once dropped `rust_version` that way and broke resolution.
Filters drop whole lines and join the remaining raw bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

from mirror.errors import BadRequest

MAX_NAME_LENGTH = 64  # characters; crates.io's limit
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}\Z")
_DIGEST_RE = re.compile(r"[0-9a-f]{64}\Z")
# Names Windows cannot store as files; crates.io refuses them too.
_RESERVED = frozenset(
    {"nul", "con", "prn", "aux", "com1", "com2", "com3", "com4", "lpt1", "lpt2", "lpt3"}
)


def validate_name(name: str) -> str:
    """Return `name` if it is a legal crate name, else raise BadRequest saying why."""
    if not name:
        raise BadRequest("empty crate name")
    if len(name) > MAX_NAME_LENGTH:
        raise BadRequest(f"crate name longer than {MAX_NAME_LENGTH} characters")
    if not name.isascii():
        raise BadRequest("crate names are ASCII only")
    if not _NAME_RE.match(name):
        raise BadRequest(
            "crate names start with a letter and contain only letters, digits, '-' and '_'"
        )
    if name.lower() in _RESERVED:
        raise BadRequest(f"{name!r} is a reserved name")
    return name


def canonical_name(name: str) -> str:
    """crates.io treats names case-insensitively and `-` and `_` as the same character."""
    return name.lower().replace("-", "_")


def index_path(name: str) -> str:
    """The sparse-index path of a crate, as cargo requests it (lowercase)."""
    lower = name.lower()
    if len(lower) == 1:
        return f"1/{lower}"
    if len(lower) == 2:
        return f"2/{lower}"
    if len(lower) == 3:
        return f"3/{lower[0]}/{lower}"
    return f"{lower[0:2]}/{lower[2:4]}/{lower}"


def parse_index_path(path: str) -> str:
    """Validate a request path below /index/ and return the crate name it names.

    Path traversal defence: the path must be exactly the shape `index_path` produces for a
    legal name, so `..`, `/`, `%2e`, absolute paths and odd prefixes can never reach a file.
    """
    parts = path.split("/")
    name = parts[-1]
    validate_name(name)
    if name != name.lower():
        raise BadRequest("index paths are lowercase")
    if path != index_path(name):
        raise BadRequest(f"index path for {name!r} is /index/{index_path(name)}")
    return name


def parse_target_path(path: str) -> tuple[str, str | None]:
    """Validate a request path below /index/ as a TUF target: (crate name, sha256 or None).

    Besides the plain index path, TUF clients with consistent snapshots (python-tuf's default)
    ask for `<dirs>/<sha256>.<name>` (TUF spec 5.7.3), e.g. `cf/g-/<64 hex>.cfg-if`. Crate
    names never contain a dot, so the two shapes cannot be confused. Path traversal defence:
    the digest must be exactly 64 lowercase hex digits and the rest must pass
    `parse_index_path`, so nothing but the canonical shape can reach a file.
    """
    head, sep, last = path.rpartition("/")
    digest, dot, name = last.partition(".")
    if dot and _DIGEST_RE.match(digest):
        return parse_index_path(f"{head}{sep}{name}"), digest
    return parse_index_path(path), None


@dataclass(frozen=True)
class IndexLine:
    """One version's entry: the raw bytes plus the few fields decisions need."""

    raw: bytes
    name: str
    vers: str
    cksum: str
    yanked: bool
    pubtime: str | None
    links: str | None
    # Crates this version depends on when built by others (normal and build dependencies,
    # by their real name: `package` when renamed). Dev-dependencies are left out: dependents
    # never build them. Evidence for decisions ("adds a dependency on a look-alike").
    deps: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: bytes) -> IndexLine:
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"index line is not JSON: {e}") from e
        if not isinstance(obj, dict):
            raise ValueError("index line is not a JSON object")
        name, vers, cksum = obj.get("name"), obj.get("vers"), obj.get("cksum")
        if not (isinstance(name, str) and isinstance(vers, str) and isinstance(cksum, str)):
            raise ValueError("index line lacks name, vers or cksum")
        if not re.fullmatch(r"[0-9a-f]{64}", cksum):
            raise ValueError(f"index line for {name} {vers} has a malformed cksum")
        pubtime = obj.get("pubtime")
        links = obj.get("links")
        deps = obj.get("deps")
        return cls(
            raw=raw,
            name=name,
            vers=vers,
            cksum=cksum,
            yanked=bool(obj.get("yanked", False)),
            pubtime=pubtime if isinstance(pubtime, str) else None,
            links=links if isinstance(links, str) else None,
            deps=_dependency_names(deps) if isinstance(deps, list) else (),
        )


def _dependency_names(deps: list[object]) -> tuple[str, ...]:
    names: list[str] = []
    for dep in deps:
        if not isinstance(dep, dict) or dep.get("kind") == "dev":
            continue
        name = dep.get("package") or dep.get("name")
        if isinstance(name, str) and name not in names:
            names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class IndexFile:
    """A parsed index file. Build once per content version and keep: parsing is not free."""

    raw: bytes
    lines: tuple[IndexLine, ...]
    # Lines we could not parse are kept byte for byte (cargo skips what it cannot read) but
    # never match a download, so nothing unverifiable is ever served as a crate.
    unparsed: tuple[bytes, ...] = field(default=())

    @classmethod
    def parse(cls, raw: bytes) -> IndexFile:
        lines: list[IndexLine] = []
        unparsed: list[bytes] = []
        for chunk in raw.split(b"\n"):
            if not chunk.strip():
                continue
            try:
                lines.append(IndexLine.parse(chunk))
            except ValueError:
                unparsed.append(chunk)
        return cls(raw=raw, lines=tuple(lines), unparsed=tuple(unparsed))

    @cached_property
    def _by_version(self) -> dict[str, IndexLine]:
        return {line.vers: line for line in self.lines}

    def find(self, vers: str) -> IndexLine | None:
        return self._by_version.get(vers)

    def versions(self) -> list[str]:
        return [line.vers for line in self.lines]

    def keep(self, predicate: Callable[[IndexLine], bool]) -> IndexFile:
        """A new index file with only the lines the predicate keeps, bytes untouched."""
        kept = tuple(line for line in self.lines if predicate(line))
        if len(kept) == len(self.lines) and not self.unparsed:
            return self
        return IndexFile(raw=join_lines(line.raw for line in kept), lines=kept)


def join_lines(raws: Iterable[bytes]) -> bytes:
    body = b"\n".join(raws)
    return body + b"\n" if body else b""


def etag_of(body: bytes) -> str:
    """A strong ETag from content: identical bytes give identical tags across processes."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@dataclass(frozen=True)
class CrateRef:
    name: str
    version: str
    # The sha256 a Cargo.lock pins it to (None: not from a lockfile); not part of its identity.
    checksum: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def parse(cls, spec: str) -> CrateRef:
        """Parse `name@version` (as used on the command line)."""
        name, sep, version = spec.partition("@")
        if not sep or not version:
            raise BadRequest(f"expected name@version, got {spec!r}")
        validate_name(name)
        validate_version(version)
        return cls(name, version)


_VERSION_RE = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?\Z"
)


def validate_version(version: str) -> str:
    if len(version) > 128 or not _VERSION_RE.match(version):
        raise BadRequest(f"{version[:40]!r} is not a semantic version")
    return version
