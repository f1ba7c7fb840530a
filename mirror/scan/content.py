"""Reading one Rust file for suspicious content (`Finding`s): literals, assembled strings,
decoding of literal bytes, secrets' lookups, embedded binaries.

The steps mirror the capability reader's: a byte pre-filter (`content_tokens`) finds places
that could matter; comment-only lines are dropped; the items holding the rest are parsed
(`regions`, shared with the capability reader, so an item is parsed once for both); one
tree-sitter query over the lines with hits gives the literals, macro invocations, calls and
arrays there; `literals` says what their values hold. Only string literals in code count:
comments and doc comments are not string literals, and a doc attribute's documentation
hosts (docs.rs, github.com, ...) are not destinations.
"""

from __future__ import annotations

import bisect
import posixpath
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from tree_sitter import Node, Query, QueryCursor

from mirror.errors import ArchiveError
from mirror.scan.content_tokens import Hit, Token, content_hits
from mirror.scan.findings import Finding
from mirror.scan.literals import (
    HOME_VARIABLES,
    MIN_ESCAPES,
    SHELLS,
    Found,
    classify,
    decoded_bytes,
    findings_keys,
    is_secret_variable,
    literal_text,
    shown,
    text_array,
    urls,
)
from mirror.scan.regions import Region, Regions
from mirror.scan.syntax import LANGUAGE, first_string, segments, text

