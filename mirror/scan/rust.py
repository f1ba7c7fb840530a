"""Reading Rust source with tree-sitter to find the paths, macros and items that grant power.

Why a parser and not regexes: `use std::{fs, net::TcpStream as T}` then `T::connect(..)` is a
network call no grep sees, while `// std::net::TcpStream` in a comment or a string is not one.
Tree-sitter gives comments and string literals their own nodes, so they are never read as code.

Speed: parsing runs at ~10 MB/s, the budget is 50 MB/s. Most source cannot grant anything, so
a byte pre-filter finds lines with tokens that could matter (`unsafe`, `fs`, `TcpStream`, an
alias introduced by a `use`, ...) and only the top-level items holding them are parsed. Small
files are parsed whole. Lines that cannot hold code (see `_comment_only`) are skipped, and
`unsafe`/`extern`/`link` stop costing parses once the parser has confirmed as many as the
report still keeps. Resolution is per file: every `use` in the file (any scope) feeds one
alias table, which is an over-approximation, never an under-approximation, of Rust scoping.
"""

from __future__ import annotations

import bisect
import functools
import posixpath
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import tree_sitter_rust
from tree_sitter import Language, Node, Parser, Query, QueryCursor

from mirror.errors import ArchiveError
from mirror.scan.capabilities import Capability

Path_ = tuple[str, ...]

# Path prefixes that grant a capability. A resolved path matches when it starts with one.
# Data-only items (std::net::IpAddr, std::env::consts) are left out on purpose.
_RULES: dict[Capability, tuple[str, ...]] = {
    Capability.NET: (
        "std::net::TcpStream", "std::net::TcpListener", "std::net::UdpSocket",
        "std::net::ToSocketAddrs", "std::os::unix::net", "tokio::net", "async_std::net",
        "mio::net", "socket2", "reqwest", "hyper::client", "hyper::Client", "ureq", "curl",
        "isahc", "surf", "attohttpc",
    ),
    Capability.FS: (
        "std::fs", "tokio::fs", "async_std::fs", "fs_err", "std::os::unix::fs",
        "std::os::windows::fs",
    ),
    Capability.PROCESS: (
        "std::process::Command", "std::process::Child", "std::os::unix::process::CommandExt",
        "std::os::windows::process::CommandExt", "tokio::process", "async_process", "duct",
        "subprocess", "libc::fork", "libc::execv", "libc::execve", "libc::execvp",
        "libc::posix_spawn", "libc::posix_spawnp", "nix::unistd::fork", "nix::unistd::execv",
    ),
    Capability.ENV: (
        "std::env::var", "std::env::var_os", "std::env::vars", "std::env::vars_os",
        "std::env::set_var", "std::env::remove_var",
    ),
}  # fmt: skip
# Names that mean the capability even when we cannot see where they were imported from
# (glob imports, re-exports): nobody names an unrelated type `TcpStream`.
_BARE: dict[str, Capability] = {
    "TcpStream": Capability.NET, "TcpListener": Capability.NET, "UdpSocket": Capability.NET,
    "UnixStream": Capability.NET, "UnixListener": Capability.NET,
    "UnixDatagram": Capability.NET, "OpenOptions": Capability.FS,
}  # fmt: skip
_BARE_CALLS: dict[Path_, Capability] = {
    ("File", "open"): Capability.FS,
    ("File", "create"): Capability.FS,
}
_ENV_MACROS = frozenset({"env", "option_env"})
_INCLUDE_MACROS = frozenset({"include_bytes", "include_str", "include"})
# Compile-time variables cargo itself sets: reading them reveals nothing about the machine.
_CARGO_ENV = re.compile(r"CARGO(_|\Z)|OUT_DIR\Z")

_RULE_PATHS: tuple[tuple[Path_, Capability], ...] = tuple(
    (tuple(rule.split("::")), cap) for cap, rules in _RULES.items() for rule in rules
)
_RULES_BY_HEAD: dict[str, list[tuple[Path_, Capability]]] = {}
for _path, _cap in _RULE_PATHS:
    _RULES_BY_HEAD.setdefault(_path[0], []).append((_path, _cap))
