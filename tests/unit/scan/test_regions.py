"""Which slice of a Rust file the reader parses around a hit, and which hits it skips unparsed.

Smaller slices and skipped hits are only a speed-up: every test here also checks that what
matters is still found (the attack being a layout that makes the reader look away).
"""

from __future__ import annotations

import pytest

from mirror.scan.capabilities import Capability, Evidence
from mirror.scan.prefilter import code_start, comment_only
from mirror.scan.regions import _CONTAINER_HEADER, Regions
from tests.unit.scan.test_capabilities import FILLER, scan_lib

C = Capability


def line_with(source: str, needle: str) -> int:
    return next(i for i, text in enumerate(source.splitlines(), 1) if needle in text)


def region_around(source: str, needle: str) -> tuple[int, int]:
    data = source.encode()
    region, _ = Regions(data).region_of(data.index(needle.encode()))
    return region.start, region.end


# -- comment lines --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "skipped"),
    [
        ("/// [`f`]: https://docs.rs/rustix/*/x86_64/rustix/fs/fn.f.html", True),
        ("// a /*/ b */ c", True),  # opens one level, closes one: never below the start
        ("// plain std::fs::remove_dir(p)", True),
        ("// x */ std::fs::remove_dir(p)", False),  # closes a block comment: code follows
        ("// a /*/ b */ */ std::fs::remove_dir(p)", False),  # closes one more than it opens
        ('// "; std::fs::remove_dir(p)', False),  # may end a string
    ],
)
def test_comment_only_reads_block_comment_edges_as_the_lexer_does(line: str, skipped: bool) -> None:
    data = f"    {line}\n".encode()
    assert comment_only(data, 0, len(data) - 1) is skipped


@pytest.mark.parametrize("filler", ["", FILLER], ids=["small-file", "large-file"])
def test_a_comment_line_that_closes_a_block_comment_after_a_glob_link_is_code(filler: str) -> None:
    """Attack: inside a block comment, a `//` line holding a `docs.rs/x/*/y` link (which the
    reader skips when it cannot close the comment) closes it after all and then calls."""
    source = (
        f"{filler}/* a block comment\n"
        "// docs.rs/x/*/y */ */ pub fn g(p: &Path) { let _ = std::fs::remove_dir(p); }\n"
        "// docs.rs/x/*/y */ std::process::Command::new(sh)\n"
    )
    caps = scan_lib(source).capabilities
    line = line_with(source, "remove_dir")
    assert caps[C.FS] == (Evidence("src/lib.rs", line, "std::fs::remove_dir"),)
    assert C.PROCESS not in caps  # still inside the comment: `/*` of `/*/` opened a level


def test_a_glob_doc_link_does_not_make_the_whole_file_one_region() -> None:
    """`docs.rs/x/*/y` in a doc comment is not the end of a block comment the slice starts
    in (rustix has hundreds): the item after it is read alone, not the whole file."""
    source = (
        f"{FILLER}/// See <https://docs.rs/rustix/*/x86_64/rustix/fs/fn.f.html>.\n"
        "pub fn f(p: &Path) {\n    std::fs::remove_dir(p);\n}\n"
        f"{FILLER}"
    )
    start, end = region_around(source, "std::fs")
    assert end - start < 200
    assert scan_lib(source).capabilities[C.FS] == (
        Evidence("src/lib.rs", line_with(source, "std::fs"), "std::fs::remove_dir"),
    )


# -- the comments a file opens with ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "code"),
    [
        (b"\xef\xbb\xbf//! a\n/*! b /* nested */ c */\n\nuse x;", b"use x;"),
        (b"/* a */ /* b */ // c\n  fn f() {}", b"fn f() {}"),
        (b"/**/fn f() {}", b"fn f() {}"),
        (b"/*! a /*/ b */ still a comment */x", b"x"),  # `/*/` opens a level
        (b"/*! never closed /* */", b"/*! never closed /* */"),  # left to the parser
        (b'#![doc = "x"]\n/*! later */', b"#![doc"),  # code first: nothing skipped
    ],
)
def test_code_start_skips_exactly_the_leading_comments(source: bytes, code: bytes) -> None:
    assert code_start(source) == source.index(code)


@pytest.mark.parametrize("filler", ["", FILLER], ids=["small-file", "large-file"])
def test_leading_doc_comment_is_skipped_but_code_right_after_it_is_read(filler: str) -> None:
    """Hits in the `/*! .. */` a crate opens with are never parsed (prose fails to parse and
    pulled in the whole file); code on the line that closes it, and below, still counts.

    Attack: a `*/` hidden where a naive reader would not see the comment end (inside a
    nested comment, after a `/*/`), followed by a call."""
    source = (
        "/*! Example:\n"
        "let _ = std::fs::remove_file(x);\n"
        "/* nested */ std::net::TcpStream::connect(a);\n"
        "see docs.rs/x/*/y */ std::env::var(k); */ pub fn spawn() {\n"
        "    std::process::Command::new(sh);\n"
        "}\n"
        f"{filler}"
    )
    caps = scan_lib(source).capabilities
    assert C.FS not in caps
    assert C.NET not in caps
    assert C.ENV not in caps  # closed only the `/*` of `/*/`: still in the doc comment
    spawn = line_with(source, "Command::new")
    assert caps[C.PROCESS] == (Evidence("src/lib.rs", spawn, "std::process::Command::new"),)


