"""Capabilities found in real Debian crates and in small synthetic crates, with evidence."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from functools import cache
from pathlib import Path

import pytest

from mirror.errors import ArchiveError
from mirror.scan.capabilities import (
    Capability,
    CapabilityReport,
    Evidence,
    parse_capabilities,
    scan_crate,
)
from tests.fixtures.crates import debian_crate_dir, pack_crate

C = Capability


@cache
def debian_report(name: str) -> CapabilityReport:
    return scan_crate(pack_crate(debian_crate_dir(name)))


def line_of(path: Path, needle: str) -> int:
    """1-based number of the first code line of `path` containing `needle` (not a comment)."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line and not line.lstrip().startswith("//"):
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def make_crate(
    files: dict[str, str | bytes],
    name: str = "demo",
    version: str = "0.1.0",
    manifest: str = "",
    prefix: str | None = None,
) -> bytes:
    """A synthetic .crate: Cargo.toml (with `manifest` appended) plus `files`."""
    all_files: dict[str, str | bytes] = {
        "Cargo.toml": f'[package]\nname = "{name}"\nversion = "{version}"\n{manifest}',
        **files,
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, content in all_files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(f"{prefix or f'{name}-{version}'}/{path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


def scan_lib(source: str, **kwargs: str) -> CapabilityReport:
    return scan_crate(make_crate({"src/lib.rs": source}, **kwargs))


# -- real crates ---------------------------------------------------------------------------------


def test_serde_derive_is_a_proc_macro_with_a_build_script() -> None:
    """serde_derive: proc_macro from Cargo.toml, build.rs that runs rustc via Command."""
    src = debian_crate_dir("serde_derive")
    caps = debian_report("serde_derive").capabilities
    proc_line = line_of(src / "Cargo.toml", "proc-macro = true")
    assert Evidence("Cargo.toml", proc_line, "lib.proc-macro = true") in caps[C.PROC_MACRO]
    assert Evidence("build.rs", 1, "build.rs") in caps[C.BUILD_SCRIPT]
    use_line = line_of(src / "build.rs", "use std::process::Command")
    assert Evidence("build.rs", use_line, "use std::process::Command") in caps[C.PROCESS]
    new_line = line_of(src / "build.rs", "Command::new")
    assert Evidence("build.rs", new_line, "std::process::Command::new") in caps[C.PROCESS]
    assert C.NET not in caps and C.BINARY not in caps


def test_libz_sys_links_zlib_through_ffi() -> None:
    """libz-sys: build script, `links = "z"`, extern "C" blocks in src/lib.rs."""
    src = debian_crate_dir("libz-sys")
    caps = debian_report("libz-sys").capabilities
    assert Evidence("build.rs", 1, "build.rs") in caps[C.BUILD_SCRIPT]
    links_line = line_of(src / "Cargo.toml", 'links = "z"')
    assert Evidence("Cargo.toml", links_line, "package.links = 'z'") in caps[C.LINKS]
    extern_line = line_of(src / "src/lib.rs", 'extern "C" {')
    assert Evidence("src/lib.rs", extern_line, 'extern "C" { ... } block') in caps[C.FFI]


def test_openssl_sys_build_script_declared_in_manifest() -> None:
    """openssl-sys names its build script in Cargo.toml and includes bindgen output."""
    src = debian_crate_dir("openssl-sys")
    caps = debian_report("openssl-sys").capabilities
    build_line = line_of(src / "Cargo.toml", "build = ")
    assert (
        Evidence("Cargo.toml", build_line, "package.build = 'build/main.rs'")
        in caps[C.BUILD_SCRIPT]
    )
    assert any(e.item.startswith("include!(concat!(env!(") for e in caps[C.INCLUDE_OUTSIDE])


def test_cc_spawns_processes() -> None:
    """cc runs the C compiler: std::process::Command, imported in a grouped `use`."""
    src = debian_crate_dir("cc")
    caps = debian_report("cc").capabilities
    use_line = line_of(src / "src/lib.rs", "use std::process::{")
    assert Evidence("src/lib.rs", use_line, "use std::process::Command") in caps[C.PROCESS]


def test_socket2_uses_the_network() -> None:
    """socket2 converts to and from std::net sockets."""
    src = debian_crate_dir("socket2")
    net = debian_report("socket2").capabilities[C.NET]
    found = [e for e in net if e.file == "src/socket.rs" and e.item.startswith("std::net::")]
    assert found
    text = (src / "src/socket.rs").read_text().splitlines()
    for e in found:
        assert e.item.rsplit("::", 1)[-1] in text[e.line - 1]


def test_tempfile_and_walkdir_use_the_filesystem() -> None:
    """tempfile and walkdir import std::fs; tempfile's doc-comment examples do not count."""
    for name, file, needle in (
        ("tempfile", "src/dir.rs", "use std::{"),
        ("walkdir", "src/dent.rs", "use std::fs::{self"),
    ):
        src = debian_crate_dir(name)
        line = line_of(src / file, needle)
        assert Evidence(file, line, "use std::fs") in debian_report(name).capabilities[C.FS]
    fs = debian_report("tempfile").capabilities[C.FS]
    in_docs = [
        e
        for e in fs
        if (debian_crate_dir("tempfile") / e.file)
        .read_text()
        .splitlines()[e.line - 1]
        .lstrip()
        .startswith("//")
    ]
    assert in_docs == []


@pytest.mark.parametrize("name", ["itoa", "unicode-ident"])
def test_plain_crates_have_nothing_but_maybe_unsafe(name: str) -> None:
    """Pure computation crates: no build script, no I/O, at most unsafe."""
    assert debian_report(name).capability_set <= {C.UNSAFE}


@pytest.mark.parametrize("name", ["serde_derive", "cc", "socket2", "tempfile", "libz-sys"])
def test_evidence_points_at_real_lines(name: str) -> None:
    """Every evidence line in a .rs file contains the item it names (no off-by-one lines)."""
    src = debian_crate_dir(name)
    for cap, evidence in debian_report(name).capabilities.items():
        for e in evidence:
            if not e.file.endswith(".rs") or cap is C.BUILD_SCRIPT:
                continue
            line = (src / e.file).read_text().splitlines()[e.line - 1]
            token = {C.UNSAFE: "unsafe", C.FFI: "extern", C.LINKS: "link"}.get(cap)
            if e.item.startswith("libc::"):
                token = None  # a call into libc: the line names the function
            assert (token or e.item.rsplit("::", 1)[-1].split("(")[0]) in line, (e, line)


# -- parser edge cases ---------------------------------------------------------------------------


def test_grouped_and_aliased_use_resolve() -> None:
    """`use std::{fs, net::TcpStream as T}` makes `T::connect` a network call."""
    caps = scan_lib(
        "use std::{fs, net::TcpStream as T};\n"
        "pub fn f() {\n"
        '    let _ = T::connect("127.0.0.1:1");\n'
        '    let _ = fs::read("x");\n'
        "}\n"
    ).capabilities
    assert Evidence("src/lib.rs", 1, "use std::net::TcpStream") in caps[C.NET]
    assert Evidence("src/lib.rs", 3, "std::net::TcpStream::connect") in caps[C.NET]
    assert Evidence("src/lib.rs", 1, "use std::fs") in caps[C.FS]
    assert Evidence("src/lib.rs", 4, "std::fs::read") in caps[C.FS]


def test_module_alias_resolves_far_away_in_a_large_file() -> None:
    """`use std::env as e` then `e::var` 300 lines later: found although only regions parse."""
    filler = "".join(f"pub fn filler_{i}() -> u32 {{ {i} }}\n" for i in range(300))
    source = f'use std::env as e;\n{filler}pub fn home() {{\n    let _ = e::var("HOME");\n}}\n'
    caps = scan_lib(source).capabilities
    assert Evidence("src/lib.rs", 303, "std::env::var") in caps[C.ENV]


@pytest.mark.parametrize(
    ("header", "call"),
    [
        ("use std as s;", "s::process::Command::new"),
        ("extern crate std as s;", "s::process::Command::new"),
        ("use std::{self as s};", "s::process::Command::new"),
        ("use std  as\n    s;", "s::process::Command::new"),
        ("use std::*;", "process::Command::new"),
    ],
)
def test_renamed_or_glob_imported_std_is_still_resolved(header: str, call: str) -> None:
    """Hiding `std` behind a rename or a glob does not hide what is reached through it."""
    filler = "".join(f"pub fn filler_{i}() -> u32 {{ {i} }}\n" for i in range(300))
    source = f'{header}\n{filler}pub fn run() {{\n    let _ = {call}("sh");\n}}\n'
    line = source.splitlines().index(f'    let _ = {call}("sh");') + 1
    caps = scan_lib(source).capabilities
    assert Evidence("src/lib.rs", line, "std::process::Command::new") in caps[C.PROCESS]


def test_extern_crate_is_not_ffi_but_its_alias_and_line_still_count() -> None:
    """The pre-filter drops `extern crate` hits (never foreign code); a renamed crate is
    still resolved, and an `extern "C"` block on the same line is still found."""
    filler = "".join(f"pub fn filler_{i}() -> u32 {{ {i} }}\n" for i in range(300))
    source = (
        "extern crate alloc;\nextern crate reqwest as http;\n"
        'extern crate core; extern "C" { fn puts(s: *const u8) -> i32; }\n'
        f'{filler}pub fn get() {{\n    let _ = http::get("https://example.org");\n}}\n'
    )
    caps = scan_lib(source).capabilities
    line = source.splitlines().index('    let _ = http::get("https://example.org");') + 1
    assert Evidence("src/lib.rs", line, "reqwest::get") in caps[C.NET]
    assert [e.line for e in caps[C.FFI]] == [3]


def test_alias_inside_an_impl_in_a_large_file() -> None:
    """A renamed type used deep inside an impl block resolves to its import."""
    filler = "".join(f"    pub fn filler_{i}(&self) -> u32 {{ {i} }}\n" for i in range(200))
    source = (
        "use std::process::Command as Cmd;\n"
        f"pub struct S;\nimpl S {{\n{filler}"
        '    pub fn run(&self) {\n        let _ = Cmd::new("sh").status();\n    }\n}\n'
    )
    caps = scan_lib(source).capabilities
    line = source.splitlines().index('        let _ = Cmd::new("sh").status();') + 1
    assert Evidence("src/lib.rs", line, "std::process::Command::new") in caps[C.PROCESS]


def test_comments_and_strings_are_not_code() -> None:
    """Mentions in comments, doc comments, strings and raw strings grant nothing."""
    report = scan_lib(
        "// std::net::TcpStream::connect(addr)\n"
        '/* std::fs::remove_dir_all("/") unsafe { } */\n'
        '/// Spawns std::process::Command::new("sh") -- not really\n'
        "pub fn f() -> (&'static str, &'static str) {\n"
        '    ("std::env::var(\\"HOME\\") unsafe", r#"extern "C" { fn system(); } env!("X")"#)\n'
        "}\n"
    )
    assert report.capabilities == {}


def test_paths_inside_macro_bodies_are_found() -> None:
    """Fully-qualified paths in macro arguments and macro_rules bodies count."""
    caps = scan_lib(
        'macro_rules! run { () => { ::std::process::Command::new("ls") }; }\n'
        "pub fn f() {\n"
        '    println!("{:?}", std::fs::read_to_string("/etc/passwd"));\n'
        "}\n"
    ).capabilities
    assert Evidence("src/lib.rs", 1, "std::process::Command::new") in caps[C.PROCESS]
    assert Evidence("src/lib.rs", 3, "std::fs::read_to_string") in caps[C.FS]


def test_env_macros_and_cargo_variables() -> None:
    """env!/option_env! of the machine count; cargo's own CARGO_* variables do not."""
    caps = scan_lib(
        'pub const A: &str = env!("CARGO_PKG_VERSION");\n'
        'pub const B: Option<&str> = option_env!("AWS_SECRET_ACCESS_KEY");\n'
    ).capabilities
    assert caps[C.ENV] == (Evidence("src/lib.rs", 2, 'option_env!("AWS_SECRET_ACCESS_KEY")'),)


def test_include_outside_the_crate() -> None:
    """include_bytes! climbing out of the crate is flagged; a file inside it is not."""
    caps = scan_crate(
        make_crate(
            {
                "src/lib.rs": 'pub static K: &[u8] = include_bytes!("../../../.ssh/id_rsa");\n'
                'pub static R: &str = include_str!("../README.md");\n',
                "README.md": "hi",
            }
        )
    ).capabilities
    assert caps[C.INCLUDE_OUTSIDE] == (
        Evidence("src/lib.rs", 1, 'include_bytes!("../../../.ssh/id_rsa")'),
    )


def test_unsafe_ffi_and_link_attributes() -> None:
    """unsafe blocks/fns, extern blocks and #[link] each yield their own evidence."""
    caps = scan_lib(
        '#[link(name = "evil")]\nextern "C" {\n    fn system(cmd: *const u8) -> i32;\n}\n'
        "pub unsafe fn raw() {}\npub fn g() { unsafe { raw() } }\n"
    ).capabilities
    assert caps[C.LINKS] == (Evidence("src/lib.rs", 1, '#[link(name = "evil")]'),)
    assert caps[C.FFI] == (Evidence("src/lib.rs", 2, 'extern "C" { ... } block'),)
    assert Evidence("src/lib.rs", 5, "unsafe fn raw") in caps[C.UNSAFE]
    assert Evidence("src/lib.rs", 6, "unsafe block") in caps[C.UNSAFE]


def test_glob_import_resolves_bare_names() -> None:
    """`use std::fs::*` then `read(..)`: the import itself is the evidence."""
    caps = scan_lib('use std::fs::*;\npub fn f() { let _ = read("x"); }\n').capabilities
    assert Evidence("src/lib.rs", 1, "use std::fs::*") in caps[C.FS]


@pytest.mark.parametrize(
    "source",
    [
        b"fn f() { m!(" + b"(" * 5000 + b"std::fs::read" + b")" * 5000 + b"); }",
        b'fn f() { std::fs::read("x"); x::' + b"a::" * 20000 + b"b(); }",
        b"fn f() { " + b"{" * 20000 + b"std::fs::read();" + b"}" * 20000 + b" }",
        b"fn f() { " + b"{ unsafe { std::fs::read(); }\n" * 5000 + b"}" * 5000 + b" }",
        b"type T = std::fs::File" + b"<Vec" * 5000 + b">" * 5000 + b";",
    ],
    ids=["nested-macro", "long-path", "nested-blocks", "deep-and-many", "nested-generics"],
)
def test_pathological_nesting_is_fast_and_still_seen(source: bytes) -> None:
    """Hostile nesting neither crashes (recursion) nor stalls (quadratic parent walks)."""
    start = time.monotonic()
    caps = scan_crate(make_crate({"src/lib.rs": source})).capabilities
    assert time.monotonic() - start < 30  # hang detector only; takes well under a second
    assert C.FS in caps


def test_absurdly_nested_use_is_rejected() -> None:
    """A `use` tree nested beyond any real code is a clear ArchiveError, not a skipped import."""
    source = b"use " + b"{" * 100 + b"std::fs" + b"}" * 100 + b";"
    with pytest.raises(ArchiveError, match="nested"):
        scan_crate(make_crate({"src/lib.rs": source}))


# -- what the speed-ups skip, and the attacks on those skips -------------------------------------

FILLER = "".join(f"pub fn filler_{i}() -> u32 {{ {i} }}\n" for i in range(200))  # > 4 KiB


@pytest.mark.parametrize("filler", ["", FILLER], ids=["small-file", "large-file"])
def test_lines_starting_with_a_comment_can_still_end_in_code(filler: str) -> None:
    """Lines starting with `//` are skipped only if no string or block comment can end there.

    Attack: a `//` line inside a multi-line string (or block comment) that closes it and
    then calls something, hoping the scanner treats the whole line as a comment."""
    source = (
        f"{filler}pub fn f() -> &'static str {{\n"
        '    let s = "begin\n'
        '// "; let _ = std::process::Command::new("sh");\n'
        "    s\n}\n"
        "/* a block comment\n"
        '// */ pub fn g() { let _ = std::fs::remove_file("x"); }\n'
        "// std::net::TcpStream::connect(addr) in a plain comment\n"
    )
    lines = source.splitlines()
    caps = scan_lib(source).capabilities
    spawn = next(i for i, line in enumerate(lines, 1) if "Command::new" in line)
    remove = next(i for i, line in enumerate(lines, 1) if "remove_file" in line)
    assert Evidence("src/lib.rs", spawn, "std::process::Command::new") in caps[C.PROCESS]
    assert Evidence("src/lib.rs", remove, "std::fs::remove_file") in caps[C.FS]
    assert C.NET not in caps


def test_unsafe_in_strings_does_not_use_up_the_evidence_budget() -> None:
    """Parsing stops once enough `unsafe` is *confirmed* by the parser, not merely mentioned:
    30 strings saying "unsafe" before the one real block must not hide it."""
    fakes = "".join(f'pub const FAKE_{i}: &str = "unsafe";\n' for i in range(30))
    source = f"{fakes}{FILLER}pub fn real(p: *const u8) -> u8 {{ unsafe {{ *p }} }}\n"
    line = len(source.splitlines())
    caps = scan_lib(source).capabilities
    assert caps[C.UNSAFE] == (Evidence("src/lib.rs", line, "unsafe block"),)


def test_capped_unsafe_evidence_is_still_the_first_lines() -> None:
    """With more `unsafe` than evidence kept, the report keeps the first 20, as before the
    reader learnt to stop early; the same holds across files (build.rs, then src/)."""
    blocks = "".join(
        f"pub fn f{i}(p: *const u8) -> u8 {{ unsafe {{ *p }} }}\n{FILLER if i == 5 else ''}"
        for i in range(40)
    )
    lines = blocks.splitlines()
    expected = [i for i, line in enumerate(lines, 1) if "unsafe" in line][:20]
    caps = scan_lib(blocks).capabilities
    assert [e.line for e in caps[C.UNSAFE]] == expected
    assert {e.item for e in caps[C.UNSAFE]} == {"unsafe block"}


def test_item_far_longer_than_the_search_window() -> None:
    """A hit 30 KiB into one item: its start is found further back than the first window,
    and its line number is still exact."""
    body = "".join(f"        let _v{i} = {i};\n" for i in range(1000))
    source = (
        f"{FILLER}pub fn big() {{\n    {{\n{body}"
        '        let _ = std::env::var("HOME");\n    }\n}\n'
    )
    line = source.splitlines().index('        let _ = std::env::var("HOME");') + 1
    caps = scan_lib(source).capabilities
    assert caps[C.ENV] == (Evidence("src/lib.rs", line, "std::env::var"),)


def test_concurrent_scans_in_threads_agree() -> None:
    """The server scans in worker threads at once; each thread has its own parser."""
    from concurrent.futures import ThreadPoolExecutor

    crates = [
        make_crate({"src/lib.rs": f'{FILLER}pub fn f{i}() {{ let _ = std::fs::read("x"); }}\n'})
        for i in range(8)
    ]
    expected = [scan_crate(c) for c in crates]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(scan_crate, crates * 3)) == expected * 3


def test_shipped_binaries_by_magic_and_name() -> None:
    """ELF, PE and Mach-O magic and library names are flagged; look-alike text is not."""
    pe = b"MZ" + bytes(0x3A) + (0x40).to_bytes(4, "little") + b"PE\0\0" + bytes(16)
    caps = scan_crate(
        make_crate(
            {
                "blob/payload.txt": b"\x7fELF\x02\x01\x01" + bytes(64),
                "tools/helper.bin": pe,
                "lib/libfoo.so.1": b"not really",
                "mac/thing": b"\xcf\xfa\xed\xfe" + bytes(28),
                "notes.txt": b"MZ is how this note starts",
            }
        )
    ).capabilities
    assert set(caps[C.BINARY]) == {
        Evidence("blob/payload.txt", 1, "ELF binary"),
        Evidence("tools/helper.bin", 1, "PE (Windows) binary"),
        Evidence("lib/libfoo.so.1", 1, "binary by name (1)"),
        Evidence("mac/thing", 1, "Mach-O binary"),
    }


def test_build_script_implicit_explicit_and_disabled() -> None:
    """build.rs counts unless `build = false`; `build = "x.rs"` counts from the manifest."""
    implicit = scan_crate(make_crate({"build.rs": "fn main() {}\n"}))
    assert implicit.capabilities[C.BUILD_SCRIPT] == (Evidence("build.rs", 1, "build.rs"),)
    off = scan_crate(make_crate({"build.rs": "fn main() {}\n"}, manifest="build = false\n"))
    assert C.BUILD_SCRIPT not in off.capabilities
    named = scan_crate(make_crate({"gen.rs": "fn main() {}\n"}, manifest='build = "gen.rs"\n'))
    assert named.capabilities[C.BUILD_SCRIPT] == (
        Evidence("Cargo.toml", 4, "package.build = 'gen.rs'"),
    )


def test_prefix_must_match_the_manifest() -> None:
    """A crate claiming another identity than its directory prefix is rejected."""
    data = make_crate({"src/lib.rs": ""}, prefix="serde-1.0.0")
    with pytest.raises(ArchiveError, match="prefix"):
        scan_crate(data)


def test_report_json_round_trip_and_capability_parsing() -> None:
    """Reports survive JSON; `--caps` text parses and rejects unknown names."""
    report = debian_report("serde_derive")
    again = CapabilityReport.from_json(json.loads(json.dumps(report.to_json())))
    assert again == report
    assert parse_capabilities("net, fs") == {C.NET, C.FS}
    with pytest.raises(ValueError, match="unknown capability"):
        parse_capabilities("net,telepathy")


# -- items read whole: no evidence lost to where the reader cuts a file ----------------------------

LONG_CALLBACK = (
    'pub unsafe extern "C" fn callback(x: u32) -> u32 {\n'
    "    let a = x;\n"
    "    let b = a + 1;\n"
    "    b\n"
    "}\n"
)


@pytest.mark.parametrize("filler", ["", FILLER * 2], ids=["small-file", "large-file"])
def test_top_level_fn_body_is_not_cut_into_pieces(filler: str) -> None:
    """A 4-space-indented statement after a `;` line inside a top-level fn is not an item
    boundary: the fn is parsed whole, so `extern "C"` is seen and `unsafe` is labelled.

    Attack: a hostile crate exporting a C callback in a big file, hoping the scanner parses
    the fn in pieces and reports only a harmless-looking `unsafe fn pointer type`."""
    source = filler + LONG_CALLBACK
    line = len(filler.splitlines()) + 1
    caps = scan_lib(source).capabilities
    assert caps[C.FFI] == (Evidence("src/lib.rs", line, 'extern "C" fn callback'),)
    assert caps[C.UNSAFE] == (Evidence("src/lib.rs", line, "unsafe fn callback"),)


@pytest.mark.parametrize("filler", ["", FILLER * 2], ids=["small-file", "large-file"])
def test_ffi_links_and_paths_inside_macro_bodies(filler: str) -> None:
    """`extern "C" fn`, `extern { }`, `#[link]` and std paths in a macro_rules! body or a
    macro invocation are evidence on their own, wherever the macro is expanded."""
    source = filler + (
        "macro_rules! export {\n"
        "    ($name:ident) => {\n"
        "        #[no_mangle]\n"
        '        pub extern "system" fn $name() -> u32 {\n'
        "            let a = 1;\n"
        "            a\n"
        "        }\n"
        "    };\n"
        "}\n"
        "my_macro! {\n"
        '    #[link(name = "evil")]\n'
        "    extern {\n"
        "        fn system(cmd: *const u8) -> i32;\n"
        "    }\n"
        '    pub extern "C" fn hook() { std::process::Command::new("sh"); }\n'
        '    pub type F = extern "C" fn(u32);\n'
        "}\n"
    )
    lines = source.splitlines()

    def at(needle: str) -> int:
        return next(i for i, text in enumerate(lines, 1) if needle in text)

    caps = scan_lib(source).capabilities
    assert set(caps[C.FFI]) == {
        Evidence("src/lib.rs", at("fn $name"), 'extern "system" fn $name (in macro body)'),
        Evidence("src/lib.rs", at("extern {"), "extern { ... } block (in macro body)"),
        Evidence("src/lib.rs", at("fn hook"), 'extern "C" fn hook (in macro body)'),
    }
    assert caps[C.LINKS] == (
        Evidence("src/lib.rs", at("#[link"), '#[link(name = "evil")] (in macro body)'),
    )
    assert Evidence("src/lib.rs", at("fn hook"), "std::process::Command::new") in caps[C.PROCESS]


def test_extern_rust_and_extern_crate_in_macro_bodies_are_not_ffi() -> None:
    """`extern crate` and `extern "Rust" fn` inside a macro body declare no foreign code."""
    caps = scan_lib(
        'm! { extern crate alloc; pub extern "Rust" fn f() {} type G = extern fn(); }\n'
    ).capabilities
    assert C.FFI not in caps


def test_atty_unsafe_fn_is_labelled_whole() -> None:
    """atty's `unsafe fn console_on_any` (in a >4 KiB file) is one item, not a fn pointer."""
    src = debian_crate_dir("atty")
    line = line_of(src / "src/lib.rs", "unsafe fn console_on_any")
    unsafe = debian_report("atty").capabilities[C.UNSAFE]
    assert Evidence("src/lib.rs", line, "unsafe fn console_on_any") in unsafe


def test_bindgen_extern_c_callback_and_clang_sys_extern_block_in_macro() -> None:
    """bindgen's `extern "C" fn visit_children` (a top-level fn in a 60 KiB file) and
    clang-sys's `extern { ... }` inside its `link!` macro_rules body are both ffi."""
    src = debian_crate_dir("bindgen")
    line = line_of(src / "src/clang.rs", 'extern "C" fn visit_children')
    assert (
        Evidence("src/clang.rs", line, 'extern "C" fn visit_children')
        in debian_report("bindgen").capabilities[C.FFI]
    )
    src = debian_crate_dir("clang-sys")
    ffi = debian_report("clang-sys").capabilities[C.FFI]
    line = line_of(src / "src/link.rs", "        extern {")
    assert Evidence("src/link.rs", line, "extern { ... } block (in macro body)") in ffi


def test_compiler_builtins_exports_found_inside_its_intrinsics_macro() -> None:
    """compiler_builtins defines its `extern "C" fn __aeabi_*` inside `intrinsics! { }`:
    read from the macro's tokens, not found by the accident of a cut."""
    src = debian_crate_dir("compiler_builtins")
    line = line_of(src / "src/arm.rs", "fn __aeabi_uldivmod")
    ffi = debian_report("compiler_builtins").capabilities[C.FFI]
    assert any(
        e.file == "src/arm.rs" and e.line == line and "__aeabi_uldivmod" in e.item for e in ffi
    )


def test_unsafe_evidence_in_a_region_that_did_not_parse_is_still_the_first_lines() -> None:
    """A top-level item tree-sitter cannot parse cleanly is read in the whole file; its
    first `unsafe` lines (not an arbitrary 50 of them) are labelled and kept."""
    body = "".join(f"    let _x{i} = unsafe {{ *p }};\n" for i in range(80))
    source = f"{FILLER}pub fn many(p: *const u8) {{\n    let broken = ;\n{body}}}\n"
    lines = source.splitlines()
    expected = [i for i, line in enumerate(lines, 1) if "unsafe" in line][:20]
    caps = scan_lib(source).capabilities
    assert [e.line for e in caps[C.UNSAFE]] == expected
    assert {e.item for e in caps[C.UNSAFE]} == {"unsafe block"}


def test_item_like_lines_in_a_block_comment_are_not_code() -> None:
    """A doc block comment holding example code (lines ending in `;` and `}`, then lines at
    column 0) is a comment, even when a hit inside it is read in a slice of a large file."""
    example = "".join(f"let v{i} = {i};\nfn g{i}() {{}}\n" for i in range(5))
    source = (
        f'/*!\nExample:\n{example}let _ = std::fs::remove_file("x");\n*/\n{FILLER}pub fn f() {{}}\n'
    )
    assert C.FS not in scan_lib(source).capabilities


# -- calls into libc, directory listings, process directories (issue 16 item 9) ---------------


@pytest.mark.parametrize("filler", ["", FILLER], ids=["small-file", "large-file"])
def test_calls_into_libc_are_ffi(filler: str) -> None:
    """`libc::memchr(..)` calls foreign code; a `libc::c_int` type or `libc::EINVAL` is
    only data and is not a call."""
    source = filler + (
        "pub fn find(p: *const u8) -> usize {\n"
        "    unsafe { libc::memchr(p as *const _, 0, 8) as usize }\n"
        "}\n"
        "pub type Int = libc::c_int;\n"
        "pub const E: i32 = libc::EINVAL;\n"
    )
    line = len(filler.splitlines()) + 2
    caps = scan_lib(source).capabilities
    assert caps[C.FFI] == (Evidence("src/lib.rs", line, "libc::memchr"),)


def test_libc_calls_made_by_a_syscall_macro_are_ffi() -> None:
    """mio's and socket2's `syscall!` expand to `libc::$fn(..)`: a call into libc whatever
    `$fn` is."""
    source = (
        "macro_rules! syscall {\n"
        "    ($fn: ident ( $($arg: expr),* $(,)* ) ) => {{\n"
        "        let res = unsafe { libc::$fn($($arg, )*) };\n"
        "        res\n"
        "    }};\n"
        "}\n"
    )
    caps = scan_lib(source).capabilities
    assert Evidence("src/lib.rs", 3, "libc::$fn") in caps[C.FFI]


def test_unqualified_libc_file_calls_are_fs_and_ffi() -> None:
    """`use libc::{open, rename}` then `open(..)`: file access through libc, by any name."""
    source = (
        "use libc::{open, rename as mv, O_RDONLY};\n"
        "pub unsafe fn f(a: *const i8, b: *const i8) {\n"
        "    open(a, O_RDONLY);\n"
        "    mv(a, b);\n"
        "}\n"
    )
    caps = scan_lib(source).capabilities
    assert {e for e in caps[C.FS] if e.line > 1} == {
        Evidence("src/lib.rs", 3, "libc::open"),
        Evidence("src/lib.rs", 4, "libc::rename"),
    }
    assert {e.item for e in caps[C.FFI]} == {"libc::open", "libc::rename"}


def test_directory_listing_and_process_directories_are_fs() -> None:
    """`Path::read_dir` (also as a method), `env::temp_dir`, `env::current_dir`: they reach
    the file system of the machine."""
    source = (
        "use std::env;\nuse std::path::Path;\n"
        "pub fn f(p: &Path) {\n"
        "    let _ = p.read_dir();\n"
        "    let _ = Path::read_dir(p);\n"
        "    let _ = env::temp_dir();\n"
        "    let _ = env::current_dir();\n"
        "}\n"
    )
    fs = set(scan_lib(source).capabilities[C.FS])
    assert fs == {
        Evidence("src/lib.rs", 4, ".read_dir()"),
        Evidence("src/lib.rs", 5, "Path::read_dir"),
        Evidence("src/lib.rs", 6, "std::env::temp_dir"),
        Evidence("src/lib.rs", 7, "std::env::current_dir"),
    }


def test_methods_of_libc_types_are_not_calls_into_libc() -> None:
    """`libc::c_int::max_value()` is `i32::max_value()`: no foreign code."""
    caps = scan_lib("pub fn m() -> i32 { libc::c_int::max_value() }\n").capabilities
    assert C.FFI not in caps