_STOP_SEGMENTS = frozenset({"std", "os", "unix", "windows", "nix", "unistd", "libc"})
# The pre-filter's tokens. A path to a rule must spell the rule's first distinctive segment
# (`process` in std::process::Command), or use a name a `use` bound to it; that `use` spells
# the segment, and its alias becomes a token of the second pass. So later segments such as
# `Command` (also clap's Command) need not be tokens.
_TOKEN_CAPS: dict[str, frozenset[Capability]] = {}
for _path, _cap in _RULE_PATHS:
    _seg = next(s for s in _path if s not in _STOP_SEGMENTS)
    _TOKEN_CAPS[_seg] = _TOKEN_CAPS.get(_seg, frozenset()) | {_cap}
for _name, _cap in _BARE.items():
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

MAX_FINDINGS_LABELLED = 50  # unsafe items per region given a label (evidence is capped anyway)
MAX_PATH_SEGMENTS = 64  # segments; longer paths (and deeper `use` trees) are never real code
WHOLE_FILE_BYTES = 4 * 1024  # bytes; smaller files are parsed whole (cutting gains nothing)
# Where an item starts: a line at column 0 or 4 (a top-level item, or one inside an `impl`,
# `trait` or `mod`) right after a line that closed the previous item with `}` or `;`.
# Cutting only there keeps a region from starting inside a block comment or a multi-line
# string (where such lines are rare), and lets every region parse as a list of items.
_ITEM_CUT = re.compile(rb"[};]\r?\n(?:[ \t]*\r?\n)?(?=(?:    )?[A-Za-z#/])")
_CUT_WINDOW = 2048  # bytes searched back from a hit for its item's start (then 4x, 16x...)
_PATH_NODES = frozenset({"scoped_identifier", "scoped_type_identifier"})
_NAME_NODES = frozenset({"identifier", "type_identifier", "crate", "self", "super"})

_LANGUAGE = Language(tree_sitter_rust.language())
_USE_QUERY = Query(
    _LANGUAGE,
    "(use_declaration argument: (_) @use)"
    "(extern_crate_declaration name: (identifier) @crate alias: (identifier) @alias)",
)
# Bare names; only the lines with hits are queried, so capturing every identifier is cheap.
_NAME_QUERY = Query(_LANGUAGE, "(identifier) @name (type_identifier) @name")
# What `unsafe`, `extern` and `link` find; counted as items are parsed (see `_saturated`).
_LOCAL_QUERY = Query(
    _LANGUAGE,
    """
    "unsafe" @unsafe
    (foreign_mod_item) @foreign
    (function_item (function_modifiers (extern_modifier)) name: (identifier) @externfn)
    (attribute_item (attribute (identifier) @attr (#eq? @attr "link"))) @link
    """,
)
_LOCAL_CAPTURES = {
    "unsafe": Capability.UNSAFE,
    "foreign": Capability.FFI,
    "externfn": Capability.FFI,
    "link": Capability.LINKS,
}
_LOCAL_CAPS = frozenset(_LOCAL_CAPTURES.values())
_LOCAL_TOKENS = {
    b"unsafe": Capability.UNSAFE,
    b"extern": Capability.FFI,
    b"link": Capability.LINKS,
}
_THREAD = threading.local()  # a Parser per thread: scans run in worker threads, in parallel
_MACRO_QUERY = Query(_LANGUAGE, "(macro_invocation macro: (_) @name (token_tree) @args)")
_QUERY = Query(
    _LANGUAGE,
    """
    (use_declaration argument: (_) @use)
    (scoped_identifier) @path
    (scoped_type_identifier) @path
    (token_tree) @tokens
    "unsafe" @unsafe
    (foreign_mod_item) @foreign
    (function_item (function_modifiers (extern_modifier)) name: (identifier) @externfn)
    (attribute_item (attribute (identifier) @attr (#eq? @attr "link"))) @link
    """,
)


@dataclass(frozen=True)
class Finding:
    """One capability seen in one file: 1-based line and the item (resolved path, macro...)."""

    capability: Capability
    line: int
    item: str


@functools.lru_cache(maxsize=64)
def _token_regex(tokens: frozenset[str]) -> re.Pattern[bytes]:
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


@functools.lru_cache(maxsize=64)
def _tokens_for(wanted: frozenset[Capability]) -> frozenset[str]:
    return frozenset(t for t, caps in _TOKEN_CAPS.items() if caps & wanted)


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
    tokens = _tokens_for(wanted)
    if not tokens:
        return []
    pattern = _token_regex(tokens)
    hits = [(m.start(), _LOCAL_TOKENS.get(m.group())) for m in pattern.finditer(source)]
    if not hits:
        return []
    reader = _FileReader(source, file, pattern, budget)
    reader.parse_regions(hits)
    # Second pass: after `use std::env as e`, lines saying `e::var(..)` matter too.
    extra = frozenset(a for a in reader.aliases if a not in tokens)
    if extra:
        reader.pattern = _token_regex(tokens | extra)
        reader.parse_regions([(m.start(), None) for m in _token_regex(extra).finditer(source)])
    return reader.findings()


