"""Content evidence: suspicious patterns in a crate's code (not permissions), and where they sit.

A `Finding` is a pattern that malicious crates on crates.io have used (RustSec advisories of
kind "malicious", 2022-2026): payload URLs, secrets' paths, strings hidden from a reader.
Legitimate crates show some of them too, so the same finding is weighed by its `Context`:
a URL in a build script runs on every machine that builds the crate; in `tests/` it never
runs in a dependent's build at all. `context_of` is pure: it reads only the report.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mirror.scan.capabilities import CapabilityReport


class Finding(StrEnum):
    URL = "url"  # a hard-coded http(s)/ws(s)/ftp URL or a raw IP address in code
    ENCODED_BLOB = "encoded_blob"  # a long base64/hex/escaped literal, a byte array of text
    ASSEMBLED_STRING = "assembled_string"  # a URL, command or path built from pieces or decoded
    SENSITIVE_PATH = "sensitive_path"  # credentials' and wallets' paths, home-directory lookups
    SENSITIVE_ENV = "sensitive_env"  # secret-looking environment variables, or all of them
    WRITE_OUTSIDE_OUT_DIR = "write_outside_out_dir"  # a build script writing elsewhere
    EMBEDDED_BINARY = "embedded_binary"  # include_bytes! of an executable, archive or blob
    SHELL_COMMAND = "shell_command"  # a downloader, script host or `sh -c` named in a literal
    SECRET_PATTERN = "secret_pattern"  # a regex or marker that finds private keys and tokens


class Context(StrEnum):
    BUILD = "build"  # the build script and what it pulls in: runs on every building machine
    MACRO = "macro"  # a proc-macro crate's code: runs inside the compiler
    RUNTIME = "runtime"  # library code: runs in the programs that use the crate
    OTHER = "other"  # tests/, examples/, benches/: never built for a dependent


_NEVER_BUILT_FOR_DEPENDENTS = ("tests/", "examples/", "benches/")


def context_of(report: CapabilityReport, file: str) -> Context:
    """Where `file` (a path inside the crate) runs, by cargo's layout rules.

    build: the build script, the files it pulls in (`mod`, `#[path]`, `include!`, as far as
    they can be read) and, when the build script is not at the crate root, everything in
    its directory. macro / runtime: `src/` of a proc-macro / normal crate, and any other
    `.rs` file no cargo target claims (it could be pulled in with `#[path]`: assume the
    worst). other: `tests/`, `examples/`, `benches/`, unless something built pulls the file
    in (recorded in `report.pulled_in`)."""
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
