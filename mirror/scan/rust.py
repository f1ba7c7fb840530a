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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from tree_sitter import Node, QueryCursor

from mirror.scan.capabilities import Capability
from mirror.scan.macro_tokens import read_macro_body
from mirror.scan.prefilter import LOCAL_TOKENS, comment_only, token_regex, tokens_for
from mirror.scan.regions import Region, Regions
from mirror.scan.resolve import AliasTable, Found
from mirror.scan.rules import BARE, CARGO_ENV, ENV_MACROS, INCLUDE_MACROS
from mirror.scan.syntax import (
    LOCAL_QUERY,
    MACRO_QUERY,
    NAME_QUERY,
    QUERY,
    USE_QUERY,
    Spans,
    first_string,
    segments,
    text,
    unsafe_item,
)

MAX_FINDINGS_LABELLED = 50  # unsafe items per region given a label (evidence is capped anyway)
_LOCAL_CAPTURES = {
    "unsafe": Capability.UNSAFE,
    "foreign": Capability.FFI,
    "externfn": Capability.FFI,
    "link": Capability.LINKS,
}
_LOCAL_CAPS = frozenset(_LOCAL_CAPTURES.values())
_USE_WORDS = re.compile(rb"\b(?:use|crate)\b")


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
) -> list[Finding]:
    """Capabilities used by one Rust file (`file` is its path inside the crate).

    `budget` (evidence still wanted per capability, default unlimited) lets the reader stop
    parsing items for `unsafe`, `extern` and `#[link]` once enough of them are confirmed:
    the findings returned for those then still include the first `budget` lines."""
    tokens = tokens_for(wanted)
    if not tokens:
        return []
    pattern = token_regex(tokens)
    hits = [(m.start(), LOCAL_TOKENS.get(m.group())) for m in pattern.finditer(source)]
    if not hits:
        return []
    reader = _FileReader(source, file, budget)
    reader.pattern = pattern
    reader.parse_regions(hits)
    # Second pass: after `use std::env as e`, lines saying `e::var(..)` matter too.
    extra = frozenset(a for a in reader.names.aliases if a not in tokens)
    if extra:
        reader.pattern = token_regex(tokens | extra)
        reader.parse_regions([(m.start(), None) for m in token_regex(extra).finditer(source)])
    return reader.findings()


class _FileReader:
    def __init__(self, source: bytes, file: str, budget: Mapping[Capability, int] | None) -> None:
        self.source = source
        self.file = file
        self.pattern = token_regex(frozenset())  # what a macro body must mention to be read
        self.regions = Regions(source)
        self.names = AliasTable(file)
        # Lines confirmed to hold a finding of a capability an item-local token grants.
        self._budget = budget
        self._confirmed: dict[Capability, set[int]] = {cap: set() for cap in _LOCAL_CAPS}
        self._open: Region | None = None  # the region hits are being added to

    def parse_regions(self, hits: list[tuple[int, Capability | None]]) -> None:
        """Parse the items holding `hits` (once each) and note which of their lines matter.

        Each hit is (offset, local): `local` is the one capability its token (`unsafe`,
        `extern`, `link`) can grant, by what the item itself says (never through a `use`)."""
        source = self.source
        for hit, local in hits:
            if local is not None and self._saturated(local):
                continue
            line_start = source.rfind(b"\n", 0, hit) + 1
            line_end = source.find(b"\n", hit)
            line_end = len(source) if line_end < 0 else line_end
            if comment_only(source, line_start, line_end):
                continue
            region, fresh = self.regions.region_of(hit)
            # A region without the words cannot hold a `use` or an `extern crate .. as`.
            if fresh and _USE_WORDS.search(source, region.start, region.end):
                for _, match in QueryCursor(USE_QUERY).matches(region.root):
                    if "use" in match:
                        self.names.collect_use(match["use"][0], ())
                    elif "crate" in match and "alias" in match:
                        path = (text(match["crate"][0]),)
                        self.names.alias(text(match["alias"][0]), path)
            if region is not self._open:
                self._confirm(self._open, closed_only=False)
                self._open = region
            region.cover(line_start - region.start, line_end - region.start)
            if len(region.spans) > region.confirmed + 1:
                self._confirm(region, closed_only=True)
        self._confirm(self._open, closed_only=False)
        self._open = None

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
            cursor = QueryCursor(LOCAL_QUERY)
            cursor.set_byte_range(lo, hi)
            for name, nodes in cursor.captures(region.root).items():
                if name not in _LOCAL_CAPTURES:
                    continue  # @attr, the name inside `#[link]`
                rows = self._confirmed[_LOCAL_CAPTURES[name]]
                rows.update(node.start_point.row + region.line_offset for node in nodes)
        region.confirmed = max(region.confirmed, upto)

    def findings(self) -> list[Finding]:
        found: dict[tuple[Capability, int, str], None] = {}
        for region in self.regions.parsed.values():
            if region is None:
                continue  # did not parse cleanly; its hits were read in a wider region
            for lo, hi in region.spans:
                # Every finding sits on a line with a token or an alias: query only those.
                for cap, node, item in self._findings_in(_captures(region.root, lo, hi)):
                    found[(cap, node.start_point.row + region.line_offset + 1, item)] = None
        return [Finding(cap, line, item) for cap, line, item in sorted(found, key=_order)]

    def _findings_in(self, c: dict[str, list[Node]]) -> Iterator[Found]:
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
        for node in c.get("name", ()):
            name = text(node)
            if name not in BARE and name not in names.aliases and not names.globs:
                continue
            if not (paths.holds(node) or trees.holds(node) or uses.holds(node)):
                yield from names.path_findings(node, (name,))
        for node in trees.outermost:
            if self.pattern.search(node.text or b""):
                body = read_macro_body(node)
                for start, path in body.paths:
                    yield from names.path_findings(start, path)
                yield from body.local
        macro_names, args = c.get("macro.name", []), c.get("macro.args", [])
        for name_node, args_node in zip(macro_names, args, strict=True):
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


def _captures(root: Node, lo: int, hi: int) -> dict[str, list[Node]]:
    """Everything the findings are made from, in the byte span `lo:hi` of a parsed region."""
    cursor = QueryCursor(QUERY)
    cursor.set_byte_range(lo, hi)
    captures = cursor.captures(root)
    cursor = QueryCursor(NAME_QUERY)
    cursor.set_byte_range(lo, hi)
    captures["name"] = cursor.captures(root).get("name", [])
    cursor = QueryCursor(MACRO_QUERY)
    cursor.set_byte_range(lo, hi)
    for _, match in cursor.matches(root):
        captures.setdefault("macro.name", []).extend(match["name"])
        captures.setdefault("macro.args", []).extend(match["args"])
    return captures


def _order(key: tuple[Capability, int, str]) -> tuple[int, str, str]:
    return key[1], key[0].value, key[2]


def _outside_crate(file: str, literal: str) -> bool:
    """Does `include_*!("literal")` in `file` name a file outside the crate root?"""
    if literal.startswith(("/", "\\")) or (len(literal) > 1 and literal[1] == ":"):
        return True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(file), literal))
    return joined == ".." or joined.startswith("../")
