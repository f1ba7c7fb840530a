"""Where a crate's code runs, which decides what a capability or finding in it means.

A finding (mirror.scan.report.Finding) is a pattern malicious crates on crates.io have used;
legitimate crates show some of them too, so each is weighed by the `Context` of its file: a
URL in a build script runs on every machine that builds the crate; in `tests/` it never runs
in a dependent's build at all. Pure: reads only the report.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from mirror.scan.report import CapabilityReport, Context

_NEVER_BUILT_FOR_DEPENDENTS = ("tests/", "examples/", "benches/")


def context_of(report: CapabilityReport, file: str) -> Context:
    """Where `file` (a path inside the crate) runs, by cargo's layout rules.

    build: the build script, the files it pulls in (`mod`, `#[path]`, `include!`, as far as
    they can be read) and, when the build script is not at the crate root, everything in
    its directory. macro / runtime: `src/` of a proc-macro / normal crate, and any other
    `.rs` file no cargo target claims (it could be pulled in with `#[path]`: assume the
    worst), as any other file read as Rust (pulled in as `include!("data/x.txt")`). other:
    `tests/`, `examples/`, `benches/`, unless something built pulls the file in (recorded
    in `report.pulled_in`)."""
    return context_from(report.build_script, report.proc_macro, report.pulled_in, file)


def context_from(
    build_script: str | None, proc_macro: bool, pulled_in: Mapping[str, Context], file: str
) -> Context:
    """`context_of`, from the report's parts (the scanner decides contexts before it has one)."""
    if build_script is not None:
        if file == build_script:
            return Context.BUILD
        directory = posixpath.dirname(build_script)
        if directory and file.startswith(directory + "/"):
            return Context.BUILD
    pulled = pulled_in.get(file)
    if pulled is not None:
        return pulled
    if file.startswith(_NEVER_BUILT_FOR_DEPENDENTS):
        return Context.OTHER
    return Context.MACRO if proc_macro else Context.RUNTIME
