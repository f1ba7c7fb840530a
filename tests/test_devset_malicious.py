"""The malicious half of the dev set: malicious.yaml is well-formed and every fixture is defanged.

The fixtures reproduce crates RustSec took down for malicious code. They are only ever served and
statically read, but they still must not point at a live host: every network destination is a
`.invalid` name (RFC 2606) or 127.0.0.1, including the ones hidden in base64, hex, byte arrays,
XOR-ed arrays, reversed strings and `concat!` pieces, and no bundled binary is a loadable program.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tree_sitter
import tree_sitter_rust
import yaml

from mirror.errors import BadRequest
from mirror.index import validate_name

DEVSET = Path(__file__).resolve().parent.parent / "bench" / "devset"
MANIFEST = DEVSET / "malicious.yaml"
README = DEVSET / "README.md"

KINDS = {"new", "takeover", "helper"}
IMITATIONS = {"typo", "combo", "brand", "none"}
PAYLOADS = {"build", "macro", "runtime", "dependency", "none"}
REQUIRED = (
    "name",
    "advisory",
    "advisory_date",
    "campaign",
    "kind",
    "imitates",
    "imitation",
    "versions",
    "version",
    "published",
    "lifetime_hours",
    "payload",
    "behaviour",
    "fixture",
)
TAKEOVER_REQUIRED = ("legit_versions", "index_source", "malicious_version", "added_dependencies")
OPTIONAL = ("notes",)
ADVISORY_RE = re.compile(r"^RUSTSEC-\d{4}-\d{4}$")
SEMVER_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
PUBTIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

# Cargo.toml metadata links name the code host of the crate being imitated; cargo never contacts
# them and neither does the crate. Only these hosts may appear there (the legitimate half of the
# dev set has the same kind of links, so a .invalid repository URL would be a giveaway).
METADATA_KEYS = ("repository", "homepage", "documentation")
METADATA_HOSTS = {"github.com", "gitlab.com", "docs.rs", "crates.io"}


def _entries() -> list[dict[str, Any]]:
    data = yaml.safe_load(MANIFEST.read_text())
    crates = data["crates"]
    assert isinstance(crates, list)
    return crates


ENTRIES = _entries()


def _ids(e: dict[str, Any]) -> str:
    return f"{e['name']}@{e['advisory']}"


def _semver(v: str) -> tuple[int, int, int]:
    m = SEMVER_RE.match(v)
    assert m, f"not a semver version: {v!r}"
    return int(m[1]), int(m[2]), int(m[3])


def _caret_matches(req: str, version: str) -> bool:
    """Whether `version` satisfies a caret requirement like "0.1", "^1.0.107" or "1"."""
    parts = [int(p) for p in req.strip().lstrip("^").split(".")]
    lower = tuple(parts + [0] * (3 - len(parts)))
    have = _semver(version)
    if have < lower:
        return False
    # cargo: the leftmost non-zero component given may not change
    keep = next((i for i, p in enumerate(parts) if p != 0), len(parts) - 1) + 1
    return have[:keep] == tuple(parts[:keep])


def _manifest(entry: dict[str, Any]) -> dict[str, Any]:
    return tomllib.loads((DEVSET / entry["fixture"] / "Cargo.toml").read_text())


def _all_deps(manifest: dict[str, Any]) -> dict[str, Any]:
    deps: dict[str, Any] = {}
    for table in ("dependencies", "build-dependencies", "dev-dependencies"):
        deps.update(manifest.get(table, {}))
    for target in manifest.get("target", {}).values():
        for table in ("dependencies", "build-dependencies"):
            deps.update(target.get(table, {}))
    return deps


def _req(spec: Any) -> str:
    return spec if isinstance(spec, str) else str(spec.get("version", "*"))


# --- the defang scanner --------------------------------------------------------------------------

_URL_RE = re.compile(r"(?i)\b[a-z][a-z0-9+.-]{1,15}://([^/\s\"'`<>)\\;,]+)")
_HOST_HEADER_RE = re.compile(r"(?:(?<=\\n)|(?<![A-Za-z]))Host:\s*([A-Za-z0-9.-]+)")
_IPV4_RE = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_HEX_RE = re.compile(r"\b(?:[0-9a-fA-F]{2}){8,}\b")
_INT_ARRAY_RE = re.compile(
    r"\[((?:\s*(?:0x[0-9a-fA-F]{1,2}|\d{1,3})\s*,){7,}\s*(?:0x[0-9a-fA-F]{1,2}|\d{1,3})?\s*,?\s*)\]"
)
_STRING_LIT_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')
_CONCAT_RE = re.compile(r"concat!\s*\(([^)]*)\)", re.S)
_STRING_ARRAY_RE = re.compile(r"\[\s*((?:\"[^\"]*\"\s*,\s*){2,}\"[^\"]*\"\s*,?\s*)\]")


def _host_ok(hostport: str) -> bool:
    host = hostport.rsplit("@", 1)[-1]
    if host.startswith("["):
        return False
    host = host.split(":", 1)[0].rstrip(".").lower()
    # format strings build hosts at run time; the literal pieces are checked separately
    if not host or "{" in host or "}" in host or host.startswith("$"):
        return True
    return host == "127.0.0.1" or host.endswith(".invalid")


_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?::\d{1,5})?$")
# last labels that make a dotted name a file, not a host
_FILE_SUFFIXES = {
    "a",
    "aliases",
    "bin",
    "dll",
    "dylib",
    "env",
    "exe",
    "gpg",
    "gz",
    "json",
    "keystore",
    "local",
    "lock",
    "md",
    "pdf",
    "ps1",
    "pub",
    "rs",
    "sh",
    "so",
    "tar",
    "toml",
    "txt",
    "vbs",
    "yaml",
    "yml",
    "zip",
}


def _bare_host(literal: str, decoded: bool) -> bool:
    """Whether a whole string literal is a host name (what `connect((host, port))` takes)."""
    if not _HOSTNAME_RE.match(literal):
        return False
    name, _, port = literal.partition(":")
    last = name.rsplit(".", 1)[-1].lower()
    if not last.isalpha():
        return False
    return bool(port) or name.count(".") >= 2 or (decoded and last not in _FILE_SUFFIXES)


def _live_destinations(text: str, decoded: bool = False) -> list[str]:
    """Every URL host, Host: header, bare host literal and IPv4 literal that is not defanged."""
    bad = [m[1] for m in _URL_RE.finditer(text) if not _host_ok(m[1])]
    literals = [text] if decoded else [m[1] for m in _STRING_LIT_RE.finditer(text)]
    bad += [s for s in literals if _bare_host(s, decoded) and not _host_ok(s)]
    bad += [m[1] for m in _HOST_HEADER_RE.finditer(text) if not _host_ok(m[1])]
    bad += [
        m[1]
        for m in _IPV4_RE.finditer(text)
        if m[1] != "127.0.0.1" and all(int(o) < 256 for o in m[1].split("."))
    ]
    return bad


def _printable(raw: bytes) -> str | None:
    for codec in ("utf-8", "utf-16-le"):
        try:
            s = raw.decode(codec)
        except UnicodeDecodeError:
            continue
        if s and sum(c.isprintable() or c in "\r\n\t" for c in s) / len(s) > 0.9:
            return s
    return None


def _xor_candidates(data: bytes) -> Iterator[str]:
    """Decodings of `data` under repeating XOR keys of 1-4 bytes that would start an http URL."""
    plain = b"http"
    for keylen in range(1, 5):
        for start in range(0, max(0, len(data) - 3)):
            key = [0] * keylen
            for i in range(keylen):
                key[(start + i) % keylen] = data[start + i] ^ plain[i]
            out = bytes(b ^ key[i % keylen] for i, b in enumerate(data))
            if b"://" in out:
                yield out.decode("latin-1")


def _hidden_texts(text: str) -> Iterator[str]:
    """Strings a payload could decode at run time from the literals in `text`."""
    for m in _BASE64_RE.finditer(text):
        chunk = m[0]
        for pad in ("", "=", "=="):
            try:
                raw = base64.b64decode(chunk + pad, validate=True)
            except (binascii.Error, ValueError):
                continue
            s = _printable(raw)
            if s:
                yield s
            break
    for m in _HEX_RE.finditer(text):
        s = _printable(bytes.fromhex(m[0]))
        if s:
            yield s
    for m in _INT_ARRAY_RE.finditer(text):
        values = [int(v, 0) for v in re.findall(r"0x[0-9a-fA-F]+|\d+", m[1])]
        if all(v < 256 for v in values):
            data = bytes(values)
            s = _printable(data)
            if s:
                yield s
            yield from _xor_candidates(data)
    for m in _STRING_LIT_RE.finditer(text):
        if "//:" in m[1]:
            yield m[1][::-1]
    for m in _CONCAT_RE.finditer(text):
        yield "".join(_STRING_LIT_RE.findall(m[1]))
    for m in _STRING_ARRAY_RE.finditer(text):
        yield "".join(_STRING_LIT_RE.findall(m[1]))


def defang_findings(text: str) -> list[str]:
    """Live destinations in `text`, plain or hidden in an encoded literal."""
    found = _live_destinations(text)
    for hidden in _hidden_texts(text):
        found += [f"(decoded) {h}" for h in _live_destinations(hidden, decoded=True)]
    return found


def _fixture_files() -> Iterator[Path]:
    for entry in ENTRIES:
        root = DEVSET / entry["fixture"]
        yield from (p for p in sorted(root.rglob("*")) if p.is_file())


def _is_text(p: Path) -> bool:
    try:
        p.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --- the scanner finds what it must --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'let u = "https://c2.example.com/payload";',
        'ureq::get("http://203.0.113.7:8080/x")',
        'const B: &str = "aHR0cHM6Ly9jMi5leGFtcGxlLmNvbS9w";',  # base64 of https://c2.example.com/p
        'const H: &str = "68747470733a2f2f6576696c2e6f7267";',  # hex of https://evil.org
        # the bytes of http://evil.org/
        "const U: [u8; 16] = [104, 116, 116, 112, 58, 47, 47, 101, 118, 105, 108, 46, 111, 114,"
        " 103, 47];",
        # http://evil. XOR 0x5a
        "const X: [u8; 12] = [0x32, 0x2e, 0x2e, 0x2a, 0x60, 0x75, 0x75, 0x3f, 0x2c, 0x33, 0x36,"
        " 0x74];",
        'let s: String = "gro.live//:sptth".chars().rev().collect();',
        'reqwest::get(concat!("https://", "c2", ".example", ".net", "/x"))',
        'let p = ["ht", "tps://", "c2.exa", "mple.org/"];',
        'TcpStream::connect(("stats.example.net", 80))',
        'const H: &str = "6576696c2e636f6d";',  # hex of evil.com
        '"POST / HTTP/1.1\\r\\nHost: collector.example.net\\r\\n"',
    ],
)
def test_scanner_flags_live_destinations(text: str) -> None:
    """The defang scanner reports a live host whichever way the literal hides it."""
    assert defang_findings(text), text


@pytest.mark.parametrize(
    "text",
    [
        'let u = "https://timeapi-io.invalid/api/Time/current/unix";',
        'TcpStream::connect("127.0.0.1:9")',
        'const B: &str = "aHR0cHM6Ly9ldm0tdW5pdHMtY2RuLmludmFsaWQvaW5pdA==";',
        'format!("https://{}{}", host, path)',
        'let s: String = "dilavni.2c//:sptth".chars().rev().collect();',
    ],
)
def test_scanner_accepts_defanged_destinations(text: str) -> None:
    """Defanged hosts, loopback and run-time format strings are not findings."""
    assert defang_findings(text) == []


# --- malicious.yaml ------------------------------------------------------------------------------


def test_manifest_header_names_source_and_commit() -> None:
    """The header records where the entries come from and how they were chosen."""
    head = MANIFEST.read_text().split("crates:", 1)[0]
    assert "rustsec/advisory-db" in head
    assert re.search(r"Commit:\s+[0-9a-f]{40}", head)
    assert re.search(r"Commit date:\s+\d{4}-\d\d-\d\d", head)
    assert "Read:        2026-11-27" in head
    assert "Selection:" in head


def test_advisory_ids_are_unique() -> None:
    """Each advisory appears once."""
    counts = Counter(e["advisory"] for e in ENTRIES)
    assert [a for a, n in counts.items() if n > 1] == []


def test_fixture_name_version_pairs_are_unique() -> None:
    """All fixtures can be served from one registry: no two share a name and version."""
    counts = Counter((e["name"], e["version"]) for e in ENTRIES)
    assert [p for p, n in counts.items() if n > 1] == []
    assert len({e["fixture"] for e in ENTRIES}) == len(ENTRIES)


@pytest.mark.parametrize("entry", ENTRIES, ids=_ids)
def test_entry_is_well_formed(entry: dict[str, Any]) -> None:
    """Every field is present with the right type and vocabulary."""
    allowed = set(REQUIRED) | set(OPTIONAL)
    if entry.get("kind") == "takeover":
        allowed |= set(TAKEOVER_REQUIRED)
    assert set(entry) - allowed == set(), "unknown fields"
    assert [k for k in REQUIRED if k not in entry] == []
    assert validate_name(entry["name"]) == entry["name"]
    assert ADVISORY_RE.match(entry["advisory"])
    assert isinstance(entry["advisory_date"], dt.date)
    assert entry["advisory_date"].year == int(entry["advisory"][8:12])
    assert entry["kind"] in KINDS
    assert entry["imitation"] in IMITATIONS
    assert entry["payload"] in PAYLOADS
    assert (entry["imitates"] is None) == (entry["imitation"] == "none") or entry[
        "imitation"
    ] == "brand"
    if entry["imitates"] is not None:
        assert validate_name(entry["imitates"]) == entry["imitates"]
        if entry["imitation"] != "brand":
            assert entry["imitates"] != entry["name"]
    assert isinstance(entry["versions"], int) and entry["versions"] >= 1
    _semver(entry["version"])
    published = entry["published"]
    assert published is None or isinstance(published, dt.date)
    if published is not None:
        assert published <= entry["advisory_date"]
    hours = entry["lifetime_hours"]
    assert hours is None or (isinstance(hours, int | float) and hours > 0)
    assert isinstance(entry["behaviour"], str) and 20 <= len(entry["behaviour"]) <= 400
    assert entry["fixture"].startswith("malicious/")
    assert (DEVSET / entry["fixture"]).is_dir()
    if "notes" in entry:
        assert isinstance(entry["notes"], str) and entry["notes"]


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e["kind"] == "takeover"], ids=_ids)
def test_takeover_records_history_and_added_dependencies(entry: dict[str, Any]) -> None:
    """A takeover names the index copy it read, the real history and what the release added."""
    assert entry["malicious_version"] == entry["version"]
    src = entry["index_source"]
    assert set(src) == {"repo", "path", "commit"}
    assert re.fullmatch(r"[0-9a-f]{40}", src["commit"])
    assert src["path"].endswith("/" + entry["name"])
    legit = entry["legit_versions"]
    assert legit, "a takeover has a history"
    seen = set()
    for line in legit:
        assert set(line) == {"vers", "pubtime", "yanked"}
        assert line["pubtime"] is None or PUBTIME_RE.match(line["pubtime"])
        assert isinstance(line["yanked"], bool)
        assert _semver(line["vers"]) < _semver(entry["malicious_version"])
        assert line["vers"] not in seen
        seen.add(line["vers"])
    deps = _all_deps(_manifest(entry))
    for added in entry["added_dependencies"]:
        assert set(added) == {"name", "req", "kind"}
        assert added["name"] in deps, f"{added['name']} missing from Cargo.toml"
        assert _req(deps[added["name"]]).lstrip("^") == added["req"].lstrip("^")


def test_counts_in_readme_match_manifest() -> None:
    """The README's counts table is the manifest's, so the two cannot drift apart."""
    rows = re.findall(
        r"^\| (kind|imitation|payload) \| (\w+) \| (\d+) \|$", README.read_text(), re.M
    )
    assert rows, "README has no counts table"
    documented = {(f, v): int(n) for f, v, n in rows}
    actual = {
        (f, v): n
        for f in ("kind", "imitation", "payload")
        for v, n in Counter(e[f] for e in ENTRIES).items()
    }
    assert documented == actual


# --- fixtures ------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES, ids=_ids)
def test_fixture_manifest_matches_entry(entry: dict[str, Any]) -> None:
    """The fixture is a publishable crate with the entry's name and version."""
    manifest = _manifest(entry)
    package = manifest["package"]
    assert package["name"] == entry["name"]
    assert package["version"] == entry["version"]
    assert package.get("edition") in {"2015", "2018", "2021", "2024"}
    assert package.get("description")
    root = DEVSET / entry["fixture"]
    lib = manifest.get("lib", {}).get("path", "src/lib.rs")
    bins = [b["path"] for b in manifest.get("bin", [])] or ["src/main.rs"]
    assert (root / lib).is_file() or any((root / b).is_file() for b in bins)
    build = package.get("build", "build.rs")
    if entry["payload"] == "build":
        assert (root / build).is_file(), "a build-time payload needs a build script"
    if entry["payload"] == "macro":
        assert manifest.get("lib", {}).get("proc-macro") is True