def _thread_parser() -> Parser:
    parser: Parser | None = getattr(_THREAD, "parser", None)
    if parser is None:
        parser = _THREAD.parser = Parser(_LANGUAGE)
    return parser


class _Region:
    """A parsed slice of the file and the byte span (within it) that holds hits."""

    def __init__(self, root: Node, start: int, line_offset: int) -> None:
        self.root = root
        self.start = start
        self.line_offset = line_offset
        self.lo = -1
        self.hi = -1

    def cover(self, lo: int, hi: int) -> None:
        self.lo = lo if self.lo < 0 else min(self.lo, lo)
        self.hi = max(self.hi, hi)


class _FileReader:
    def __init__(
        self,
        source: bytes,
        file: str,
        pattern: re.Pattern[bytes],
        budget: Mapping[Capability, int] | None = None,
    ) -> None:
        self.source = source
        self.file = file
        self.pattern = pattern  # what a line or macro body must mention to be worth reading
        self.regions: dict[int, _Region] = {}  # by start offset
        self.aliases: dict[str, Path_] = {}
        self.globs: list[Path_] = []
        self._parser = _thread_parser()
        # Lines confirmed to hold a finding of a capability an item-local token grants.
        self._budget = budget
        self._confirmed: dict[Capability, set[int]] = {cap: set() for cap in _LOCAL_CAPS}
        self._open: _Region | None = None  # the region hits are being added to
        self._last_region = (0, 0)  # the last `_region_of` answer: hits come in order
        self._counted = (0, 0)  # (offset, newlines before it): count forward from the last

    def _line_number(self, offset: int) -> int:
        """Newlines before `offset`, counted incrementally (regions come mostly in order)."""
        at, lines = self._counted
        if offset >= at:
            lines += self.source.count(b"\n", at, offset)
        else:
            lines = self.source.count(b"\n", 0, offset)
        self._counted = (offset, lines)
        return lines

    # -- regions -----------------------------------------------------------------------------

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
            if _comment_only(source, line_start, line_end):
                continue
            start, end = self._region_of(hit)
            region = self.regions.get(start)
            if region is None:
                line_offset = self._line_number(start)
                root = self._parser.parse(source[start:end]).root_node
                region = self.regions[start] = _Region(root, start, line_offset)
                for _, match in QueryCursor(_USE_QUERY).matches(root):
                    if "use" in match:
                        self._collect_use(match["use"][0], ())
                    elif "crate" in match and "alias" in match:
                        path = (_text(match["crate"][0]),)
                        self._alias(_text(match["alias"][0]), path)
            if region is not self._open:
                self._confirm(self._open)
                self._open = region
            region.cover(line_start - start, line_end - start)
        self._confirm(self._open)
        self._open = None

    def _saturated(self, cap: Capability) -> bool:
        budget = self._budget
        return budget is not None and len(self._confirmed[cap]) >= budget.get(cap, 0)

    def _confirm(self, region: _Region | None) -> None:
        """Count the lines of `region` that hold an `unsafe`, FFI or `#[link]` finding."""
        if region is None or self._budget is None or region.lo < 0:
            return
        cursor = QueryCursor(_LOCAL_QUERY)
        cursor.set_byte_range(region.lo, region.hi)
        for name, nodes in cursor.captures(region.root).items():
            if name not in _LOCAL_CAPTURES:
                continue  # @attr, the name inside `#[link]`
            rows = self._confirmed[_LOCAL_CAPTURES[name]]
            rows.update(node.start_point.row + region.line_offset for node in nodes)

    def _region_of(self, offset: int) -> tuple[int, int]:
        """The item holding `offset`: from the last cut at or before it to the next one."""
        source = self.source
        size = len(source)
        if size <= WHOLE_FILE_BYTES:
            return 0, size
        last = self._last_region
        if last[0] <= offset < last[1]:
            return last
        region = self._cuts_around(_ITEM_CUT, offset)
        self._last_region = region
        return region

    def _cuts_around(self, cuts: re.Pattern[bytes], offset: int) -> tuple[int, int]:
        """The last cut at or before `offset` and the first after it (0 and the size if none).

        Cuts are searched for near each hit, not over the whole file (a full pass costs as
        much as the token search itself). A hit is the start of an identifier, never inside
        a cut's `};` and blank lines, so the next cut is the first match from `offset` on."""
        source = self.source
        found = cuts.search(source, offset)
        end = found.end() if found is not None else len(source)
        window = _CUT_WINDOW
        start = 0
        while True:
            low = max(0, offset - window)
            # +5: the cut's lookahead reads up to four spaces and a letter past its end.
            for m in cuts.finditer(source, low, offset + 5):
                if m.end() <= offset:
                    start = m.end()
            if start or low == 0:
                return start, end
            window *= 4

    # -- use declarations --------------------------------------------------------------------

    def _collect_use(self, node: Node, prefix: Path_, depth: int = 0) -> None:
        if depth > MAX_PATH_SEGMENTS:
            # Real code never nests `use` lists this deep; skipping would hide the import.
            raise ArchiveError(f"{self.file}: `use` nested more than {MAX_PATH_SEGMENTS} deep")
        kind = node.type
        if kind in _PATH_NODES or kind in _NAME_NODES:
            path = _segments(node)
            if path is None:
                return
            full = prefix + path
            name = full[-2] if path == ("self",) and len(full) > 1 else full[-1]
            if path == ("self",):
                full = full[:-1]
            self._alias(name, full)
        elif kind == "use_as_clause":
            src, alias = node.child_by_field_name("path"), node.child_by_field_name("alias")
            path = _segments(src) if src is not None else None
            if path is not None and alias is not None:
                full = prefix + path
                self._alias(_text(alias), full[:-1] if full[-1:] == ("self",) else full)
        elif kind == "scoped_use_list":
            head = node.child_by_field_name("path")
            path = _segments(head) if head is not None else ()
            body = node.child_by_field_name("list")
            if path is not None and body is not None:
                self._collect_use(body, prefix + path, depth + 1)
        elif kind == "use_list":
            for child in node.named_children:
                self._collect_use(child, prefix, depth + 1)
        elif kind == "use_wildcard":
            inner = node.named_children[0] if node.named_children else None
            path = _segments(inner) if inner is not None else ()
            if path is not None and _relevant(_absolute(prefix + path)):
                self.globs.append(_absolute(prefix + path))

    def _alias(self, name: str, path: Path_) -> None:
        # Only names that lead to a capability matter; the rest would just slow resolution.
        path = _absolute(path)
        if name != "_" and _relevant(path):
            self.aliases[name] = path

    def _resolve(self, path: Path_) -> Path_ | None:
        path = _absolute(path)
        if not path or path[0] in ("crate", "self", "super", "Self"):
            return None
        if path[0] in self.aliases:
            return self.aliases[path[0]] + path[1:]
        return path

    # -- findings ----------------------------------------------------------------------------

    def findings(self) -> list[Finding]:
        found: dict[tuple[Capability, int, str], None] = {}
        for region in self.regions.values():
            # Every finding sits on a line with a token or an alias: query only those lines.
            cursor = QueryCursor(_QUERY)
            cursor.set_byte_range(region.lo, region.hi)
            captures = cursor.captures(region.root)
            cursor = QueryCursor(_NAME_QUERY)
            cursor.set_byte_range(region.lo, region.hi)
            captures["name"] = cursor.captures(region.root).get("name", [])
            cursor = QueryCursor(_MACRO_QUERY)
            cursor.set_byte_range(region.lo, region.hi)
            for _, match in cursor.matches(region.root):
                captures.setdefault("macro.name", []).extend(match["name"])
                captures.setdefault("macro.args", []).extend(match["args"])
            for cap, node, item in self._findings_in(captures):
                found[(cap, node.start_point.row + region.line_offset + 1, item)] = None
        return [Finding(cap, line, item) for cap, line, item in sorted(found, key=_order)]

    def _findings_in(self, c: dict[str, list[Node]]) -> Iterator[tuple[Capability, Node, str]]:
        # Nesting is decided from byte ranges, never `node.parent`: tree-sitter walks down
        # from the root for each parent, so on a hostile 20 000-deep tree that is quadratic.
        uses = _Spans(c.get("use", ()))
        paths = _Spans(c.get("path", ()))
        trees = _Spans(c.get("tokens", ()))
        for node in uses.outermost:
            yield from self._use_findings(node, ())
        for node in paths.outermost:
            if not uses.holds(node):
                yield from self._path_findings(node, _segments(node))
        for node in c.get("name", ()):
            name = _text(node)
            if name not in _BARE and name not in self.aliases and not self.globs:
                continue
            if not (paths.holds(node) or trees.holds(node) or uses.holds(node)):
                yield from self._path_findings(node, (name,))
        for node in trees.outermost:
            if self.pattern.search(node.text or b""):
                yield from self._token_findings(node)
        names, args = c.get("macro.name", []), c.get("macro.args", [])
        for name_node, args_node in zip(names, args, strict=True):
            yield from self._macro_findings(name_node, args_node)
        # Labelling looks at the parent: bounded, and more evidence than this is never kept.
        for node in c.get("unsafe", ())[:MAX_FINDINGS_LABELLED]:
            yield Capability.UNSAFE, node, _unsafe_item(node)
        for node in c.get("foreign", ()):
            abi = node.named_children[0] if node.named_children else None
            label = _text(abi) if abi is not None and abi.type == "extern_modifier" else "extern"
            yield Capability.FFI, node, f"{label} {{ ... }} block"
        for node in c.get("externfn", ()):
            yield Capability.FFI, node, f'extern "C" fn {_text(node)}'
        for node in c.get("link", ()):
            yield Capability.LINKS, node, " ".join(_text(node).split())[:200]

    def _use_findings(
        self, node: Node, prefix: Path_, depth: int = 0
    ) -> Iterator[tuple[Capability, Node, str]]:
        if depth > MAX_PATH_SEGMENTS:
            return
        kind = node.type
        if kind in _PATH_NODES or kind in _NAME_NODES or kind == "use_as_clause":
            src = node.child_by_field_name("path") if kind == "use_as_clause" else node
            path = _segments(src) if src is not None else None
            if path is not None:
                full = _absolute(prefix + path)
                if full and full[-1] == "self":
                    full = full[:-1]
                cap = _match(full)
                if cap is not None:
                    yield cap, node, "use " + "::".join(full)
        elif kind == "scoped_use_list":
            head = node.child_by_field_name("path")
            path = _segments(head) if head is not None else ()
            body = node.child_by_field_name("list")
            if path is not None and body is not None:
                yield from self._use_findings(body, prefix + path, depth + 1)
        elif kind == "use_list":
            for child in node.named_children:
                yield from self._use_findings(child, prefix, depth + 1)
        elif kind == "use_wildcard":
            inner = node.named_children[0] if node.named_children else None
            path = _segments(inner) if inner is not None else ()
            cap = _match(_absolute(prefix + path)) if path is not None else None
            if cap is not None and path is not None:
                yield cap, node, "use " + "::".join((*_absolute(prefix + path), "*"))

    def _path_findings(
        self, node: Node, path: Path_ | None
    ) -> Iterator[tuple[Capability, Node, str]]:
        if path is None:
            return
        resolved = self._resolve(path)
        if resolved is None:
            return
        cap = _match(resolved)
        if cap is None and path[0] not in self.aliases:
            for glob in self.globs:
                cap = _match(glob + path)
                if cap is not None:
                    resolved = glob + path
                    break
        if cap is None and len(path) == 1 and path[0] in _BARE:
            cap = _BARE[path[0]]
        if cap is None and path[:2] in _BARE_CALLS and path[0] not in self.aliases:
            cap = _BARE_CALLS[path[:2]]
        if cap is not None:
            yield cap, node, "::".join(resolved)

    def _token_findings(self, tree: Node) -> Iterator[tuple[Capability, Node, str]]:
        """Paths inside macro bodies are flat tokens: rebuild `a::b::c` runs and resolve them."""
        run: list[Node] = []
        expect_name = True
        for tok in _tokens(tree):
            kind = tok.type
            if kind == "::":
                expect_name = True
                continue
            if kind in _NAME_NODES and expect_name:
                run.append(tok)
                expect_name = False
                continue
            if run:
                yield from self._path_findings(run[0], tuple(_text(t) for t in run))
            run = [tok] if kind in _NAME_NODES else []
            expect_name = False
        if run:
            yield from self._path_findings(run[0], tuple(_text(t) for t in run))

    def _macro_findings(self, name: Node, args: Node) -> Iterator[tuple[Capability, Node, str]]:
        path = _segments(name)
        macro = path[-1] if path else ""
        if macro in _ENV_MACROS:
            literal = _first_string(args)
            if literal is None or not _CARGO_ENV.match(literal):
                shown = f'"{literal}"' if literal is not None else "..."
                yield Capability.ENV, name, f"{macro}!({shown})"
        elif macro in _INCLUDE_MACROS:
            literal = _first_string(args)
            only_literal = literal is not None and len(args.named_children) == 1
            if not only_literal:
                # A computed path (usually concat!(env!("OUT_DIR"), ...)) is not in the crate.
                shown = " ".join(_text(args).split())[:120]
                yield Capability.INCLUDE_OUTSIDE, name, f"{macro}!{shown}"
            elif literal is not None and _outside_crate(self.file, literal):
                yield Capability.INCLUDE_OUTSIDE, name, f'{macro}!("{literal}")'


