"""Reading Rust source with tree-sitter to find the paths, macros and items that grant power.

Why a parser and not regexes: `use std::{fs, net::TcpStream as T}` then `T::connect(..)` is a
network call no grep sees, while `// std::net::TcpStream` in a comment or a string is not one.
Tree-sitter gives comments and string literals their own nodes, so they are never read as code.

The steps, one module each: a byte pre-filter finds lines with tokens that could matter
(`prefilter`); only the items holding them are parsed, each whole (`regions`); names are
resolved through the file's `use` declarations (`resolve`) against the capability rules
(`rules`); macro bodies, which tree-sitter leaves as tokens, are read token by token
(`macro_tokens`). `unsafe`/`extern`/`link` stop costing parses once the parser has
confirmed as many as the report still keeps.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from tree_sitter import Node, QueryCursor

from mirror.scan.macro_tokens import read_macro_body
from mirror.scan.prefilter import (
    Hit,
    alias_regex,
    find_tokens,
    is_token,
    mentions_token,
    use_words,
)
from mirror.scan.regions import Captures, Region, Regions
from mirror.scan.report import Capability
from mirror.scan.resolve import AliasTable, Found
from mirror.scan.rules import BARE, CARGO_ENV, ENV_MACROS, INCLUDE_MACROS, METHODS
from mirror.scan.syntax import (
    QUERY,
    USE_QUERY,
    Spans,
    first_string,
    segments,
    text,
    unsafe_item,
)

MAX_FINDINGS_LABELLED = 50  # unsafe items per region given a label (evidence is capped anyway)
MAX_USE_WORDS = 32  # `use`/`crate` words in a region looked up one by one (then: one query)
_LOCAL_CAPTURES = {
    "unsafe": Capability.UNSAFE,
    "foreign": Capability.FFI,
    "externfn": Capability.FFI,
    "link": Capability.LINKS,
}
_LOCAL_CAPS = frozenset(_LOCAL_CAPTURES.values())
_BARE_BYTES = frozenset(name.encode() for name in BARE)


@dataclass(frozen=True)
class Finding:
    """One capability seen in one file: 1-based line and the item (resolved path, macro...)."""

    capability: Capability
    line: int
    item: str


def scan_rust(
    source: bytes,
    file: str,
    wanted: frozenset[Capability] = frozenset(Capability),
    budget: Mapping[Capability, int] | None = None,
    regions: Regions | None = None,
    starts: list[tuple[int, int]] | None = None,
) -> list[Finding]:
    """Capabilities used by one Rust file (`file` is its path inside the crate).

    `budget` (evidence still wanted per capability, default unlimited) lets the reader stop
    parsing items for `unsafe`, `extern` and `#[link]` once enough of them are confirmed:
    the findings returned for those then still include the first `budget` lines.
    `regions` shares parsed items with other readers of the same file; `starts`, the
    pre-filter's scan (`prefilter.find_tokens`), if the caller made it already."""
    hits = find_tokens(source, wanted, starts)
    if not hits:
        return []
    reader = _FileReader(source, file, wanted, budget, regions or Regions(source, file))
    reader.parse_regions(hits)
    # Second pass: after `use std::env as e`, lines saying `e::var(..)` matter too.
    extra = frozenset(a for a in reader.names.aliases if not is_token(a, wanted))
    if extra:
        reader.aliases = alias_regex(extra)
        reader.parse_regions([(m.start(), None) for m in reader.aliases.finditer(source)])
    return reader.findings()


