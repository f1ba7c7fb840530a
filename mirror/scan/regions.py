"""Which slice of a Rust file to parse around a hit: the item holding it, parsed whole.

Parsing a whole large file costs ten times the byte pre-filter, so the reader parses only
the items around hits. Item boundaries are guessed from layout (`_ITEM_CUT`); a guess is
only trusted if its slice parses cleanly, and otherwise the slice grows: first to
top-level items only, then to the whole file. A guess can be wrong: a statement at column 4
in a top-level `fn` body looks like an `impl` member, and a fn parsed in pieces would lose
its `extern "C"` or have `unsafe fn f` labelled a fn pointer type (a false negative an
attacker can aim for). A piece that starts or ends inside an item leaves an unbalanced
bracket, which tree-sitter reports as an error; a clean piece is a run of complete items
(or statements, parsed the same on their own as in their fn).
"""

from __future__ import annotations

import re
from collections import defaultdict

from tree_sitter import Node

from mirror.errors import ArchiveError
from mirror.scan.prefilter import code_start, comment_only
from mirror.scan.syntax import thread_parser

WHOLE_FILE_BYTES = 4 * 1024  # bytes; smaller files are parsed whole (cutting gains nothing)
# bytes parsed at once: a tree costs 25-40 bytes of memory per byte of source, and a scan
# must stay within 128 MB whatever the crate holds (a 7 MB file parsed whole took 240 MB).
MAX_PARSE_BYTES = 1024 * 1024
# Where an item may start: a line at column 0 or 4 (a top-level item, or one inside an
# `impl`, `trait` or `mod`) right after a line that closed the previous item with `}` or `;`.
# Cutting only there keeps a slice from starting inside a block comment or a multi-line
# string (where such lines are rare; a slice that does fails to parse and grows). Also
# before a column-0 `}` that closes a container: its last member then ends a slice without
# the container's `}`, which would otherwise unbalance it and pull in the whole container.
_ITEM_CUT = re.compile(rb"[};]\r?\n(?:[ \t]*\r?\n)?(?=(?:    )?[A-Za-z#/]|\}\r?\n)")
_TOP_CUT = re.compile(rb"[};]\r?\n(?:[ \t]*\r?\n)?(?=[A-Za-z#/])")  # column 0 only
_MERGE_GAP = 1024  # bytes between two hit spans of a region that are queried as one
# Cuts a region may grow by to balance its braces: a few within an `impl` (then: top-level
# items only), many at the top level (then: the whole file).
_MAX_ITEM_WIDENING = 8
_MAX_TOP_WIDENING = 256
# A line opening a container whose members are items: `pub(crate) unsafe impl<T> X for Y {`,
# after a few lines of `//` comments and one-line `#[..]` attributes (a cut lands before
# them). Possessive and bounded: each hit after a long doc comment must not rescan it.
_CONTAINER_HEADER = re.compile(
    rb"(?:[ \t]*(?://[^\n]{0,256}|#\[[^\n]{0,256}\][ \t]*)?\r?\n){0,16}+"
    rb"(?:pub(?:\([^)\n]*\))? +)?(?:unsafe +)?(?:impl|trait|mod)\b[^\n]*\{[ \t]*\r?\n"
)
_LAST = {cuts: re.compile(rb"(?s:.*)" + cuts.pattern) for cuts in (_ITEM_CUT, _TOP_CUT)}
_CUT_WINDOW = 2048  # bytes searched back from a hit for its item's start (then 4x, 16x...)
# Top-level statements that are not items: a slice made of them came from inside a fn.
_STATEMENTS = frozenset({"let_declaration", "expression_statement"})
Captures = defaultdict[str, list[Node]]  # capture name -> nodes, of one span of a region