Spot = tuple[int, Token]  # a hit that needs parsing: (offset, token)
MAX_PER_KIND = 20  # findings kept per kind per file (the report keeps 20 per crate)
MAX_REFERENCED = 16  # constants a decoding region names whose bytes are decoded too
_STRING_TOKENS = frozenset({Token.STRING, Token.URL, Token.ADDRESS})
_ENV_READS = frozenset({"var", "var_os"})
_ENV_MACROS = frozenset({"env", "option_env"})
_DECODE_CALLS = frozenset({"from_utf8", "from_utf8_lossy", "from_utf8_unchecked"})
_STRING_NODES = frozenset({"string_literal", "raw_string_literal"})
_LITERAL_NODES = frozenset(
    {"string_literal", "raw_string_literal", "char_literal", "integer_literal", "float_literal",
     "boolean_literal"}
)  # fmt: skip
_PLACEHOLDER = "\0"  # a value only known at run time, inside an assembled string
_QUOTES = re.compile(rb'(?<!\\)(?:\\\\)*"')  # a quote not escaped by a backslash
_RAW_STRING = re.compile(rb"\br#*\"")
_DASH_C = re.compile(rb'"(?:-c|/[cC])"')
_CONSTANT_NAME = re.compile(rb"\b[A-Z][A-Z0-9_]{2,}\b")
_TEST_ATTRIBUTE = re.compile(rb"#\[\s*(?:cfg\s*\(\s*test\s*\)|test)\s*\]")
_TEST_ITEMS = frozenset({"mod_item", "function_item", "impl_item", "const_item", "static_item"})
_FORMAT_SPEC = re.compile(r"\{\{|\}\}|\{[^{}]*\}")
_QUERY = Query(
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


@dataclass(frozen=True)
class CrateFacts:
    """What the content reader needs to know about the crate around one file."""

    own_urls: tuple[str, ...] = ()  # the crate's own URLs (`literals.own_url` form)
    embedded: Mapping[str, str] | None = None  # path -> why it could be a payload (magic)


def read_content(
    source: bytes,
    file: str,
    regions: Regions,
    facts: CrateFacts,
    build: bool,
    hits: list[Hit] | None = None,
) -> list[tuple[Finding, int, str]]:
    """Findings in one Rust file (`file`: its path in the crate; `build`: it runs at build
    time), as (finding, 1-based line, item), at most MAX_PER_KIND per kind, first lines first.
    `hits`: the file's `content_hits`, if the caller has them already."""
    hits = content_hits(source) if hits is None else hits
    if not any(token is not Token.PULL for _, token, _ in hits):
        return []
    return _ContentReader(source, file, regions, facts, build).read(hits)


class _ContentReader:
    def __init__(
        self, source: bytes, file: str, regions: Regions, facts: CrateFacts, build: bool
    ) -> None:
        self.source = source
        self.file = file
        self.regions = regions
        self.facts = facts
        # The crate's own URLs do not count, except in a build script: it has no reason to
        # hold a URL it fetches, and an attacker can name its payload host as homepage.
        self.own = () if build else facts.own_urls
        self.found: dict[tuple[Finding, int, str], None] = {}
        self._seen: set[tuple[str, int, int]] = set()  # nodes judged (purpose, byte range)
        self._code_start = regions.code_start
        self._attributes_end: int | None = None  # see `_leading_attributes`, once needed

    def read(self, hits: list[Hit]) -> list[tuple[Finding, int, str]]:
        by_region: dict[int, tuple[Region, list[Spot]]] = {}
        start = self._code_start
        last: tuple[int, Token] | None = None
        for offset, token, match_start in hits:
            if offset < start or (offset, token) == last or token is Token.PULL:
                continue
            last = (offset, token)
            line_start = self.source.rfind(b"\n", 0, offset) + 1
            line_end = self.source.find(b"\n", offset)
            line_end = len(self.source) if line_end < 0 else line_end
            comment = self.regions.comment_line(line_start, line_end)
            if comment or self._certainly_inert(token, line_start, line_end, offset, match_start):
                continue
            region, _ = self.regions.region_of(offset)
            by_region.setdefault(id(region), (region, []))[1].append((offset, token))
        for region, region_hits in by_region.values():
            self._read_region(region, region_hits)
        tests = self._test_items() if self.found else []
        kept: dict[Finding, int] = defaultdict(int)
        out = []
        for finding, line, item in sorted(self.found, key=lambda f: (f[1], f[0].value, f[2])):
            if any(first <= line <= last for first, last in tests):
                continue
            if kept[finding] < MAX_PER_KIND:
                kept[finding] += 1
                out.append((finding, line, item))
        return out

    def _certainly_inert(
        self, token: Token, line_start: int, line_end: int, offset: int, match_start: int
    ) -> bool:
        """Hits that cannot give a finding, told without parsing (most hits: parsing is the
        costly step). A literal's findings are those of its text; a hit between two quotes
        on its line whose text (as written, and unescaped) shows nothing cannot be in a
        literal that shows something: the literal's text is that text (or the hit is not in
        a literal at all). Raw strings, which may hold quotes, are always parsed. Also: a
        dotted quad on a line naming an OID, and an array of codes that spells no text."""
        if token is Token.TEXT_ARRAY:
            values = re.findall(rb"[0-9a-fA-FxX]+", self.source[match_start : offset + 1])
            numbers = [_integer(v.decode("ascii")) for v in values]
            return text_array([n for n in numbers if n is not None]) is None
        if token not in _STRING_TOKENS:
            return False
        line = self.source[line_start:line_end]
        at = offset - line_start
        if token is Token.ADDRESS and b"OID" in line[:at].upper():
            return True
        if line[at : at + 1] == b'"':
            at -= 1  # a match ending on the literal's closing quote
        if _RAW_STRING.search(line, 0, at):
            return False
        segment = _quoted_segment(line, at)
        if segment is None:
            return token is not Token.STRING and self._url_fragment_inert(line, at)
        # The crate's leading attributes (`#![doc(html_root_url = "..")]`) are read exactly:
        # from the first code on, whole lines of attributes and comments only.
        in_attribute = line.lstrip().startswith(b"#") and line_start < self._attributes()
        return not self._may_find(segment, line_start + at, in_attribute)

    @staticmethod
    def _url_fragment_inert(line: bytes, at: int) -> bool:
        """A URL or address on a line of a literal spanning lines: its fragment on this line
        is part of the literal's text, and URLs neither span lines nor lose prose by being
        part of more text; so a fragment showing none shows none in the literal. (Unless a
        `\\` continues the line into the next: the URL could go on there.)"""
        quotes = [match.end() - 1 for match in _QUOTES.finditer(line)]
        before = [q for q in quotes if q < at]
        after = [q for q in quotes if q > at]
        fragment = line[before[-1] + 1 :] if before else line[: after[0] if after else len(line)]
        if fragment.rstrip().endswith(b"\\"):
            return False
        return not list(urls(fragment.decode("utf-8", errors="replace")))

    def _attributes(self) -> int:
        if self._attributes_end is None:
            self._attributes_end = _leading_attributes(self.source, self._code_start)
        return self._attributes_end

    def _may_find(self, segment: bytes, offset: int, in_attribute: bool) -> bool:
        """Could a literal with this text (as written) give a finding?"""
        raw = segment.decode("utf-8", errors="replace")
        value = literal_text(f'"{raw}"') if "\\" in raw else (raw, 0)
        texts = {raw} if value is None else {raw, value[0]}
        for text_value in texts:
            name = text_value.strip()
            if classify(text_value, 0, in_attribute=in_attribute) or name in HOME_VARIABLES:
                return True
            if name in SHELLS and _DASH_C.search(self.source, offset, offset + 400):
                return True
        return value is not None and value[1] >= MIN_ESCAPES

    def _test_items(self) -> list[tuple[int, int]]:
        """The lines of `#[cfg(test)]` and `#[test]` items: compiled only for the crate's own
        tests, never into a dependent's build, so nothing in them runs there."""
        lines: list[tuple[int, int]] = []
        for match in _TEST_ATTRIBUTE.finditer(self.source):
            try:
                region, _ = self.regions.region_of(match.start())
            except ArchiveError:
                continue  # cannot be read in items: nothing is excluded
            lo, hi = match.start() - region.start, match.end() - region.start
            node = region.root.named_descendant_for_byte_range(lo, hi)
            for _ in range(3):  # identifier -> attribute -> attribute_item
                if node is None or node.type == "attribute_item":
                    break
                node = node.parent
            item = node.next_named_sibling if node is not None else None
            while item is not None and item.type in ("attribute_item", "line_comment"):
                item = item.next_named_sibling
            if node is not None and item is not None and item.type in _TEST_ITEMS:
                first = node.start_point.row + region.line_offset + 1
                lines.append((first, item.end_point.row + region.line_offset + 1))
        return lines

    # -- one region ------------------------------------------------------------------------------

    def _read_region(self, region: Region, hits: list[Spot]) -> None:
        local = [(offset - region.start, token) for offset, token in hits]
        tokens = {token for _, token in local}
        whole = Token.DECODE in tokens or Token.ASSEMBLY in tokens
        captures = _captures(region.root, _spans(self.source, region, local), whole)
        nodes = _Nodes(captures)
        for offset, token in local:
            if token in _STRING_TOKENS:
                string = nodes.string_at(offset)
                if string is not None:
                    self._string(region, string, nodes)
            elif token is Token.TEXT_ARRAY:
                array = nodes.array_ending_at(offset + 1)
                if array is not None:
                    self._text_array(region, array)
            elif token is Token.ENV_VARS or token is Token.HOME_DIR:
                # (the `vars()` match ends after its parentheses; the callee is the name)
                name = self.source.rfind(b"vars", region.start, region.start + offset)
                at = name - region.start if token is Token.ENV_VARS else offset
                call = nodes.callee_at(at)
                if call is not None:
                    self._lookup(region, call, token)
            elif token is Token.INCLUDE_BYTES:
                macro = nodes.macro_named_at(offset, "include_bytes")
                if macro is not None:
                    self._include_bytes(region, macro)
        if Token.ASSEMBLY in tokens:
            self._assembled(region, nodes)
        if Token.DECODE in tokens:
            self._decoded(region, nodes)

    def _add(self, region: Region, node: Node, found: Iterable[Found]) -> None:
        line = node.start_point.row + region.line_offset + 1
        for finding, item in found:
            self.found[(finding, line, item)] = None

    def _first_time(self, region: Region, node: Node, purpose: str = "") -> bool:
        """Is this the first time `node` is judged for `purpose`? (Regions overlap.)"""
        key = (purpose, region.start + node.start_byte, region.start + node.end_byte)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    # -- literals ----------------------------------------------------------------------------------

    def _string(self, region: Region, node: Node, nodes: _Nodes) -> None:
        if not self._first_time(region, node):
            return
        value = literal_text(text(node))
        if value is None:
            return
        content, escapes = value
        in_attribute = nodes.in_attribute(node)
        line_start = self.source.rfind(b"\n", 0, region.start + node.start_byte) + 1
        oid_line = b"OID" in self.source[line_start : region.start + node.start_byte].upper()
        prose = nodes.in_prose_concat(node)
        found = classify(content, escapes, self.own, in_attribute, oid_line, prose)
        if not in_attribute:
            self._env_name(node, content, nodes, found)
            if content.strip() in SHELLS and self._with_dash_c(region, node):
                found.append((Finding.SHELL_COMMAND, f"shell {content.strip()!r} with -c"))
        self._add(region, node, found)

    def _env_name(self, node: Node, name: str, nodes: _Nodes, found: list[Found]) -> None:
        """`HOME`/`USERPROFILE` read from the environment: the home directory; a
        secret-looking name read from it: the item says so (instead of just naming it)."""
        if name in HOME_VARIABLES and nodes.env_read_of(node) is not None:
            found.append((Finding.SENSITIVE_PATH, f"home directory from env {name}"))
        elif is_secret_variable(name):
            reader = nodes.env_read_of(node)
            if reader is not None:
                found[:] = [f for f in found if f[0] is not Finding.SENSITIVE_ENV]
                found.append((Finding.SENSITIVE_ENV, f"{reader}({name!r}) reads a secret"))

    def _with_dash_c(self, region: Region, node: Node) -> bool:
        """Is a bare shell name (`"sh"`, `"cmd"`) followed, in the same statement, by the
        literal `-c` or `/C` (the command line a shell runs)?"""
        start = region.start + node.end_byte
        end = self.source.find(b";", start, start + 400)
        return _DASH_C.search(self.source, start, end if end >= 0 else start + 400) is not None

    def _text_array(self, region: Region, array: Node) -> None:
        if not self._first_time(region, array):
            return
        values = _integers(array)
        found = text_array(values) if values is not None else None
        if found is not None:
            self._add(region, array, [found])

    # -- lookups and embedded files ----------------------------------------------------------------

    def _lookup(self, region: Region, callee: Node, token: Token) -> None:
        path = segments(callee)
        if not path or not self._first_time(region, callee):
            return
        shown_path = "::".join(path)
        if token is Token.HOME_DIR and path[-1] == "home_dir":
            self._add(region, callee, [(Finding.SENSITIVE_PATH, f"home directory: {shown_path}()")])
        elif token is Token.ENV_VARS and path[-1] in ("vars", "vars_os") and _from_env(path):
            item = f"{shown_path}() reads every environment variable"
            self._add(region, callee, [(Finding.SENSITIVE_ENV, item)])

    def _include_bytes(self, region: Region, macro: Node) -> None:
        args = next((n for n in macro.named_children if n.type == "token_tree"), None)
        literal = first_string(args) if args is not None else None
        if literal is None or self.facts.embedded is None:
            return
        # `concat!(env!("CARGO_MANIFEST_DIR"), "/x")` names a path from the crate root.
        from_root = args is not None and b"CARGO_MANIFEST_DIR" in (args.text or b"")
        target = _resolve(self.file, literal, from_root)
        kind = self.facts.embedded.get(target)
        if kind is not None:
            self._add(
                region, macro, [(Finding.EMBEDDED_BINARY, f"include_bytes! {target}: {kind}")]
            )

    # -- strings built from pieces, text decoded from bytes ----------------------------------------

    def _assembled(self, region: Region, nodes: _Nodes) -> None:
        for macro, name in nodes.macros():
            if name in ("concat", "format", "format_args") and self._first_time(region, macro):
                pieces = _macro_pieces(macro, name)
                if pieces is not None:
                    self._judge_pieces(region, macro, f"{name}!", pieces)
        for plus in nodes.outermost_plus():
            if self._first_time(region, plus):
                pieces = _plus_pieces(plus)
                self._judge_pieces(region, plus, "+", pieces)
        for receiver, (node, pieces) in nodes.push_str_chains(self.source[region.start :]).items():
            self._judge_pieces(region, node, f"{receiver}.push_str", pieces)

    def _judge_pieces(self, region: Region, node: Node, how: str, pieces: list[str]) -> None:
        """Pieces (literal values, or `_PLACEHOLDER` for run-time values) that together form a
        URL, command, secret's path or name that no single piece holds."""
        literals = [p for p in pieces if p != _PLACEHOLDER]
        if len(literals) < 2:
            return
        whole = "".join(pieces)
        new = findings_keys(whole) - set().union(*(findings_keys(p) for p in literals))
        if new:
            kinds = ", ".join(sorted({kind.value for kind, _ in new}))
            shown_text = shown(whole.replace(_PLACEHOLDER, "{..}"))
            item = f"{how} of {len(literals)} literals forms {shown_text!r} ({kinds})"
            self._add(region, node, [(Finding.ASSEMBLED_STRING, item)])

    def _decoded(self, region: Region, nodes: _Nodes) -> None:
        """Literal bytes turned into text at run time: `String::from_utf8(vec![..])`, or
        byte arrays and byte strings whose xor/subtraction with one key spells a URL,
        command or path (a decoding loop)."""
        for call, name in nodes.calls():
            if name in _DECODE_CALLS and self._first_time(region, call, "decode"):
                data = _literal_bytes(call)
                decoded = decoded_bytes(data) if data is not None else None
                if decoded is not None:
                    how, value = decoded
                    item = f"{name} of literal bytes: {shown(value)!r}"
                    if how != "text":
                        item = f"{name} of literal bytes, {how}: {shown(value)!r}"
                    self._add(region, call, [(Finding.ASSEMBLED_STRING, item)])
        runs = [(region, node, data) for node, data in nodes.literal_byte_runs()]
        runs += self._referenced_data(region)
        for data_region, data_node, data in runs:
            if not self._first_time(data_region, data_node, "decode"):
                continue
            decoded = decoded_bytes(data)
            if decoded is not None and decoded[0] != "text":
                how, value = decoded
                item = f"literal bytes, {how}, decode to {shown(value)!r}"
                self._add(data_region, data_node, [(Finding.ASSEMBLED_STRING, item)])

    def _referenced_data(self, region: Region) -> list[tuple[Region, Node, bytes]]:
        """Byte arrays and strings of the `const`/`static` items a decoding region names:
        `KEY.iter().map(|b| (b ^ 0x5a) as char)` decodes a table defined elsewhere."""
        found: list[tuple[Region, Node, bytes]] = []
        names = sorted(set(_CONSTANT_NAME.findall(self.source, region.start, region.end)))
        for name in names[:MAX_REFERENCED]:
            definition = re.search(
                rb"\b(?:const|static)\s+(?:mut\s+)?" + name + rb"\s*:[^=]{0,200}=", self.source
            )
            if definition is None:
                continue
            try:
                other, _ = self.regions.region_of(definition.start())
            except ArchiveError:
                continue  # cannot be read in items: its bytes are not decoded
            end = self.source.find(b";", definition.end(), other.end)
            span = (definition.start() - other.start, (other.end if end < 0 else end) - other.start)
            for node, data in _Nodes(_captures(other.root, [span], False)).literal_byte_runs():
                found.append((other, node, data))
        return found


# -- queries and node lookups ----------------------------------------------------------------------

Captures = Mapping[str, list[Node]]


def _spans(source: bytes, region: Region, hits: list[Spot]) -> list[tuple[int, int]]:
    """The lines (byte spans within the region) holding hits, merged when close."""
    spans: list[tuple[int, int]] = []
    base = region.start
    for offset, _ in hits:
        lo = source.rfind(b"\n", base, base + offset) + 1 - base
        hi = source.find(b"\n", base + offset, region.end)
        hi = (region.end if hi < 0 else hi) - base
        if spans and lo <= spans[-1][1] + 1024:
            spans[-1] = (spans[-1][0], max(spans[-1][1], hi))
        else:
            spans.append((max(lo, 0), hi))
    return spans


def _captures(root: Node, spans: list[tuple[int, int]], whole: bool) -> dict[str, list[Node]]:
    """Everything the findings are made from, over the hit spans (or the whole region, when
    assembled strings or decoding may draw on lines without hits)."""
    merged: dict[str, dict[tuple[int, int], Node]] = defaultdict(dict)
    ranges = [(root.start_byte, root.end_byte)] if whole else spans
    for lo, hi in ranges:
        cursor = QueryCursor(_QUERY)
        cursor.set_byte_range(lo, hi)
        for name, found in cursor.captures(root).items():
            for node in found:
                merged[name][(node.start_byte, node.end_byte)] = node
    return {
        name: sorted(nodes.values(), key=lambda n: (n.start_byte, -n.end_byte))
        for name, nodes in merged.items()
    }


class _Nodes:
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
            piece.type in _STRING_NODES and len((piece.text or b"").split()) > 2
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
            initial = _initial_literal(value)
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
            piece = _only_string_argument(args)
            if piece is None:
                continue
            receiver_text = text(receiver)
            initial = starts.get(receiver_text, _PLACEHOLDER)
            chains.setdefault(receiver_text, (callee, [initial]))[1].append(piece)
        return chains

    def literal_byte_runs(self) -> Iterator[tuple[Node, bytes]]:
        """Integer arrays (also `vec![..]` bodies) and byte strings of at least 4 bytes."""
        for node in self._arrays_by_end.values():
            values = _integers(node)
            if values is not None and len(values) >= 4 and all(0 <= v < 256 for v in values):
                yield node, bytes(values)
        for node in self._strings:
            raw = node.text or b""
            if raw.startswith((b'b"', b"br")):
                value = literal_text(text(node))
                if value is not None and len(value[0]) >= 4:
                    yield node, value[0].encode("latin-1", errors="replace")


_ATTRIBUTE_LINE = re.compile(rb'[ \t]*#!?\[(?:[^"\n\\]|"(?:[^"\\\n]|\\.)*")*\][ \t]*(?:\r?\n|\Z)')
_BLANK_OR_COMMENT_LINE = re.compile(rb"[ \t]*(?://[^\n]*)?(?:\r?\n|\Z)")


def _leading_attributes(source: bytes, start: int) -> int:
    """Where the run of whole attribute lines (each closing on its line, its strings too),
    blank lines and `//` comments that follows the first code of a file ends. The lexer is
    in code at `start` (`code_start`), so the strings in these lines are exactly those of
    the attributes; a `/*` anywhere ends the run (a comment could open there)."""
    at = start
    while at < len(source):
        line = _ATTRIBUTE_LINE.match(source, at) or _BLANK_OR_COMMENT_LINE.match(source, at)
        if line is None or line.end() == at or b"/*" in line.group(0):
            break
        at = line.end()
    return at


def _quoted_segment(line: bytes, at: int) -> bytes | None:
    """The bytes between the unescaped quotes around position `at` of `line`; None if there
    is no quote before or none after it on the line."""
    quotes = [match.end() - 1 for match in _QUOTES.finditer(line)]
    before = [q for q in quotes if q < at]
    after = [q for q in quotes if q > at]
    if not before or not after:
        return None
    return line[before[-1] + 1 : after[0]]


def _from_env(path: tuple[str, ...]) -> bool:
    """`vars()` (imported), `env::vars()`, `std::env::vars()`: not `cc.vars()`'s kind."""
    return len(path) == 1 or path[-2] == "env"


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


def _integers(node: Node) -> list[int] | None:
    """The values of an array literal (or `[..]` token tree) made of integer literals only."""
    values = []
    for child in node.named_children:
        value = _integer(text(child)) if child.type == "integer_literal" else None
        if value is None:
            return None
        values.append(value)
    return values


_INT_SUFFIX = re.compile(r"_?[ui](?:8|16|32|64|128|size)\Z")


def _integer(literal: str) -> int | None:
    digits = _INT_SUFFIX.sub("", literal).replace("_", "").lower()
    try:
        return int(digits, 0) if digits.startswith(("0x", "0o", "0b")) else int(digits, 10)
    except ValueError:
        return None


def _literal_bytes(call: Node) -> bytes | None:
    """Literal bytes passed to a decoder: `(vec![..])`, `(&[..])`, `([..])`, `(b"..")`,
    `(b"..".to_vec())`; None if the argument is anything else."""
    args = call.next_named_sibling
    if args is None or args.type != "arguments" or args.named_child_count != 1:
        return None
    node: Node | None = args.named_children[0]
    while node is not None and node.type in ("reference_expression", "call_expression"):
        if node.type == "call_expression":  # `b"..".to_vec()`
            node = node.child_by_field_name("function")
            node = node.child_by_field_name("value") if node is not None else None
        else:
            node = node.child_by_field_name("value")
    if node is None:
        return None
    if node.type == "macro_invocation":  # vec![..]
        node = next((n for n in node.named_children if n.type == "token_tree"), None)
    if node is not None and node.type in ("array_expression", "token_tree"):
        values = _integers(node)
        if values is not None and all(0 <= v < 256 for v in values):
            return bytes(values)
    elif node is not None and node.type in _STRING_NODES and (node.text or b"").startswith(b"b"):
        value = literal_text(text(node))
        if value is not None:
            return value[0].encode("latin-1", errors="replace")
    return None


def _macro_pieces(macro: Node, name: str) -> list[str] | None:
    """What `concat!(..)` joins, or what `format!(..)` makes of its literal parts: literal
    values, and `_PLACEHOLDER` for anything known only at run time."""
    args = next((n for n in macro.named_children if n.type == "token_tree"), None)
    if args is None:
        return None
    values = [_group_value(group) for group in _comma_groups(args)]
    if name == "concat":
        return values
    # format!: the format string's literal parts, its `{}` filled from literal arguments.
    if not values or values[0] == _PLACEHOLDER:
        return None
    arguments = iter(values[1:])
    pieces: list[str] = []
    at = 0
    template = values[0]
    for spec in _FORMAT_SPEC.finditer(template):
        pieces.append(template[at : spec.start()])
        if spec.group(0) in ("{{", "}}"):
            pieces.append(spec.group(0)[0])
        else:
            pieces.append(next(arguments, _PLACEHOLDER) if spec.group(0) == "{}" else _PLACEHOLDER)
        at = spec.end()
    pieces.append(template[at:])
    return [p for p in pieces if p]


def _comma_groups(tree: Node) -> Iterator[list[Node]]:
    """The tokens of a macro's argument list, split at its top-level commas."""
    group: list[Node] = []
    for child in tree.children[1:-1]:  # inside the brackets
        if child.type == ",":
            yield group
            group = []
        else:
            group.append(child)
    if group:
        yield group


def _group_value(group: list[Node]) -> str:
    if len(group) == 1 and group[0].type in _STRING_NODES:
        value = literal_text(text(group[0]))
        return value[0] if value is not None else _PLACEHOLDER
    if len(group) == 1 and group[0].type in _LITERAL_NODES:
        return text(group[0]).strip("'")
    return _PLACEHOLDER


def _plus_pieces(node: Node) -> list[str]:
    """The operands of a `+` chain, left to right: literal values or placeholders."""
    pieces: list[str] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if (
            current.type == "binary_expression"
            and current.child_by_field_name("operator") is not None
        ):
            operator = current.child_by_field_name("operator")
            if operator is not None and operator.type == "+":
                right = current.child_by_field_name("right")
                left = current.child_by_field_name("left")
                stack.extend(n for n in (right, left) if n is not None)
                continue
        value = _initial_literal(current)
        pieces.append(value if value is not None else _PLACEHOLDER)
    return pieces


_OWNED = re.compile(
    rb'^(?:&\s*)?(?:String::from\(\s*)?(?P<lit>"(?:[^"\\]|\\.)*"|r#*"[^"]*"#*)\s*\)?'
    rb"(?:\s*\.\s*(?:to_string|to_owned|into)\(\s*\))?$",
    re.S,
)


def _initial_literal(node: Node) -> str | None:
    """The literal value of `"x"`, `&"x"`, `"x".to_string()`, `String::from("x")`."""
    match = _OWNED.match((node.text or b"").strip())
    if match is None:
        return None
    value = literal_text(match.group("lit").decode("utf-8", "replace"))
    return value[0] if value is not None else None


def _only_string_argument(args: Node | None) -> str | None:
    if args is None or args.type != "arguments" or args.named_child_count != 1:
        return None
    child = args.named_children[0]
    if child.type not in _STRING_NODES:
        return None
    value = literal_text(text(child))
    return value[0] if value is not None else None


def _resolve(file: str, literal: str, from_root: bool) -> str:
    base = "" if from_root else posixpath.dirname(file)
    joined = posixpath.normpath(posixpath.join(base, literal.lstrip("/") if from_root else literal))
    return joined.removeprefix("./")
