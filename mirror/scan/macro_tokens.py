"""Reading macro bodies, where tree-sitter gives only flat tokens, for what they can grant.

A `macro_rules!` body or a macro invocation's `{ ... }` can hold whole items: an
`extern "C" fn` exported from a macro is as foreign as one written out. These token
sequences mean a capability wherever the macro is expanded, so they are evidence on their
own: `extern ["ABI"] fn NAME` and `extern ["ABI"] { ... }` (ffi; not `extern "Rust"`,
`extern crate` or an `extern "C" fn(..)` pointer type), `#[link ...]` (links); paths such
as `std::process::Command` are rebuilt from `a :: b :: c` runs for the reader to resolve.
`unsafe` needs nothing here: the reader's query finds the keyword inside token trees.
"""

from __future__ import annotations

from dataclasses import dataclass

from tree_sitter import Node

from mirror.scan.report import Capability
from mirror.scan.rules import Path_
from mirror.scan.syntax import NAME_NODES, text, tokens

_FN_NAMES = frozenset({"identifier", "metavariable"})
_PATH_TOKENS = NAME_NODES | {"metavariable"}  # `libc::$fn`: a path whatever `$fn` becomes
_BEFORE_TREE = frozenset({"identifier", "string_literal", "#"})  # `extern {`, `"C" {`, `#[`
# Tokens that can start `extern "C" fn`, `extern {` or `#[link`, and whatever follows them
# (kept in a three-token window; nothing else can matter to `_local_finding`).
_REMEMBERED = frozenset({"identifier", "string_literal", "fn", "#"})
IN_MACRO = " (in macro body)"


@dataclass(frozen=True)
class MacroBody:
    """What one macro body holds: path runs to resolve (and which of them are called), and
    findings that need no resolving."""

    paths: list[tuple[Node, Path_]]
    calls: list[tuple[Node, Path_]]  # runs followed by `(..)`: `libc::$fn(..)`
    local: list[tuple[Capability, Node, str]]


def read_macro_body(tree: Node) -> MacroBody:
    paths: list[tuple[Node, Path_]] = []
    calls: list[tuple[Node, Path_]] = []
    local: list[tuple[Capability, Node, str]] = []
    run: list[Node] = []
    expect_name = True
    back: list[Node] = []  # the last three tokens (kept only near `fn`, `extern` and `#`)
    last = ""  # the kind of the token before this one
    for tok in tokens(tree):
        kind = tok.type
        if (kind == "token_tree" and last in _BEFORE_TREE) or (kind in _FN_NAMES and last == "fn"):
            found = _local_finding(tok, kind, back)
            if found is not None:
                local.append(found)
        if kind in _REMEMBERED or last in _REMEMBERED:
            back.append(tok)
            if len(back) > 3:
                del back[0]
        last = kind
        if kind == "::":
            expect_name = True
            continue
        if kind in _PATH_TOKENS and expect_name:
            run.append(tok)
            expect_name = False
            continue
        if run:
            path = tuple(text(t) for t in run)
            paths.append((run[0], path))
            opener = tok.child(0) if kind == "token_tree" else None
            if opener is not None and opener.type == "(":
                calls.append((run[0], path))
        run = [tok] if kind in NAME_NODES else []
        expect_name = False
    if run:
        paths.append((run[0], tuple(text(t) for t in run)))
    return MacroBody(paths, calls, local)


def _local_finding(tok: Node, kind: str, back: list[Node]) -> tuple[Capability, Node, str] | None:
    if kind in _FN_NAMES:
        extern = _extern_before(back[:-1])
        if extern is not None:
            node, abi = extern
            return Capability.FFI, node, f"{abi}fn {text(tok)}{IN_MACRO}"
        return None
    opener = tok.child(0)
    bracket = opener.type if opener is not None else ""
    if bracket == "{":
        extern = _extern_before(back)
        if extern is not None:
            node, abi = extern
            return Capability.FFI, node, f"{abi}{{ ... }} block{IN_MACRO}"
    elif bracket == "[" and back and back[-1].type == "#":
        name = tok.child(1)
        if name is not None and name.type == "identifier" and text(name) == "link":
            shown = " ".join(text(tok).split())[:200]
            return Capability.LINKS, back[-1], f"#{shown}{IN_MACRO}"
    return None


def _extern_before(back: list[Node]) -> tuple[Node, str] | None:
    """`extern` or `extern "ABI"` (any ABI but Rust's own) ending `back`: (node, label)."""
    if back and _is_extern(back[-1]):
        return back[-1], "extern "
    if len(back) >= 2 and back[-1].type == "string_literal" and _is_extern(back[-2]):
        abi = text(back[-1])
        if abi.strip('"').lower().startswith("rust"):
            return None  # extern "Rust" / "rust-call": no foreign code
        return back[-2], f"extern {abi} "
    return None


def _is_extern(node: Node) -> bool:
    return node.type == "identifier" and node.text == b"extern"