class Region:
    """A parsed slice `source[start:end]` and the byte span (within it) that holds hits."""

    def __init__(self, root: Node, start: int, end: int, line_offset: int) -> None:
        self.root = root
        self.start = start
        self.end = end
        self.line_offset = line_offset
        self.spans: list[tuple[int, int]] = []  # byte spans (within the slice) with hits
        self.confirmed = 0  # spans[:confirmed] have been counted towards the evidence budget
        self.captures: dict[tuple[int, int], Captures] = {}  # by span, as counted

    def cover(self, lo: int, hi: int) -> None:
        """Mark `lo:hi` as holding hits. Nearby spans merge; far ones stay apart, so a
        region as big as the whole file is not queried from its first hit to its last."""
        spans = self.spans
        if spans and spans[-1][0] <= lo and lo <= spans[-1][1] + _MERGE_GAP:
            spans[-1] = (spans[-1][0], max(spans[-1][1], hi))
        else:
            spans.append((lo, hi))


class Regions:
    """The regions of one file, each parsed once, found for hits that come mostly in order."""

    def __init__(self, source: bytes, file: str = "") -> None:
        self.source = source
        self.file = file
        self.parsed: dict[tuple[int, int], Region | None] = {}  # None: did not parse cleanly
        self._parser = thread_parser()
        self._last: Region | None = None  # hits come in order: the last answer is likely
        self._code_start: int | None = None
        self._comment_lines: dict[int, bool] = {}  # line start -> certainly not code
        self._counted = (0, 0)  # (offset, newlines before it): count forward from the last

    @property
    def code_start(self) -> int:
        """Where the file's first code may start (`prefilter.code_start`), worked out once."""
        if self._code_start is None:
            self._code_start = code_start(self.source)
        return self._code_start

    def comment_line(self, line_start: int, line_end: int) -> bool:
        """`prefilter.comment_only` for a line, worked out once for all readers."""
        comment = self._comment_lines.get(line_start)
        if comment is None:
            comment = comment_only(self.source, line_start, line_end)
            self._comment_lines[line_start] = comment
        return comment

    def region_of(self, offset: int) -> tuple[Region, bool]:
        """The region to read the hit at `offset` in, and whether it was parsed just now."""
        last = self._last
        if last is not None and last.start <= offset < last.end:
            return last, False
        size = len(self.source)
        levels = ((_ITEM_CUT, _MAX_ITEM_WIDENING), (_TOP_CUT, _MAX_TOP_WIDENING))
        for cuts, widening in levels if size > WHOLE_FILE_BYTES else ():
            guess = self._cuts_around(cuts, offset)
            if cuts is _ITEM_CUT:
                guess = self._after_container_header(guess, offset)
            span = self._balanced(cuts, guess, widening)
            if span is None:
                continue  # certainly a piece of an item: would not parse cleanly
            fresh = span not in self.parsed
            region = self._parse(span, whole=False) if fresh else self.parsed[span]
            if region is not None:
                self._last = region
                return region, fresh
        region, fresh = self.whole()
        self._last = region
        return region, fresh

    def whole(self) -> tuple[Region, bool]:
        """The whole file as one region, and whether it was parsed just now."""
        if len(self.source) > MAX_PARSE_BYTES:
            # Fail closed: a file that cannot be read in items is not read in pieces that
            # could misplace strings and comments, and not parsed whole beyond the bound.
            raise ArchiveError(
                f"{self.file}: {len(self.source)} bytes of Rust that do not split into items "
                f"parse as one piece, over the {MAX_PARSE_BYTES}-byte bound"
            )
        whole = (0, len(self.source))
        region = self.parsed.get(whole)
        if region is not None:
            return region, False
        region = self._parse(whole, whole=True)
        assert region is not None  # the whole file is always accepted
        return region, True

    def _parse(self, span: tuple[int, int], whole: bool) -> Region | None:
        start, end = span
        if not whole and end - start > MAX_PARSE_BYTES:
            self.parsed[span] = None  # too big to parse as a piece: try the next level
            return None
        root = self._parser.parse(self.source[start:end]).root_node
        clean = whole or not (
            root.has_error
            or any(
                child.type in _STATEMENTS and not _macro_statement(child)
                for child in root.named_children
            )
        )
        region = Region(root, start, end, self._line_number(start)) if clean else None
        self.parsed[span] = region
        return region

    def _line_number(self, offset: int) -> int:
        """Newlines before `offset`, counted incrementally (regions come mostly in order)."""
        at, lines = self._counted
        if offset >= at:
            lines += self.source.count(b"\n", at, offset)
        else:
            lines = self.source.count(b"\n", 0, offset)
        self._counted = (offset, lines)
        return lines

    def _imbalance(self, start: int, end: int) -> int:
        """`{` minus `}` in `source[start:end]`, strings and comments included: a cheap
        guess only, every region is still checked by parsing it."""
        return self.source.count(b"{", start, end) - self.source.count(b"}", start, end)

    def _after_container_header(self, span: tuple[int, int], offset: int) -> tuple[int, int]:
        """A span opening with an `impl`, `trait` or `mod` header line (`impl X for Y {`)
        and holding the hit further down starts after the header: the members are items
        on their own, and the whole container need not be parsed for one of them."""
        header = _CONTAINER_HEADER.match(self.source, span[0], offset)
        return (header.end(), span[1]) if header is not None else span

    def _balanced(
        self, cuts: re.Pattern[bytes], span: tuple[int, int], widening: int
    ) -> tuple[int, int] | None:
        """`span` widened cut by cut (at most `widening` times) until its braces balance and
        it does not start inside a block comment; None if it still does not. So a fn cut
        at a column-4 statement, or an `impl` whose members sit at column 0 as in generated
        code, is read whole rather than in pieces."""
        source = self.source
        start, end = span
        size = len(source)
        # Both kept up to date as the span grows (re-counting the whole span at each of up
        # to 256 steps was quadratic): `{` minus `}`, and the first `*/`.
        imbalance = self._imbalance(start, end)
        closer = source.find(b"*/", start, end)
        for _ in range(widening):
            # (to `closer + 1`: in `/*/`, as in a `docs.rs/x/*/y` link, the lexer reads `/*`)
            if closer >= 0 and source.find(b"/*", start, closer + 1) < 0:
                opened = source.rfind(b"/*", 0, start)  # the span starts inside a comment
                grown = self._cut_before(cuts, opened) if opened > 0 else 0
                if grown == start:  # nothing left to grow by: every further step is the same
                    return None
            elif imbalance < 0 and start > 0:
                grown = self._cut_before(cuts, start - 1)
            elif imbalance > 0 and end < size:
                found = cuts.search(source, end)
                longer = found.end() if found is not None else size
                imbalance += self._imbalance(end, longer)
                if closer < 0:  # (from end - 1: a `*/` may straddle the old end)
                    closer = source.find(b"*/", max(start, end - 1), longer)
                end = longer
                continue
            else:
                return start, end
            imbalance += self._imbalance(grown, start)
            earlier = source.find(b"*/", grown, min(start + 1, end))
            closer = earlier if earlier >= 0 else closer
            start = grown
        return None

    def _cuts_around(self, cuts: re.Pattern[bytes], offset: int) -> tuple[int, int]:
        """The last cut at or before `offset` and the first after it (0 and the size if none).

        A hit is the start of an identifier, never inside a cut's `};` and blank lines, so
        the next cut is the first match from `offset` on."""
        found = cuts.search(self.source, offset)
        return self._cut_before(cuts, offset), found.end() if found is not None else len(
            self.source
        )

    def _cut_before(self, cuts: re.Pattern[bytes], offset: int) -> int:
        """The end of the last cut at or before `offset` (0 if none).

        Cuts are searched for near `offset`, not over the whole file (a full pass costs as
        much as the token search itself)."""
        source = self.source
        window = _CUT_WINDOW
        while True:
            low = max(0, offset - window)
            # +5: the cut's lookahead reads up to four spaces and a letter past its end.
            # Cuts never overlap, so the last one is the one starting furthest right: a
            # greedy `.*` finds it in one call, where iterating over every cut cost 5%.
            last = _LAST[cuts].match(source, low, offset + 5)
            if last is not None and last.end() > offset:  # it ends past `offset`: iterate
                last = None
                for m in cuts.finditer(source, low, offset + 5):
                    if m.end() <= offset:
                        last = m
            if last is not None:
                return last.end()
            if low == 0:
                return 0
            window *= 4


def _macro_statement(node: Node) -> bool:
    """`m!(..);` at the top level is an item (a macro invocation), not a fn's statement."""
    return (
        node.type == "expression_statement"
        and node.named_child_count == 1
        and node.named_children[0].type == "macro_invocation"
    )
