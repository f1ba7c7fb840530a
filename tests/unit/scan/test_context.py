"""Which context each file of a crate runs in: build script and what it pulls in, proc-macro,
library, or code never built for a dependent."""

from __future__ import annotations

import pytest

from mirror.scan.capabilities import CapabilityReport, scan_crate
from mirror.scan.findings import context_of
from mirror.scan.report import Context
from tests.unit.scan.test_capabilities import make_crate

C = Context


def scan(files: dict[str, str | bytes], manifest: str = "") -> CapabilityReport:
    return scan_crate(make_crate(files, manifest=manifest))


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
