"""The byte pre-filter: which tokens make a line of Rust worth parsing, and which lines
certainly hold no code.

Parsing runs at ~10 MB/s; most source cannot grant anything. A line matters only if it
mentions a token below (or a local alias of one, added by the reader's second pass).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from mirror.scan.capabilities import Capability
from mirror.scan.rules import BARE, RULE_PATHS

_STOP_SEGMENTS = frozenset({"std", "os", "unix", "windows", "nix", "unistd", "libc"})
# A path to a rule must spell the rule's first distinctive segment (`process` in
# std::process::Command), or use a name a `use` bound to it; that `use` spells the segment,
# and its alias becomes a token of the second pass. So later segments such as `Command`
# (also clap's Command) need not be tokens.
_TOKEN_CAPS: dict[str, frozenset[Capability]] = {}
for _path, _cap in RULE_PATHS:
    _seg = next(s for s in _path if s not in _STOP_SEGMENTS)
    _TOKEN_CAPS[_seg] = _TOKEN_CAPS.get(_seg, frozenset()) | {_cap}
for _name, _cap in BARE.items():
    _TOKEN_CAPS[_name] = _TOKEN_CAPS.get(_name, frozenset()) | {_cap}
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
    b"unsafe": Capability.UNSAFE,
    b"extern": Capability.FFI,
    b"link": Capability.LINKS,
}


@functools.lru_cache(maxsize=64)
def tokens_for(wanted: frozenset[Capability]) -> frozenset[str]:
    """The pre-filter tokens that can reveal one of the `wanted` capabilities."""
    return frozenset(t for t, caps in _TOKEN_CAPS.items() if caps & wanted)


@functools.lru_cache(maxsize=64)
def token_regex(tokens: frozenset[str]) -> re.Pattern[bytes]:
    """`\\b(tok1|tok2...)\\b` with common prefixes factored out (twice as fast to search)."""
    trie: dict[str, Any] = {}
    for token in tokens:
        node = trie
        for ch in token:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        alternatives = [
            (r"\s+" if ch == " " else re.escape(ch)) + emit(sub)
            for ch, sub in sorted(node.items())
            if ch
        ]
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
        if len(alternatives) == 1 and "" not in node:
            return body
        return f"(?:{body})?" if "" in node else body

    return re.compile(rb"\b" + emit(trie).encode() + rb"(?![A-Za-z0-9_])")


def comment_only(source: bytes, start: int, end: int) -> bool:
    """Is the line `source[start:end]` certainly not code: it starts with `//` and holds no
    `"` and no `*/`? At the line's start the lexer is in code (then `//` comments out the
    rest), in a string (which cannot end without a `"`) or in a block comment (which cannot
    end without `*/`): in none of these can a later part of the line be code."""
    text = source[start:end].lstrip()
    return text.startswith(b"//") and b'"' not in text and b"*/" not in text