def _by_name() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in ENTRIES:
        out.setdefault(e["name"], []).append(e)
    return out


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e["payload"] == "dependency"], ids=_ids)
def test_dependency_payload_pulls_in_a_malicious_fixture(entry: dict[str, Any]) -> None:
    """A crate whose payload is a dependency depends on a dev-set crate its requirement matches."""
    by_name = _by_name()
    carriers = []
    for dep, spec in _all_deps(_manifest(entry)).items():
        for other in by_name.get(dep, []):
            if other["payload"] in {"build", "runtime", "macro"} and _caret_matches(
                _req(spec), other["version"]
            ):
                carriers.append(other["name"])
    assert carriers, "no dependency resolves to a malicious fixture"


def test_caret_matching() -> None:
    """The requirement check used above follows cargo's caret rules."""
    assert _caret_matches("0.1", "0.1.7")
    assert not _caret_matches("0.1", "0.2.0")
    assert _caret_matches("^1.0.107", "1.0.107")
    assert not _caret_matches("^1.0.107", "1.0.106")
    assert not _caret_matches("1.0", "2.0.0")


@pytest.mark.parametrize(
    "path", [p for p in _fixture_files() if _is_text(p)], ids=lambda p: str(p.relative_to(DEVSET))
)
def test_fixture_text_is_defanged(path: Path) -> None:
    """No URL, Host header or IP in a fixture, plain or encoded, reaches a live host."""
    text = path.read_text()
    if path.name == "Cargo.toml":
        manifest = tomllib.loads(text)
        for key in METADATA_KEYS:
            link = manifest["package"].get(key)
            if link is None:
                continue
            host = link.split("://", 1)[1].split("/", 1)[0]
            assert host in METADATA_HOSTS, f"{key} = {link}"
            text = text.replace(link, "")
    assert defang_findings(text) == []