def _order(key: tuple[Capability, int, str]) -> tuple[int, str, str]:
    return key[1], key[0].value, key[2]


def _text(node: Node) -> str:
    data = node.text
    return data.decode("utf-8", errors="replace") if data is not None else ""


def _segments(node: Node | None) -> Path_ | None:
    """`a::b::C` as ("a", "b", "C"); a leading `::` gives an empty first segment.

    Iterative and capped: a hostile file's 20 000-segment path must cost no more than a
    real one (and no Python recursion)."""
    names: list[str] = []
    while node is not None:
        if len(names) > MAX_PATH_SEGMENTS:
            return None
        kind = node.type
        if kind in _NAME_NODES or kind in ("metavariable", "primitive_type"):
            names.append(_text(node))
            break
        if kind == "generic_type":
            node = node.child_by_field_name("type")
            continue
        if kind not in _PATH_NODES:
            return None
        name = node.child_by_field_name("name")
        if name is None:
            return None
        names.append(_text(name))
        node = node.child_by_field_name("path")
        if node is None:
            names.append("")  # leading `::`
    return tuple(reversed(names))


def _absolute(path: Path_) -> Path_:
    return path[1:] if path and path[0] == "" else path


def _match(path: Path_) -> Capability | None:
    for rule, cap in _RULES_BY_HEAD.get(path[0] if path else "", ()):
        if path[: len(rule)] == rule:
            return cap
    return None


