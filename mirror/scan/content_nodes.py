"""The nodes the content reader judges, captured once per region over the lines with hits,
and the lookups it makes among them: by byte range, never by walking up from a node (on a
hostile 20 000-deep tree each step up walks down from the root)."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterator

from tree_sitter import Node, Query, QueryCursor

from mirror.scan.literals import literal_text
from mirror.scan.pieces import (
    PLACEHOLDER,
    STRING_NODES,
    initial_literal,
    integers,
    only_string_argument,
)
from mirror.scan.regions import Region
from mirror.scan.syntax import LANGUAGE, segments, text

_ENV_READS = frozenset({"var", "var_os"})
_ENV_MACROS = frozenset({"env", "option_env"})
QUERY = Query(
    LANGUAGE,
    """
    (string_literal) @str
    (raw_string_literal) @str
    (attribute_item) @attr
    (inner_attribute_item) @attr
    (macro_invocation macro: (_) @mname (token_tree) @margs) @macro
    (call_expression function: (_) @callee arguments: (arguments) @args) @call
    (array_expression) @array
    (binary_expression operator: "+") @plus
    (token_tree) @tree
    (let_declaration pattern: (identifier) @letname value: (_) @letvalue)
    """,
)


def hit_spans(source: bytes, region: Region, offsets: list[int]) -> list[tuple[int, int]]:
    """The lines (byte spans within the region) holding hits, merged when close."""
    spans: list[tuple[int, int]] = []
    base = region.start
    for offset in offsets:
        lo = source.rfind(b"\n", base, base + offset) + 1 - base
        hi = source.find(b"\n", base + offset, region.end)
        hi = (region.end if hi < 0 else hi) - base
        if spans and lo <= spans[-1][1] + 1024:
            spans[-1] = (spans[-1][0], max(spans[-1][1], hi))
        else:
            spans.append((max(lo, 0), hi))
    return spans


def captures(root: Node, spans: list[tuple[int, int]], whole: bool) -> dict[str, list[Node]]:
    """Everything the findings are made from, over the hit spans (or the whole region, when
    assembled strings or decoding may draw on lines without hits)."""
    merged: dict[str, dict[tuple[int, int], Node]] = defaultdict(dict)
    ranges = [(root.start_byte, root.end_byte)] if whole else spans
    for lo, hi in ranges:
        cursor = QueryCursor(QUERY)
        cursor.set_byte_range(lo, hi)
        for name, found in cursor.captures(root).items():
            for node in found:
                merged[name][(node.start_byte, node.end_byte)] = node
    return {
        name: sorted(nodes.values(), key=lambda n: (n.start_byte, -n.end_byte))
        for name, nodes in merged.items()
    }


class Nodes:
    """The captured nodes of one region, with the lookups the reader needs (by byte range:
    no parent walks, which cost a walk from the root each on a hostile 20 000-deep tree)."""

    def __init__(self, captures: dict[str, list[Node]]) -> None:
        self.c = captures
        self._strings = captures.get("str", [])
        self._string_starts = [n.start_byte for n in self._strings]
        self._attrs = captures.get("attr", [])
        self._attr_starts = [n.start_byte for n in self._attrs]
        self._args = captures.get("args", [])
        self._arg_starts = [n.start_byte for n in self._args]
        self._callees = captures.get("callee", [])
        self._callee_starts = [n.start_byte for n in self._callees]
        self._macros = captures.get("macro", [])
        self._macro_starts = [n.start_byte for n in self._macros]
        self._trees = captures.get("tree", [])
        self._tree_starts = [n.start_byte for n in self._trees]
        arrays = captures.get("array", []) + [
            t for t in self._trees if t.child_count and t.children[0].type == "["
        ]
        self._arrays_by_end = {n.end_byte: n for n in arrays}

    def string_at(self, offset: int) -> Node | None:
        return _containing(self._strings, self._string_starts, offset)

    def array_ending_at(self, end: int) -> Node | None:
        return self._arrays_by_end.get(end)

    def callee_at(self, offset: int) -> Node | None:
        return _containing(self._callees, self._callee_starts, offset)

    def macro_named_at(self, offset: int, name: str) -> Node | None:
        for macro in _all_containing(self._macros, self._macro_starts, offset):
            callee = macro.child_by_field_name("macro")
            if callee is not None and text(callee).rsplit("::", 1)[-1] == name:
                return macro
        return None

    def in_prose_concat(self, string: Node) -> bool:
        """Is `string` a piece of a `concat!` whose other literals are prose (a message)?
        The `concat!` may be code or tokens in another macro's body."""
        tree = next(_all_containing(self._trees, self._tree_starts, string.start_byte), None)
        bang = tree.prev_sibling if tree is not None else None
        name = bang.prev_sibling if bang is not None and bang.type == "!" else None
        if tree is None or name is None or name.text != b"concat":
            return False
        return any(
            piece.type in STRING_NODES and len((piece.text or b"").split()) > 2
            for piece in tree.named_children
        )

    def in_attribute(self, node: Node) -> bool:
        return (
            next(_all_containing(self._attrs, self._attr_starts, node.start_byte), None) is not None
        )

    def env_read_of(self, string: Node) -> str | None:
        """`env::var` (as written) if `string` is an argument of an environment read:
        `var(..)`/`var_os(..)` calls and `env!(..)`/`option_env!(..)` macros."""
        for args in _all_containing(self._args, self._arg_starts, string.start_byte):
            callee = args.prev_named_sibling
            path = segments(callee) if callee is not None else None
            if path and path[-1] in _ENV_READS:
                return "::".join(path)
        for macro in _all_containing(self._macros, self._macro_starts, string.start_byte):
            callee = macro.child_by_field_name("macro")
            name = text(callee) if callee is not None else ""
            if name in _ENV_MACROS:
                return f"{name}!"
        return None

    def macros(self) -> Iterator[tuple[Node, str]]:
        for macro in self._macros:
            callee = macro.child_by_field_name("macro")
            if callee is not None:
                yield macro, text(callee).rsplit("::", 1)[-1]

    def calls(self) -> Iterator[tuple[Node, str]]:
        for callee in self._callees:
            path = segments(callee)
            if path:
                yield callee, path[-1]
            elif callee.type == "field_expression":
                field = callee.child_by_field_name("field")
                if field is not None:
                    yield callee, text(field)

    def outermost_plus(self) -> Iterator[Node]:
        last_end = -1
        for node in self.c.get("plus", []):
            if node.start_byte >= last_end:
                last_end = node.end_byte
                yield node

    def push_str_chains(self, region_source: bytes) -> dict[str, tuple[Node, list[str]]]:
        """`s.push_str("..")` calls with a literal argument, joined per receiver (and after
        the receiver's literal initial value, `let s = String::from("..")`)."""
        chains: dict[str, tuple[Node, list[str]]] = {}
        starts: dict[str, str] = {}
        names, values = self.c.get("letname", []), self.c.get("letvalue", [])
        for let_name, value in zip(names, values, strict=False):
            initial = initial_literal(value)
            if initial is not None:
                starts[text(let_name)] = initial
        for callee in self._callees:
            if callee.type != "field_expression":
                continue
            field = callee.child_by_field_name("field")
            receiver = callee.child_by_field_name("value")
            if field is None or receiver is None or text(field) != "push_str":
                continue
            args = callee.next_named_sibling
            piece = only_string_argument(args)
            if piece is None:
                continue
            receiver_text = text(receiver)
            initial = starts.get(receiver_text, PLACEHOLDER)
            chains.setdefault(receiver_text, (callee, [initial]))[1].append(piece)
        return chains

    def literal_byte_runs(self) -> Iterator[tuple[Node, bytes]]:
        """Integer arrays (also `vec![..]` bodies) and byte strings of at least 4 bytes."""
        for node in self._arrays_by_end.values():
            values = integers(node)
            if values is not None and len(values) >= 4 and all(0 <= v < 256 for v in values):
                yield node, bytes(values)
        for node in self._strings:
            raw = node.text or b""
            if raw.startswith((b'b"', b"br")):
                value = literal_text(text(node))
                if value is not None and len(value[0]) >= 4:
                    yield node, value[0].encode("latin-1", errors="replace")


def _containing(nodes: list[Node], starts: list[int], offset: int) -> Node | None:
    """The node of non-nesting `nodes` (sorted by start) that holds `offset`."""
    i = bisect.bisect_right(starts, offset) - 1
    if i >= 0 and nodes[i].start_byte <= offset < nodes[i].end_byte:
        return nodes[i]
    return None


def _all_containing(nodes: list[Node], starts: list[int], offset: int) -> Iterator[Node]:
    """The nodes of `nodes` (sorted by start, may nest) holding `offset`, innermost first.
    Looks back a bounded number of nodes: nesting deeper than that is not real code."""
    i = bisect.bisect_right(starts, offset) - 1
    for node in nodes[max(0, i - 64) : i + 1][::-1]:
        if node.start_byte <= offset < node.end_byte:
            yield node
