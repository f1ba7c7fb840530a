"""Which files a Rust file pulls into its compilation: `mod name;` (cargo's file layout, or
`#[path = ".."]`) and `include!("..")`. Read from the text, best effort: enough to know
which files a build script runs and which files outside `src/` the library compiles.

A commented-out `mod x;` still counts (a file is then judged by the more dangerous context);
a module declared by a macro, or a path assembled by one, is not seen.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator

_MOD = re.compile(rb"^[ \t]*(?:pub(?:\([^)\n]*\))?[ \t]+)?mod[ \t]+(?:r#)?(\w+)[ \t]*;", re.M)
_PATH = re.compile(rb'#\[[ \t]*path[ \t]*=[ \t]*"([^"\n]+)"[ \t]*\]')
_MOD_AFTER_PATH = re.compile(rb"(?:[^;{}]|\{[^{}]*\})*?\bmod[ \t]+(?:r#)?\w+[ \t]*;")
# (A leading literal, not `\b`: the regex engine then jumps between `include!`s instead of
# trying every byte of the file.)
_INCLUDE = re.compile(
    rb'include!\s*\(\s*(?:concat!\s*\(\s*env!\s*\(\s*"CARGO_MANIFEST_DIR"\s*\)\s*,\s*)?'
    rb'"(?P<path>[^"\n]+)"'
)
_MANIFEST_DIR = b"CARGO_MANIFEST_DIR"


def pulled_files(file: str, source: bytes, is_root: bool, mods: bool = True) -> Iterator[str]:
    """Paths (inside the crate, maybe not existing) that `file` pulls in. `is_root`: the file
    is a crate root (`lib.rs`, `main.rs`, a build script), whose `mod x;` sits beside it.
    `mods`: also plain `mod x;` (else only `#[path]` and `include!`, which can leave the
    directory a file lives in)."""
    directory = posixpath.dirname(file)
    if b"#[" in source and b"path" in source:
        for match in _PATH.finditer(source):
            # The attribute names the file of the next `mod x;` (other attributes between).
            if _MOD_AFTER_PATH.match(source, match.end()):
                yield _join(directory, match.group(1).decode("utf-8", "replace"))
    if mods and b"mod" in source:
        stem = posixpath.splitext(posixpath.basename(file))[0]
        # In `a/foo.rs` (not a root, not `mod.rs`), `mod x;` is `a/foo/x.rs`.
        owner = directory if is_root or stem == "mod" else posixpath.join(directory, stem)
        for match in _MOD.finditer(source):
            name = match.group(1).decode("ascii", "replace")
            yield _join(owner, f"{name}.rs")
            yield _join(owner, f"{name}/mod.rs")
    if b"include!" in source:
        for match in _INCLUDE.finditer(source):
            before = source[match.start() - 1 : match.start()] if match.start() else b""
            if before.isalnum() or before == b"_":
                continue  # `my_include!(..)`: another macro
            path = match.group("path").decode("utf-8", "replace")
            from_root = _MANIFEST_DIR in match.group(0)
            yield _join("", path.lstrip("/")) if from_root else _join(directory, path)


def _join(directory: str, path: str) -> str:
    joined = posixpath.normpath(posixpath.join(directory, path.replace("\\", "/")))
    return "" if joined.startswith("..") else joined.removeprefix("./")