@functools.lru_cache(maxsize=4096)
def _relevant(path: Path_) -> bool:
    """Does `path` grant a capability, or lead to one (`std::env` leads to `std::env::var`)?"""
    return bool(path) and any(
        path[: len(rule)] == rule or rule[: len(path)] == path for rule, _ in _RULE_PATHS
    )


class _Spans:
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


def _tokens(tree: Node) -> Iterator[Node]:
    """The flat tokens of a macro body in order; string literals and comments come out whole
    (a string breaks a path run, and its content is never read as code). Iterative: macro
    bodies can nest thousands of brackets deep."""
    stack = [iter(tree.children)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
        elif child.type == "token_tree":
            stack.append(iter(child.children))
        else:
            yield child


def _first_string(args: Node) -> str | None:
    for child in args.named_children:
        if child.type in ("string_literal", "raw_string_literal"):
            content = [c for c in child.named_children if c.type == "string_content"]
            return _text(content[0]) if content else ""
    return None


def _outside_crate(file: str, literal: str) -> bool:
    """Does `include_*!("literal")` in `file` name a file outside the crate root?"""
    if literal.startswith(("/", "\\")) or (len(literal) > 1 and literal[1] == ":"):
        return True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(file), literal))
    return joined == ".." or joined.startswith("../")


def _comment_only(source: bytes, start: int, end: int) -> bool:
    """Is the line `source[start:end]` certainly not code: it starts with `//` and holds no
    `"` and no `*/`? At the line's start the lexer is in code (then `//` comments out the
    rest), in a string (which cannot end without a `"`) or in a block comment (which cannot
    end without `*/`): in none of these can a later part of the line be code."""
    text = source[start:end].lstrip()
    return text.startswith(b"//") and b'"' not in text and b"*/" not in text


def _unsafe_item(node: Node) -> str:
    parent = node.parent
    kind = parent.type if parent is not None else ""
    if kind == "unsafe_block":
        return "unsafe block"
    if kind == "function_modifiers" and parent is not None and parent.parent is not None:
        name = parent.parent.child_by_field_name("name")
        return f"unsafe fn {_text(name)}" if name is not None else "unsafe fn pointer type"
    if kind == "impl_item":
        return "unsafe impl"
    if kind == "trait_item":
        return "unsafe trait"
    if kind == "token_tree":
        return "unsafe (in macro body)"
    return "unsafe"
