"""The byte pre-filter: which tokens make a line of Rust worth parsing, and which lines
certainly hold no code.

Parsing runs at ~10 MB/s; most source cannot grant anything. A line matters only if it
mentions a token below (or a local alias of one, added by the reader's second pass). The
tokens are searched for all at once with hyperscan (`multimatch`).
"""

from __future__ import annotations

import functools
import re

from mirror.scan.multimatch import Patterns
from mirror.scan.report import Capability
from mirror.scan.rules import BARE, CALL_RULES, METHODS, RULE_PATHS

_STOP_SEGMENTS = frozenset({"std", "os", "unix", "windows", "nix", "unistd", "libc"})
# A path to a rule must spell the rule's first distinctive segment (`process` in
# std::process::Command), or use a name a `use` bound to it; that `use` spells the segment,
# and its alias becomes a token of the second pass. So later segments such as `Command`
# (also clap's Command) need not be tokens.
_TOKEN_CAPS: dict[str, frozenset[Capability]] = {}
for _path, _cap in RULE_PATHS:
    _seg = next(s for s in _path if s not in _STOP_SEGMENTS)
    _TOKEN_CAPS[_seg] = _TOKEN_CAPS.get(_seg, frozenset()) | {_cap}
for _name, _cap in (*BARE.items(), *METHODS.items()):
    _TOKEN_CAPS[_name] = _TOKEN_CAPS.get(_name, frozenset()) | {_cap}
# Calls into libc: `libc::` (FFI), `libc::open` and its kind (FS). A bare `libc` (in
# `extern crate libc;`, a cfg, prose) grants nothing.
_TOKEN_CAPS["libc::"] = frozenset({Capability.FFI})
for _rule in CALL_RULES[Capability.FS]:
    _TOKEN_CAPS[_rule] = frozenset({Capability.FS})
_LIBC_FS = "|".join(rule.split("::")[1] for rule in CALL_RULES[Capability.FS])
# Tokens that are patterns, not words: a `use libc::{..}` importing one of its file
# functions (read for the alias, after which an imported `open` is a second-pass token).
_PATTERN_TOKENS: dict[bytes, frozenset[Capability]] = {
    rb"\buse[ \t\n\r]+(?:::)?libc::[^;]*\b(?:" + _LIBC_FS.encode() + rb")\b": frozenset(
        {Capability.FS}
    ),
}
_TOKEN_CAPS.update(
    {
        "File": frozenset({Capability.FS}),
        "unsafe": frozenset({Capability.UNSAFE}),
        "extern": frozenset({Capability.FFI}),
        "link": frozenset({Capability.LINKS}),
        "env": frozenset({Capability.ENV}),
        "option_env": frozenset({Capability.ENV}),
        "include_bytes": frozenset({Capability.INCLUDE_OUTSIDE}),
        "include_str": frozenset({Capability.INCLUDE_OUTSIDE}),
        "include": frozenset({Capability.INCLUDE_OUTSIDE}),
    }
)
# Renaming or glob-importing a root (`use std as s;`, `extern crate std as s;`,
# `use std::{self as s}`, `use std::*;`) would hide every later `s::process::Command` from
# the token search, so these spellings are tokens of every capability. A space in a token
# stands for any run of whitespace.
_ALL = frozenset(Capability)
for _root in ("std", "libc", "nix", "self"):
    _TOKEN_CAPS[f"{_root} as"] = _ALL
for _root in ("std", "libc", "nix"):
    _TOKEN_CAPS[f"{_root}::*"] = _ALL

# Tokens whose capability the item itself grants (never through a `use`): once the parser
# has confirmed enough of them, further mentions need not be parsed.
LOCAL_TOKENS = {
    "unsafe": Capability.UNSAFE,
    "extern": Capability.FFI,
    "link": Capability.LINKS,
}
_WORD = b"A-Za-z0-9_"
_EXTERN_CRATE = re.compile(rb"extern[ \t\n\r\f\v]+crate\b")
_TOKENS = tuple(sorted(_TOKEN_CAPS))
_CAPS = (*(_TOKEN_CAPS[t] for t in _TOKENS), *_PATTERN_TOKENS.values())
_LOCAL = (*(LOCAL_TOKENS.get(t) for t in _TOKENS), *(None for _ in _PATTERN_TOKENS))

Hit = tuple[int, Capability | None]  # (offset, the one capability an item-local token grants)


def _expression(token: str) -> bytes:
    """`\\btoken\\b` in hyperscan's syntax (a space stands for any run of whitespace)."""
    body = rb"[ \t\n\r\f\v]+".join(re.escape(w.encode()) for w in token.split(" "))
    # `std::*` ends in a non-word byte, where `\b` would demand a word byte next; `libc::`
    # is followed by the name it qualifies.
    if token.endswith("::"):
        return rb"\b" + body
    end = rb"\b" if token[-1].isalnum() or token[-1] == "_" else rb"(?:[^" + _WORD + rb"]|$)"
    return rb"\b" + body + end