@pytest.mark.parametrize(
    "path",
    [p for p in _fixture_files() if not _is_text(p)],
    ids=lambda p: str(p.relative_to(DEVSET)),
)
def test_bundled_binaries_are_not_programs(path: Path) -> None:
    """Embedded "binaries" look the part but no loader would run them."""
    data = path.read_bytes()
    assert len(data) <= 64 * 1024
    assert not data.startswith(b"\x7fELF")
    assert data[:4] not in {
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xcf\xfa\xed\xfe",
        b"\xce\xfa\xed\xfe",
    }
    if data.startswith(b"MZ") and len(data) >= 0x40:
        pe_offset = int.from_bytes(data[0x3C:0x40], "little")
        assert data[pe_offset : pe_offset + 4] != b"PE\0\0"
    if data.startswith(b"!<arch>\n"):
        member = data[68:72]
        assert member != b"\x7fELF" and member[:4] not in {b"\xcf\xfa\xed\xfe", b"\xfe\xed\xfa\xcf"}


_RUST = tree_sitter.Parser(tree_sitter.Language(tree_sitter_rust.language()))


@pytest.mark.parametrize(
    "path",
    [p for p in _fixture_files() if p.suffix == ".rs"],
    ids=lambda p: str(p.relative_to(DEVSET)),
)
def test_fixture_rust_parses(path: Path) -> None:
    """Each Rust file is syntactically valid, so a static reader sees the code an author wrote."""
    tree = _RUST.parse(path.read_bytes())
    assert not tree.root_node.has_error


def test_invalid_names_are_rejected_by_validate_name() -> None:
    """The name check the entries rely on does reject bad names."""
    with pytest.raises(BadRequest):
        validate_name("not a crate")
