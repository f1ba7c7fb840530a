"""Tree-sitter for Rust: the language, the queries the reader runs, and small node helpers.

Every helper here is iterative and bounded: a hostile file's 20 000-deep nesting must cost
no more than real code (no Python recursion, no `node.parent` walks from deep nodes).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Iterator

import tree_sitter_rust
from tree_sitter import Language, Node, Parser, Query

from mirror.scan.rules import Path_

MAX_PATH_SEGMENTS = 64  # segments; longer paths (and deeper `use` trees) are never real code
PATH_NODES = frozenset({"scoped_identifier", "scoped_type_identifier"})
NAME_NODES = frozenset({"identifier", "type_identifier", "crate", "self", "super"})

LANGUAGE = Language(tree_sitter_rust.language())
USE_QUERY = Query(
    LANGUAGE,
    "(use_declaration argument: (_) @use)"
    "(extern_crate_declaration name: (identifier) @crate alias: (identifier) @alias)",
)
# Everything findings are made from, and what `unsafe`, `extern` and `link` confirm as items
# are parsed. Bare names too: only the lines with hits are queried, so capturing every
# identifier is cheap.
QUERY = Query(
    LANGUAGE,
    """
    (identifier) @name
    (type_identifier) @name
    (use_declaration argument: (_) @use)
    (scoped_identifier) @path
    (scoped_type_identifier) @path
    (token_tree) @tokens
    (macro_invocation macro: (_) (token_tree)) @macro
    "unsafe" @unsafe
    (foreign_mod_item) @foreign
    (function_item (function_modifiers (extern_modifier)) name: (identifier) @externfn)
    (attribute_item (attribute (identifier) @attr (#eq? @attr "link"))) @link
    (call_expression function: (field_expression field: (field_identifier) @method
        (#any-of? @method "read_dir" "read_link" "symlink_metadata")))
    """,
)
_THREAD = threading.local()  # a Parser per thread: scans run in worker threads, in parallel


def thread_parser() -> Parser:
    parser: Parser | None = getattr(_THREAD, "parser", None)
    if parser is None:
        parser = _THREAD.parser = Parser(LANGUAGE)
    return parser


def text(node: Node) -> str:
    data = node.text
    return data.decode("utf-8", errors="replace") if data is not None else ""


def segments(node: Node | None) -> Path_ | None:
    """`a::b::C` as ("a", "b", "C"); a leading `::` gives an empty first segment.

    Iterative and capped: a hostile file's 20 000-segment path must cost no more than a
    real one (and no Python recursion)."""
    names: list[str] = []
    while node is not None:
        if len(names) > MAX_PATH_SEGMENTS:
            return None
        kind = node.type
        if kind in NAME_NODES or kind in ("metavariable", "primitive_type"):
            names.append(text(node))
            break
        if kind == "generic_type":
            node = node.child_by_field_name("type")
            continue
        if kind not in PATH_NODES:
            return None
        name = node.child_by_field_name("name")
        if name is None:
            return None
        names.append(text(name))
        node = node.child_by_field_name("path")
        if node is None:
            names.append("")  # leading `::`
    return tuple(reversed(names))


class Spans:
    """The outermost of some nodes, by byte range, and a fast "is this node inside one?"."""

    def __init__(self, nodes: Iterable[Node]) -> None:
        self.outermost: list[Node] = []
        self._starts: list[int] = []
        self._ends: list[int] = []
        for node in sorted(nodes, key=lambda n: (n.start_byte, -n.end_byte)):
            if self._ends and node.end_byte <= self._ends[-1]:
                continue  # nested in the previous outermost node
            self.outermost.append(node)
            self._starts.append(node.start_byte)
            self._ends.append(node.end_byte)

    def holds(self, node: Node) -> bool:
        i = bisect.bisect_right(self._starts, node.start_byte) - 1
        return i >= 0 and node.end_byte <= self._ends[i]


def tokens(tree: Node) -> Iterator[Node]:
    """The flat tokens of a macro body in order, each nested token tree announced by its own
    node just before its tokens; string literals and comments come out whole (a string
    breaks a path run, and its content is never read as code). Iterative: macro bodies can
    nest thousands of brackets deep."""
    stack = [iter(tree.children)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
        elif child.type == "token_tree":
            yield child
            stack.append(iter(child.children))
        else:
            yield child


def first_string(args: Node) -> str | None:
    for child in args.named_children:
        if child.type in ("string_literal", "raw_string_literal"):
            content = [c for c in child.named_children if c.type == "string_content"]
            return text(content[0]) if content else ""
    return None


def unsafe_item(node: Node) -> str:
    """A label for an `unsafe` keyword, from its parent (one step up: bounded)."""
    parent = node.parent
    kind = parent.type if parent is not None else ""
    if kind == "unsafe_block":
        return "unsafe block"
    if kind == "function_modifiers" and parent is not None and parent.parent is not None:
        name = parent.parent.child_by_field_name("name")
        return f"unsafe fn {text(name)}" if name is not None else "unsafe fn pointer type"
    if kind == "impl_item":
        return "unsafe impl"
    if kind == "trait_item":
        return "unsafe trait"
    if kind == "token_tree":
        return "unsafe (in macro body)"
    return "unsafe"