# Every token in one database, whatever is wanted: each scan filters by capability. (A
# file's scan also looks for the content reader's tokens: `content_tokens.scan_tokens`.)
EXPRESSIONS = (*(_expression(t) for t in _TOKENS), *_PATTERN_TOKENS)
_TOKEN_PATTERNS = Patterns(EXPRESSIONS)
_USE_WORDS = Patterns([rb"\buse\b", rb"\bcrate\b"])  # what `use` and `extern crate` hold


def find_tokens(
    source: bytes, wanted: frozenset[Capability], starts: list[tuple[int, int]] | None = None
) -> list[Hit]:
    """Where the tokens that can reveal a `wanted` capability start, in order. `starts`:
    every token's (start, index in EXPRESSIONS), if the caller scanned for them already."""
    hits: dict[int, Capability | None] = {}
    for start, token in _TOKEN_PATTERNS.starts(source) if starts is None else starts:
        if not _CAPS[token] & wanted:
            continue
        local = _LOCAL[token]
        # `extern crate x;` declares no foreign code; a relevant crate's name on that line
        # (`extern crate libc as c`) is a token of its own.
        if local is Capability.FFI and _EXTERN_CRATE.match(source, start):
            continue
        hits[start] = local  # a dict: `...|$` can report one start twice
    return list(hits.items())


def mentions_token(data: bytes, wanted: frozenset[Capability]) -> bool:
    """Does `data` (a macro body) mention a token of a `wanted` capability?"""

    def on_match(token: int, start: int, end: int, flags: int, context: object) -> bool:
        return bool(_CAPS[token] & wanted)  # true stops the scan

    return not _TOKEN_PATTERNS.scan(data, on_match)


def use_words(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each word `use` or `crate` in `data`, in order."""
    return [(start, start + (3 if index == 0 else 5)) for start, index in _USE_WORDS.starts(data)]


def is_token(name: str, wanted: frozenset[Capability]) -> bool:
    """Is `name` already a token of a `wanted` capability (so the first pass found it)?"""
    return bool(_TOKEN_CAPS.get(name, frozenset()) & wanted)


@functools.lru_cache(maxsize=64)
def alias_regex(aliases: frozenset[str]) -> re.Pattern[bytes]:
    """`\\b(alias1|alias2...)\\b`: the second pass's names, which `use` bound in one file."""
    words = "|".join(re.escape(a) for a in sorted(aliases, key=len, reverse=True))
    return re.compile(rb"\b(?:" + words.encode() + rb")(?![" + _WORD + rb"])")


# A block comment's edges as the lexer reads them: left to right, `/*` and `*/` a pair each.
_BLOCK_COMMENT_EDGE = re.compile(rb"/\*|\*/")


def comment_only(source: bytes, start: int, end: int) -> bool:
    """Is the line `source[start:end]` certainly not code: it starts with `//`, holds no `"`
    and cannot close a block comment? At the line's start the lexer is in code (then `//`
    comments out the rest), in a string (which cannot end without a `"`) or in a block
    comment: in none of these can a later part of the line be code. A block comment ends
    at a `*/` that brings its nesting depth to 0; doc links such as `docs.rs/x/*/y` hold
    `/*/`, which (read as the lexer reads it, `/*` first) opens one more level, never less.
    So the line is comment as long as no prefix of it closes more levels than it opens."""
    text = source[start:end].lstrip()
    if not text.startswith(b"//") or b'"' in text:
        return False
    depth = 0
    for edge in _BLOCK_COMMENT_EDGE.finditer(text):
        depth += 1 if edge[0] == b"/*" else -1
        if depth < 0:
            return False
    return True


_LEADING_TRIVIA = re.compile(rb"(?:[ \t\r\n]+|//[^\n]*)*")  # whitespace and line comments


def code_start(source: bytes) -> int:
    """Where the first code of a file may start: after a BOM, whitespace and comments.

    Crates often open with a long `/*! .. */` doc comment. A slice cut from inside it is
    prose: it fails to parse (slowly, tree-sitter's error recovery is the costliest parse)
    and grows until the whole file is parsed, for a hit that cannot be code. At the file's
    start the lexer is in code, so this prefix is lexed exactly: `//` runs to the end of the
    line, and block comments nest, `/*` and `*/` each read as one pair of bytes from left to
    right (as rustc and tree-sitter read them). An unclosed comment ends the prefix at its
    start (broken code is left to the parser)."""
    at = 3 if source.startswith(b"\xef\xbb\xbf") else 0
    while True:
        trivia = _LEADING_TRIVIA.match(source, at)  # (always matches, if only "")
        at = trivia.end() if trivia is not None else at
        if not source.startswith(b"/*", at):
            return at
        depth = 0
        for edge in _BLOCK_COMMENT_EDGE.finditer(source, at):
            depth += 1 if edge[0] == b"/*" else -1
            if depth == 0:
                at = edge.end()
                break
        else:
            return at
