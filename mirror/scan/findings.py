"""Content evidence: suspicious patterns in a crate's code (not permissions), and where they sit.

A `Finding` is a pattern that malicious crates on crates.io have used (RustSec advisories of
kind "malicious", 2022-2026): payload URLs, secrets' paths, strings hidden from a reader.
Legitimate crates show some of them too, so the same finding is weighed by its `Context`:
a URL in a build script runs on every machine that builds the crate; in `tests/` it never
runs in a dependent's build at all. `context_of` is pure: it reads only the report.

What triggers each kind (string literals in code only: comments, doc comments and
`#[cfg(test)]`/`#[test]` items never count; inside an attribute a value counts only as a
URL, and not if it names a documentation host):

- url: an http(s)/ws(s)/ftp URL (the item names its host), or a raw IPv4/IPv6 address that
  is not loopback, "any" or broadcast (nor a dotted OID on a line naming one). Not: the
  crate's own repository/homepage/documentation URLs outside its build script;
  documentation hosts (docs.rs, crates.io, github.com, *.github.io, githubusercontent.com,
  rust-lang.org) in prose or in a `concat!` of prose.
- encoded_blob: 120+ characters of a hex or base64 alphabet in one run (base64 holding
  `+`, `/`, `=` or `-`, and decoding), 64+ `\\xNN` escapes in one literal, or an array of
  12+ printable character codes that reads as text (not a lookup table); the item says
  what it decodes to (text, or a binary by its magic).
- assembled_string: `concat!`/`format!`/`+`/`push_str` of literals that together form a
  URL, command, secret's path or variable none of them forms alone; `from_utf8` (and
  `_lossy`, `_unchecked`) of literal bytes that are text; literal bytes (also a constant
  the decoding code names) that one xor or subtraction key turns into a URL, command or
  path, where code turns bytes into text (`as char`, `^ KEY`, `^=`, `from_utf8`).
- sensitive_path: paths to credentials, keys, wallets, browser profiles, shell history
  and `/etc/passwd|shadow`; `home_dir()` calls; `HOME`/`USERPROFILE` read from the env.
- sensitive_env: a secret-looking variable name read by `env::var`/`var_os`/`env!`/
  `option_env!` (or named as a constant): TOKEN, SECRET, PASSWORD, KEY, CREDENTIAL,
  AUTH, MNEMONIC, ... as a `_` word, AWS_/AZURE_/CARGO_REGISTRIES_ prefixes; `vars()`.
- write_outside_out_dir (build scripts only): `fs` writers, `File::create`, `OpenOptions`
  opening for writing, whose path does not mention OUT_DIR or a name derived from it
  (see `build_writes`).
- embedded_binary: `include_bytes!` of a file of the crate that is an executable or an
  archive by its magic, or 16 KiB+ of data that is neither text nor a known media format.
- shell_command: a literal naming a downloader (curl, wget, certutil, ...), a script host
  (powershell, mshta, osascript, nc, crontab, ...), a shell run with `-c`/`/C` (in the
  literal or the statement's next literals), a pipe into a shell, PowerShell download
  cradles. (Added: the advisories' droppers ran payloads this way; `process` alone cannot
  tell `cc` running a compiler from a build script running `curl | sh`.)
- secret_pattern: a regex for private keys or tokens (base58 alphabets, 64 hex digits,
  `AKIA`, `ghp_`, ...). (Added: faster_log and async_println found keys in source files
  with them; no path or variable was involved.)
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