class _FileReader:
    def __init__(
        self,
        source: bytes,
        file: str,
        wanted: frozenset[Capability],
        budget: Mapping[Capability, int] | None,
        regions: Regions,
    ) -> None:
        self.source = source
        self.file = file
        self.wanted = wanted
        self.aliases: re.Pattern[bytes] | None = None  # names bound by `use`, once collected
        self.regions = regions
        self.names = AliasTable(file)
        # Lines confirmed to hold a finding of a capability an item-local token grants.
        self._budget = budget
        self._confirmed: dict[Capability, set[int]] = {cap: set() for cap in _LOCAL_CAPS}
        self._open: Region | None = None  # the region hits are being added to
        self._code_start = regions.code_start  # hits before it are in the leading comments
        self._read_trees: set[tuple[int, int, int, int]] = set()  # macro bodies read, by place

    def parse_regions(self, hits: list[Hit]) -> None:
        """Parse the items holding `hits` (once each) and note which of their lines matter.

        Each hit is (offset, local): `local` is the one capability its token (`unsafe`,
        `extern`, `link`) can grant, by what the item itself says (never through a `use`)."""
        source = self.source
        for hit, local in hits:
            if hit < self._code_start or (local is not None and self._saturated(local)):
                continue
            line_start = source.rfind(b"\n", 0, hit) + 1
            line_end = source.find(b"\n", hit)
            line_end = len(source) if line_end < 0 else line_end
            if self.regions.comment_line(line_start, line_end):
                continue
            region, fresh = self.regions.region_of(hit)
            if fresh:
                self._collect_uses(region)
            if region is not self._open:
                self._confirm(self._open, closed_only=False)
                self._open = region
            region.cover(line_start - region.start, line_end - region.start)
            if len(region.spans) > region.confirmed + 1:
                self._confirm(region, closed_only=True)
        self._confirm(self._open, closed_only=False)
        self._open = None

    def _collect_uses(self, region: Region) -> None:
        """Feed the alias table from the `use` and `extern crate .. as` in a fresh region.

        Each declaration holds the word `use` or `crate`: looking up the node at each word
        costs a fraction of a query over the whole region. Past `MAX_USE_WORDS` words, one
        query is cheaper (and each lookup walks down from the root: bounded, if deep)."""
        start = region.start
        words = use_words(self.source[start : region.end])
        if len(words) > MAX_USE_WORDS:
            for _, match in QueryCursor(USE_QUERY).matches(region.root):
                if "use" in match:
                    self.names.collect_use(match["use"][0], ())
                elif "crate" in match and "alias" in match:
                    self._extern_crate(match["crate"][0], match["alias"][0])
            return
        root = region.root
        for lo, hi in words:
            node = root.named_descendant_for_byte_range(lo, hi)
            if node is None:
                continue
            if node.type == "use_declaration":
                argument = node.child_by_field_name("argument")
                if argument is not None:
                    self.names.collect_use(argument, ())
            elif node.type == "crate" and (parent := node.parent) is not None:
                name = parent.child_by_field_name("name")
                alias = parent.child_by_field_name("alias")
                is_decl = parent.type == "extern_crate_declaration"
                if is_decl and name is not None and alias is not None:
                    self._extern_crate(name, alias)

    def _extern_crate(self, name: Node, alias: Node) -> None:
        self.names.alias(text(alias), (text(name),))

    def _saturated(self, cap: Capability) -> bool:
        budget = self._budget
        return budget is not None and len(self._confirmed[cap]) >= budget.get(cap, 0)

    def _confirm(self, region: Region | None, closed_only: bool) -> None:
        """Count the lines of `region` that hold an `unsafe`, FFI or `#[link]` finding: all
        its spans, or (`closed_only`) all but the last, which later hits may still extend."""
        if region is None or self._budget is None:
            return
        upto = len(region.spans) - 1 if closed_only else len(region.spans)
        for lo, hi in region.spans[region.confirmed : upto]:
            # Kept for `findings`, which queries again only a span that grew since.
            captures = region.captures[lo, hi] = _captures(region.root, lo, hi)
            for name, cap in _LOCAL_CAPTURES.items():
                rows = self._confirmed[cap]
                rows.update(node.start_point.row + region.line_offset for node in captures[name])
        region.confirmed = max(region.confirmed, upto)

    def findings(self) -> list[Finding]:
        found: dict[tuple[Capability, int, str], None] = {}
        for region in self.regions.parsed.values():
            if region is None:
                continue  # did not parse cleanly; its hits were read in a wider region
            for lo, hi in region.spans:
                # Every finding sits on a line with a token or an alias: query only those.
                captures = region.captures.get((lo, hi))
                if captures is None:  # not counted (no budget), or grew since
                    captures = _captures(region.root, lo, hi)
                for cap, node, item in self._findings_in(captures, (region.start, region.end)):
                    found[(cap, node.start_point.row + region.line_offset + 1, item)] = None
        return [Finding(cap, line, item) for cap, line, item in sorted(found, key=_order)]

    def _findings_in(self, c: dict[str, list[Node]], region: tuple[int, int]) -> Iterator[Found]:
        # Nesting is decided from byte ranges, never `node.parent`: tree-sitter walks down
        # from the root for each parent, so on a hostile 20 000-deep tree that is quadratic.
        names = self.names
        uses = Spans(c.get("use", ()))
        paths = Spans(c.get("path", ()))
        trees = Spans(c.get("tokens", ()))
        for node in uses.outermost:
            yield from names.use_findings(node, ())
        for node in paths.outermost:
            if not uses.holds(node):
                yield from names.path_findings(node, segments(node))
        # Only bare names and aliases matter (any name, after a glob import): most names are
        # ruled out as bytes, undecoded. A non-ASCII one is decoded, as replacement
        # characters can make two byte strings one name.
        known = None if names.globs else _BARE_BYTES | {a.encode() for a in names.aliases}
        for node in c.get("name", ()):
            raw = node.text or b""
            if known is not None and raw.isascii() and raw not in known:
                continue
            name = text(node)
            if name not in BARE and name not in names.aliases and not names.globs:
                continue
            if not (paths.holds(node) or trees.holds(node) or uses.holds(node)):
                yield from names.path_findings(node, (name,))
        for node in trees.outermost:
            # A macro body longer than the gap between two spans is captured by each: its
            # findings (same tree, same lines) are all in already after the first reading.
            key = (*region, node.start_byte, node.end_byte)
            if key in self._read_trees:
                continue
            self._read_trees.add(key)
            if self._mentions(node.text or b""):
                body = read_macro_body(node)
                for start, path in body.paths:
                    yield from names.path_findings(start, path)
                for start, path in body.calls:
                    yield from names.call_findings(start, path)
                yield from body.local
        for node in c.get("method", ()):
            cap = METHODS.get(text(node))
            if cap is not None:
                yield cap, node, f".{text(node)}()"
        for node in c.get("macro", ()):
            # The query matched only invocations with both: `m!(..)`, `a::m![..]`, `m! {..}`.
            name_node = node.child_by_field_name("macro")
            args_node = next((n for n in node.named_children if n.type == "token_tree"), None)
            if name_node is not None and args_node is not None:
                yield from self._macro_findings(name_node, args_node)
        # Labelling looks at the parent: bounded, and more evidence than this is never kept.
        unsafe = sorted(c.get("unsafe", ()), key=lambda n: n.start_byte)  # first lines first
        for node in unsafe[:MAX_FINDINGS_LABELLED]:
            yield Capability.UNSAFE, node, unsafe_item(node)
        for node in c.get("foreign", ()):
            abi = node.named_children[0] if node.named_children else None
            label = text(abi) if abi is not None and abi.type == "extern_modifier" else "extern"
            yield Capability.FFI, node, f"{label} {{ ... }} block"
        for node in c.get("externfn", ()):
            yield Capability.FFI, node, f'extern "C" fn {text(node)}'
        for node in c.get("link", ()):
            yield Capability.LINKS, node, " ".join(text(node).split())[:200]

    def _mentions(self, body: bytes) -> bool:
        """Is a macro body worth reading token by token: does it name a token or an alias?"""
        if mentions_token(body, self.wanted):
            return True
        return self.aliases is not None and self.aliases.search(body) is not None

    def _macro_findings(self, name: Node, args: Node) -> Iterator[Found]:
        path = segments(name)
        macro = path[-1] if path else ""
        if macro in ENV_MACROS:
            literal = first_string(args)
            if literal is None or not CARGO_ENV.match(literal):
                shown = f'"{literal}"' if literal is not None else "..."
                yield Capability.ENV, name, f"{macro}!({shown})"
        elif macro in INCLUDE_MACROS:
            literal = first_string(args)
            only_literal = literal is not None and len(args.named_children) == 1
            if not only_literal:
                # A computed path (usually concat!(env!("OUT_DIR"), ...)) is not in the crate.
                shown = " ".join(text(args).split())[:120]
                yield Capability.INCLUDE_OUTSIDE, name, f"{macro}!{shown}"
            elif literal is not None and _outside_crate(self.file, literal):
                yield Capability.INCLUDE_OUTSIDE, name, f'{macro}!("{literal}")'


def _captures(root: Node, lo: int, hi: int) -> Captures:
    """Everything the findings are made from, in the byte span `lo:hi` of a parsed region."""
    cursor = QueryCursor(QUERY)
    cursor.set_byte_range(lo, hi)
    return defaultdict(list, cursor.captures(root))


def _order(key: tuple[Capability, int, str]) -> tuple[int, str, str]:
    return key[1], key[0].value, key[2]


def _outside_crate(file: str, literal: str) -> bool:
    """Does `include_*!("literal")` in `file` name a file outside the crate root?"""
    if literal.startswith(("/", "\\")) or (len(literal) > 1 and literal[1] == ":"):
        return True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(file), literal))
    return joined == ".." or joined.startswith("../")
