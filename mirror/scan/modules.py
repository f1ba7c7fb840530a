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
# Every spelling rustc accepts, or a payload hides behind an unusual one: whitespace (newlines
# too) around `!` and `=`, any delimiter (`include!{..}`), raw strings (`r#".."#`), and
# `#[cfg_attr(pred, path = "..")]` as well as `#[path = ".."]`.
_STRING = rb'r?#*"(?P<path>[^"\n]+)"'
# `path = ".."` anywhere: `#[path = ..]`, or in `#[cfg_attr(pred, path = ..)]` whatever the
# predicate; elsewhere it is never followed by a `mod x;` with no `;` or brace between.
_PATH = re.compile(rb"\bpath\s*=\s*" + _STRING)
_STOP = re.compile(rb"[;{}]")  # ends an item: between `#[path]` and its `mod x;` there is none
_MOD_AT_STOP = re.compile(rb"\bmod\s+(?:r#)?\w+\s*;")
_OPEN = rb"\s*!\s*[(\[{]\s*"
# (A leading literal, not `\b`: the regex engine then jumps between `include`s instead of
# trying every byte of the file.)
_INCLUDE = re.compile(
    rb"include" + _OPEN + rb"(?:concat" + _OPEN + rb"env" + _OPEN
    + rb'"CARGO_MANIFEST_DIR"\s*[)\]}]\s*,\s*)?' + _STRING
)  # fmt: skip
_MANIFEST_DIR = b"CARGO_MANIFEST_DIR"


def pulled_files(file: str, source: bytes, is_root: bool, mods: bool = True) -> Iterator[str]:
    """Paths (inside the crate, maybe not existing) that `file` pulls in. `is_root`: the file
    is a crate root (`lib.rs`, `main.rs`, a build script), whose `mod x;` sits beside it.
    `mods`: also plain `mod x;` (else only `#[path]` and `include!`, which can leave the
    directory a file lives in)."""
    directory = posixpath.dirname(file)
    if b"#[" in source and b"path" in source:
        for path in _path_attributes(source):
            yield _join(directory, path)
    if mods and b"mod" in source:
        stem = posixpath.splitext(posixpath.basename(file))[0]
        # In `a/foo.rs` (not a root, not `mod.rs`), `mod x;` is `a/foo/x.rs`.
        owner = directory if is_root or stem == "mod" else posixpath.join(directory, stem)
        for match in _MOD.finditer(source):
            name = match.group(1).decode("ascii", "replace")
            yield _join(owner, f"{name}.rs")
            yield _join(owner, f"{name}/mod.rs")
    if b"include" in source:
        for match in _INCLUDE.finditer(source):
            before = source[match.start() - 1 : match.start()] if match.start() else b""
            if before.isalnum() or before == b"_":
                continue  # `my_include!(..)`: another macro
            path = match.group("path").decode("utf-8", "replace")
            from_root = _MANIFEST_DIR in match.group(0)
            yield _join("", path.lstrip("/")) if from_root else _join(directory, path)


def _path_attributes(source: bytes) -> Iterator[str]:
    """The paths `#[path = ".."]` attributes give the `mod x;` after them (other attributes,
    comments, `pub` between; nothing ending an item). Linear in the file: following each
    attribute to its `;` anew took 28 s for a 130 KB file of `#[path = "x"]`s and no `mod`."""
    stop: re.Match[bytes] | None = None  # the first `;`, `{` or `}` after the attribute
    mod: re.Match[bytes] | None = None  # the `mod x;` that `;` ends, if it ends one
    for match in _PATH.finditer(source):
        end = match.end()
        if stop is None or stop.start() < end:  # (each stretch of the file is searched once)
            stop = _STOP.search(source, end)
            if stop is None:
                return
            semicolon = stop.group() == b";"
            mod = _MOD_AT_STOP.search(source, end, stop.end()) if semicolon else None
        if mod is not None and mod.start() >= end:
            yield match.group("path").decode("utf-8", "replace")


def _join(directory: str, path: str) -> str:
    joined = posixpath.normpath(posixpath.join(directory, path.replace("\\", "/")))
    return "" if joined.startswith("..") else joined.removeprefix("./")