# -- container members read alone -----------------------------------------------------------------

MEMBERS = "".join(
    f"    pub fn member_{i}(&self) -> u32 {{\n        {i}\n    }}\n" for i in range(20)
)


def test_member_after_a_commented_container_header_is_read_alone() -> None:
    """`// comment` and `#[attr]` lines between the cut and `impl X {` no longer make the
    whole `impl` one region for its first member, which is still read whole and labelled."""
    source = (
        f"{FILLER}// Methods\n#[cfg(unix)]\nimpl S {{\n"
        "    pub unsafe fn target(&self) -> u32 {\n        1\n    }\n"
        f"{MEMBERS}}}\n{FILLER}"
    )
    start, end = region_around(source, "unsafe fn target")
    assert source.encode()[start:end].lstrip().startswith(b"pub unsafe fn target")
    assert end - start < 100
    unsafe = scan_lib(source).capabilities[C.UNSAFE]
    assert unsafe == (Evidence("src/lib.rs", line_with(source, "fn target"), "unsafe fn target"),)


def test_last_member_of_a_container_is_read_without_the_container() -> None:
    """The container's closing `}` at column 0 ends the last member's slice (it used to
    unbalance it and pull in the whole `impl`)."""
    source = (
        f"{FILLER}impl S {{\n{MEMBERS}"
        '    pub extern "C" fn last(p: &Path) {\n'
        "        let _ = std::fs::remove_dir(p);\n    }\n}\n"
    )
    start, end = region_around(source, "std::fs")
    assert source.encode()[start:end].lstrip().startswith(b'pub extern "C" fn last')
    caps = scan_lib(source).capabilities
    assert caps[C.FFI] == (
        Evidence("src/lib.rs", line_with(source, "fn last"), 'extern "C" fn last'),
    )
    assert caps[C.FS] == (
        Evidence("src/lib.rs", line_with(source, "std::fs"), "std::fs::remove_dir"),
    )


def test_items_in_a_macro_body_cut_before_its_closing_brace_are_still_found() -> None:
    """A macro invocation's body closes with `}` at column 0 too: its last items may then be
    read as items (tokio's `mock! { .. }`), and what they grant is still reported there."""
    source = (
        f"{FILLER}mock! {{\n    pub File {{}}\n"
        "    impl FromRawFd for File {\n        unsafe fn from_raw_fd(h: RawFd) -> Self;\n    }\n"
        '    #[link(name = "k32")]\n'
        '    extern "system" {\n        fn GetTickCount() -> u32;\n    }\n'
        f"}}\n{FILLER}"
    )
    caps = scan_lib(source).capabilities
    assert [e.line for e in caps[C.UNSAFE]] == [line_with(source, "unsafe fn")]
    assert [e.line for e in caps[C.FFI]] == [line_with(source, 'extern "system"')]
    assert [e.line for e in caps[C.LINKS]] == [line_with(source, "#[link")]


def test_container_header_search_is_bounded_after_a_long_comment() -> None:
    """Each hit looks for a container header from its cut: a long run of comment lines
    there must not be re-read in full per hit (log's doc comments cost 0.45 s). The search
    reads at most 16 comment or attribute lines of at most 256 characters: a header after
    more is not found from there, so its cost is bounded whatever the file holds."""
    header = b"impl Foo {\n"
    assert _CONTAINER_HEADER.match(b"/// doc line\n" * 16 + header)
    assert _CONTAINER_HEADER.match(b"/// doc line\n" * 17 + header) is None
    assert _CONTAINER_HEADER.match(b"// " + b"x" * 300 + b"\n" + header) is None
    assert _CONTAINER_HEADER.match(b"/// doc line\n" * 50_000 + b"pub fn f() {}\n") is None


def test_a_macro_body_spanning_several_hit_spans_is_read_once_and_whole() -> None:
    """A macro body longer than the gap between two hit lines is captured by each span's
    query; it is read once, and what it holds on every line is still reported."""
    padding = "".join(f"    let pad_{i} = {i};\n" for i in range(150))  # > 1 KiB apart
    source = (
        f"{FILLER}quote! {{\n    std::process::Command::new(a);\n{padding}"
        f"    std::fs::remove_dir(p);\n{padding}    std::env::var(k);\n}}\n"
    )
    caps = scan_lib(source).capabilities
    assert [e.line for e in caps[C.PROCESS]] == [line_with(source, "Command::new")]
    assert [e.line for e in caps[C.FS]] == [line_with(source, "remove_dir")]
    assert [e.line for e in caps[C.ENV]] == [line_with(source, "env::var")]
