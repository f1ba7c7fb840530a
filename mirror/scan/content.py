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

import posixpath
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tree_sitter import Node

from mirror.errors import ArchiveError
from mirror.scan.content_nodes import Nodes, captures, hit_spans
from mirror.scan.content_tokens import Hit, Token, content_hits
from mirror.scan.literals import (
    HOME_VARIABLES,
    MIN_ESCAPES,
    OID_LINE,
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
from mirror.scan.pieces import (
    PLACEHOLDER,
    integer,
    integers,
    literal_bytes,
    macro_pieces,
    plus_pieces,
)
from mirror.scan.regions import Region, Regions
from mirror.scan.report import Finding
from mirror.scan.syntax import first_string, segments, text

Spot = tuple[int, Token]  # a hit that needs parsing: (offset, token)
MAX_PER_KIND = 20  # findings kept per kind per file (the report keeps 20 per crate)
MAX_REFERENCED = 16  # constants a decoding region names whose bytes are decoded too
_STRING_TOKENS = frozenset({Token.STRING, Token.URL, Token.ADDRESS})
_DECODE_CALLS = frozenset({"from_utf8", "from_utf8_lossy", "from_utf8_unchecked"})
_QUOTES = re.compile(rb'(?<!\\)(?:\\\\)*"')  # a quote not escaped by a backslash
_RAW_STRING = re.compile(rb"\br#*\"")
_DASH_C = re.compile(rb'"(?:-c|/[cC])"')
_CONSTANT_NAME = re.compile(rb"\b[A-Z][A-Z0-9_]{2,}\b")
_TEST_ATTRIBUTE = re.compile(rb"#\[\s*(?:cfg\s*\(\s*test\s*\)|test)\s*\]")
_TEST_ITEMS = frozenset({"mod_item", "function_item", "impl_item", "const_item", "static_item"})


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
        a literal at all). Raw strings, which may hold quotes, are always parsed. Also: an
        array of codes that spells no text, and a method called `vars`."""
        if token is Token.ENV_VARS:
            # `cc.vars()` is some type's method; `vars()`, `env::vars()` may be the env's.
            name = self.source.rfind(b"vars", line_start, offset + 1)
            return name > 0 and self.source[name - 1 : name] == b"."
        if token is Token.TEXT_ARRAY:
            values = re.findall(rb"[0-9a-fA-FxX]+", self.source[match_start : offset + 1])
            numbers = [integer(v.decode("ascii")) for v in values]
            return text_array([n for n in numbers if n is not None]) is None
        if token not in _STRING_TOKENS:
            return False
        line = self.source[line_start:line_end]
        at = offset - line_start
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
        oid_line = token is Token.ADDRESS and OID_LINE.search(line, 0, at) is not None
        return not self._may_find(segment, line_start + at, in_attribute, oid_line)

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

    def _may_find(self, segment: bytes, offset: int, in_attribute: bool, oid_line: bool) -> bool:
        """Could a literal with this text (as written) give a finding?"""
        raw = segment.decode("utf-8", errors="replace")
        value = literal_text(f'"{raw}"') if "\\" in raw else (raw, 0)
        texts = {raw} if value is None else {raw, value[0]}
        for text_value in texts:
            name = text_value.strip()
            found = classify(text_value, 0, in_attribute=in_attribute, oid_line=oid_line)
            if found or name in HOME_VARIABLES:
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
        offsets = [offset for offset, _ in local]
        nodes = Nodes(captures(region.root, hit_spans(self.source, region, offsets), whole))
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

    def _string(self, region: Region, node: Node, nodes: Nodes) -> None:
        if not self._first_time(region, node):
            return
        value = literal_text(text(node))
        if value is None:
            return
        content, escapes = value
        in_attribute = nodes.in_attribute(node)
        line_start = self.source.rfind(b"\n", 0, region.start + node.start_byte) + 1
        oid_line = (
            OID_LINE.search(self.source, line_start, region.start + node.start_byte) is not None
        )
        prose = nodes.in_prose_concat(node)
        found = classify(content, escapes, self.own, in_attribute, oid_line, prose)
        if not in_attribute:
            self._env_name(node, content, nodes, found)
            if content.strip() in SHELLS and self._with_dash_c(region, node):
                found.append((Finding.SHELL_COMMAND, f"shell {content.strip()!r} with -c"))
        self._add(region, node, found)

    def _env_name(self, node: Node, name: str, nodes: Nodes, found: list[Found]) -> None:
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
        values = integers(array)
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

    def _assembled(self, region: Region, nodes: Nodes) -> None:
        for macro, name in nodes.macros():
            if name in ("concat", "format", "format_args") and self._first_time(region, macro):
                pieces = macro_pieces(macro, name)
                if pieces is not None:
                    self._judge_pieces(region, macro, f"{name}!", pieces)
        for plus in nodes.outermost_plus():
            if self._first_time(region, plus):
                pieces = plus_pieces(plus)
                self._judge_pieces(region, plus, "+", pieces)
        for receiver, (node, pieces) in nodes.push_str_chains(self.source[region.start :]).items():
            self._judge_pieces(region, node, f"{receiver}.push_str", pieces)

    def _judge_pieces(self, region: Region, node: Node, how: str, pieces: list[str]) -> None:
        """Pieces (literal values, or `PLACEHOLDER` for run-time values) that together form a
        URL, command, secret's path or name that no single piece holds."""
        literals = [p for p in pieces if p != PLACEHOLDER]
        if len(literals) < 2:
            return
        whole = "".join(pieces)
        new = findings_keys(whole) - set().union(*(findings_keys(p) for p in literals))
        if new:
            kinds = ", ".join(sorted({kind.value for kind, _ in new}))
            shown_text = shown(whole.replace(PLACEHOLDER, "{..}"))
            item = f"{how} of {len(literals)} literals forms {shown_text!r} ({kinds})"
            self._add(region, node, [(Finding.ASSEMBLED_STRING, item)])

    def _decoded(self, region: Region, nodes: Nodes) -> None:
        """Literal bytes turned into text at run time: `String::from_utf8(vec![..])`, or
        byte arrays and byte strings whose xor/subtraction with one key spells a URL,
        command or path (a decoding loop)."""
        for call, name in nodes.calls():
            if name in _DECODE_CALLS and self._first_time(region, call, "decode"):
                data = literal_bytes(call)
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
            for node, data in Nodes(captures(other.root, [span], False)).literal_byte_runs():
                found.append((other, node, data))
        return found


# -- queries and node lookups ----------------------------------------------------------------------

Captures = Mapping[str, list[Node]]


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


def _resolve(file: str, literal: str, from_root: bool) -> str:
    base = "" if from_root else posixpath.dirname(file)
    joined = posixpath.normpath(posixpath.join(base, literal.lstrip("/") if from_root else literal))
    return joined.removeprefix("./")
