"""What a string literal or a byte array holds that malicious crates hid in them.

Pure functions over decoded text: payload URLs and raw IP addresses, long base64/hex blobs,
paths to credentials and wallets, secret-looking environment variable names, downloader and
shell commands, and the regexes key stealers search source files with. Each answer is a
`(Finding, item)` pair; the reader decides where in the code a literal sits and whether it
counts there (a doc comment never does).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import itertools
import re
from collections.abc import Iterator, Sequence

from mirror.scan.magic import magic_kind
from mirror.scan.report import Finding

MAX_SHOWN = 80  # characters of a literal or decoded text shown in an item
MIN_BLOB_CHARS = 120  # characters of a base64/hex alphabet in one run: an encoded blob
MIN_ESCAPES = 64  # `\xNN` escapes in one literal: an escaped blob (hash test vectors: 32)
MIN_TEXT_ARRAY = 12  # printable codes in one integer array: text spelled as numbers
MIN_DECODED_TEXT = 4  # characters a literal byte array decodes to before it counts as text
MIN_KEYED_BYTES = 8  # bytes before a single-byte key is searched for (short ones hit anything)
MAX_KEYED_BYTES = 4096  # bytes beyond which no key is searched for (cost)

Found = tuple[Finding, str]

# -- unescaping ----------------------------------------------------------------------------------

_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u\{([0-9a-fA-F_]{1,8})\}|\n[ \t\r\n]*|(.))", re.S)
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "0": "\0", "'": "'", '"': '"'}


def literal_text(literal: str) -> tuple[str, int] | None:
    """The value of a Rust string literal as written (`"a\\x41"`, `b"..."`, `r#"..."#`,
    `c"..."`), and how many `\\xNN` escapes it used; None if it is not one.
    Byte values above 0x7f come out as the code points of the same number."""
    at = 0
    while at < len(literal) and literal[at] in "bcr":
        at += 1
    prefix, rest = literal[:at], literal[at:]
    if "r" in prefix:
        hashes = len(rest) - len(rest.lstrip("#"))
        body = rest[hashes:]
        if len(body) < 2 or body[0] != '"' or not body.endswith('"' + "#" * hashes):
            return None
        return body[1 : len(body) - 1 - hashes], 0
    if len(rest) < 2 or rest[0] != '"' or rest[-1] != '"':
        return None
    escapes = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal escapes
        hex_byte, unicode, simple = match.groups()
        if hex_byte is not None:
            escapes += 1
            return chr(int(hex_byte, 16))
        if unicode is not None:
            code = int(unicode.replace("_", ""), 16)
            return chr(code) if code <= 0x10FFFF else "\ufffd"
        if simple is None:
            return ""  # a line continuation: the newline and leading whitespace vanish
        return _SIMPLE.get(simple, "\ufffd")

    return _ESCAPE.sub(replace, rest[1:-1]), escapes


# -- URLs and addresses --------------------------------------------------------------------------

_URL = re.compile(r"\b(?i:https?|wss?|ftp)://([\w.\-\[\]:@%{}\0]*)([^\s\"'<>\\^`|\0]*)")
_IPV4 = re.compile(r"(?<![\w.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\w.]|\.\d)")
OID_LINE = re.compile(rb"\b(?:sz)?OID(?:_|\b)|\boid\b|_oid\b")  # `szOID_RSA`, `OID_X`, `oid`
_IPV6 = re.compile(r"(?<![\w:])\[?([0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7})\]?(?![\w:])")
# Documentation and code hosts: named by doc attributes (`#![doc(html_root_url = ..)]`) and
# in messages to a person ("see https://docs.rs/x") without fetching anything.
DOC_HOSTS = (
    "docs.rs", "crates.io", "github.com", "github.io", "githubusercontent.com", "rust-lang.org",
)  # fmt: skip


def urls(
    text: str,
    own: Sequence[str] = (),
    in_attribute: bool = False,
    oid_line: bool = False,
    prose: bool = False,
) -> Iterator[Found]:
    """Hard-coded URLs (the item names the host) and raw IP addresses in `text`.

    Not counted: the crate's own repository/homepage/documentation URLs (`own`, normalised by
    `own_url`); documentation hosts inside an attribute or inside prose (a message with
    words around the URL, or a piece of a `concat!` of such: `prose`); loopback, "any" and
    broadcast addresses (no remote end); dotted numbers on a line naming an OID (X.509
    object identifiers such as 2.5.4.3) that start as an OID does, with 0, 1 or 2."""
    hosts: set[str] = set()
    prose = prose or len(text.split()) > 1
    for match in _URL.finditer(text) if "://" in text else ():
        url = match.group(0)
        host = _host(match.group(1))
        hosts.add(host)
        if not match.group(1) and not match.group(2):
            continue  # a bare "https://": a piece of something assembled elsewhere
        if (in_attribute or prose) and is_doc_host(host):
            continue
        if own and own_url(url).startswith(tuple(own)):
            continue
        yield Finding.URL, f"{host or '(computed host)'}: {shown(url)}"
    if "." in text:
        for match in _IPV4.finditer(text):
            address = match.group(0)
            if oid_line and int(match.group(1)) <= 2:
                continue
            valid = all(int(part) <= 255 for part in match.groups())
            if valid and address not in hosts and _is_remote(address):
                yield Finding.URL, f"IP address {address}: {shown(text)}"
    for match in _IPV6.finditer(text) if "::" in text or text.count(":") >= 3 else ():
        candidate = match.group(1)
        groups = [g for g in candidate.split(":") if g]
        # `::6` in `.::6;` is an address only by accident: ask for two groups, or one long one.
        deliberate = len(groups) >= 2 or any(len(g) >= 3 for g in groups)
        if deliberate and candidate not in hosts and _is_remote(candidate):
            yield Finding.URL, f"IP address {candidate}: {shown(text)}"


def _is_remote(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    broadcast = ip.version == 4 and address.startswith("255.")
    return not (ip.is_loopback or ip.is_unspecified or broadcast)


def own_url(url: str) -> str:
    """A URL compared for being the crate's own: lower case, no scheme, no `.git` or `/`."""
    bare = re.sub(r"^[a-zA-Z]+://", "", url.strip()).lower()
    bare = bare.removesuffix("/").removesuffix(".git")
    return bare.removeprefix("www.")


def _host(authority: str) -> str:
    """The host of a URL's authority; "" if it is computed (`{}`) or missing."""
    host = authority.rsplit("@", 1)[-1]
    host = host[1:].split("]", 1)[0] if host.startswith("[") else host.split(":", 1)[0].lower()
    return "" if "{" in host or "\0" in host else host


def is_doc_host(host: str) -> bool:
    """Is `host` (lower case) one of DOC_HOSTS or below one?"""
    return any(host == h or host.endswith("." + h) for h in DOC_HOSTS)


# -- encoded blobs -------------------------------------------------------------------------------

_BLOB = re.compile(rf"[A-Za-z0-9+/_-]{{{MIN_BLOB_CHARS},}}={{0,2}}")
_HEX = re.compile(r"[0-9a-fA-F]+\Z")


def blobs(text: str, escapes: int) -> Iterator[Found]:
    """Long runs of a hex or base64 alphabet, and literals written mostly as `\\xNN` escapes;
    the item says what they decode to when that is short text or a known binary.

    A base64 run must look like one: hold `+`/`/` (or `=` padding, or `-` in the URL-safe
    alphabet) and decode. Long mangled symbols and identifiers (`_RNCNvCs...`), made of
    letters, digits and `_` alone, are not blobs."""
    for match in _BLOB.finditer(text) if len(text) >= MIN_BLOB_CHARS else ():
        run = match.group(0)
        if not (any(c.isdigit() for c in run) and any(c.isalpha() for c in run)):
            continue  # `aaaa...` or `----...`: a ruler, not an encoding
        if _HEX.match(run):
            decoded = _unhex(run)
            yield Finding.ENCODED_BLOB, f"hex, {len(run)} chars{_decodes_to(decoded)}"
        elif any(c in run for c in "+/=-"):
            decoded = _unbase64(run)
            if decoded is not None:
                yield Finding.ENCODED_BLOB, f"base64, {len(run)} chars{_decodes_to(decoded)}"
    if escapes >= MIN_ESCAPES:
        raw = text.encode("latin-1", errors="replace")
        yield Finding.ENCODED_BLOB, f"{escapes} escaped bytes{_decodes_to(raw)}"


def _unhex(run: str) -> bytes | None:
    try:
        return bytes.fromhex(run[: len(run) // 2 * 2])
    except ValueError:
        return None


def _unbase64(run: str) -> bytes | None:
    padded = run + "=" * (-len(run) % 4)
    try:
        if "-" in run or "_" in run:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _decodes_to(data: bytes | None) -> str:
    if not data:
        return ""
    kind = magic_kind(data)
    if kind is not None:
        return f", decodes to {kind}"
    text = printable_text(data)
    if text is not None:
        return f", decodes to {shown(text)!r}"
    return ""


# -- text hidden in numbers ------------------------------------------------------------------------


_PRINTABLE = re.compile(rb"[\t\n\r\x20-\x7e]+")


def printable_text(data: bytes | Sequence[int]) -> str | None:
    """`data` as text if every byte is printable ASCII (or tab/newline), else None."""
    if not isinstance(data, bytes):
        if any(not 0 <= b <= 255 for b in data):
            return None
        data = bytes(data)
    return data.decode("ascii") if _PRINTABLE.fullmatch(data) else None


def text_array(values: Sequence[int]) -> Found | None:
    """An integer array that spells text (`[104, 116, 116, 112, ...]`): an encoded blob, if it
    is long and reads as text rather than as a lookup table (`0123456789abcdef`)."""
    if len(values) < MIN_TEXT_ARRAY:
        return None
    text = printable_text(values)
    if text is None or not _reads_as_text(text) or _is_alphabet(values):
        return None
    return Finding.ENCODED_BLOB, f"{len(values)} integers spell {shown(text)!r}"


def _reads_as_text(text: str) -> bool:
    """Mostly letters, digits and spaces (a URL, a path, a command), not symbol soup."""
    plain = sum(1 for c in text if c.isalnum() or c == " ")
    return plain >= 0.6 * len(text) and any(c.isalpha() for c in text)


def _is_alphabet(values: Sequence[int]) -> bool:
    """A lookup table of runs (`ABC..Zabc..z012..9+/`) or one repeated value."""
    steps = [b - a for a, b in itertools.pairwise(values)]
    return sum(1 for s in steps if s in (0, 1)) >= 0.75 * len(steps)


def decoded_bytes(data: bytes) -> tuple[str, str] | None:
    """What literal bytes decoded at run time say: ("text", text) if they spell something
    suspicious as they are; else (key, text) for the first single-byte xor/subtraction key
    that turns them into something suspicious (a decoding loop); else ("text", text) if
    they are printable at all; else None."""
    text = printable_text(data)
    if text is not None and suspicious(text):
        return "text", text
    if MIN_KEYED_BYTES <= len(data) <= MAX_KEYED_BYTES:
        for key, table in _KEY_TABLES:
            candidate = printable_text(data.translate(table))
            # Strict: 510 keys over arbitrary bytes would spell a bare address by chance.
            if candidate is not None and suspicious(candidate, addresses=False):
                return key, candidate
    if text is not None and len(text) >= MIN_DECODED_TEXT:
        return "text", text
    return None


def _key_tables() -> list[tuple[str, bytes]]:
    tables = [(f"xor {k:#04x}", bytes(b ^ k for b in range(256))) for k in range(1, 256)]
    tables += [(f"minus {k}", bytes((b - k) % 256 for b in range(256))) for k in range(1, 256)]
    return tables


_KEY_TABLES = _key_tables()


# -- secrets' paths, environment variables, commands ----------------------------------------------

_SEP = r"[/\\]"
_START = r"(?:^|[/\\~])"
_END = r"(?:[/\\]|$)"
# (a substring every match holds, its exact pattern, what it is): the substring is looked for
# first, in C; only then the pattern (a regex per literal per pattern costs more than all).
_SENSITIVE_PATHS: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (marker, re.compile(pattern), label)
    for marker, pattern, label in (
        (".ssh", rf"{_START}\.ssh{_END}", "SSH directory"),
        ("id_", r"\bid_(?:rsa|dsa|ecdsa|ed25519)\b", "SSH private key"),
        ("authorized_keys", r"\bauthorized_keys\b", "SSH authorized_keys"),
        (".aws", rf"{_START}\.aws{_END}", "AWS credentials directory"),
        ("credentials", rf"\.cargo{_SEP}credentials", "cargo registry credentials"),
        ("credentials", r"^credentials\.toml$", "cargo registry credentials"),
        ("credentials", r"\.git-credentials\b", "git credentials"),
        ("rc", rf"{_START}\.(?:npmrc|pypirc|netrc)$", "package registry credentials"),
        (".docker", rf"\.docker{_SEP}config\.json", "Docker credentials"),
        (".kube", rf"\.kube{_SEP}config", "Kubernetes credentials"),
        (".env", rf"{_START}\.env(?:\.[\w.-]+)?$", ".env secrets file"),
        ("id.json", rf"solana{_SEP}id\.json|^id\.json$", "Solana wallet key"),
        ("keystore", rf"{_START}keystore{_END}", "wallet keystore"),
        (".", rf"{_START}\.(?:bitcoin|ethereum|electrum|monero){_END}", "wallet directory"),
        ("wallet.dat", r"\bwallet\.dat\b", "wallet file"),
        (" ", rf"{_START}(?:Login Data|Local State|Web Data){_END}", "browser profile data"),
        ("Cookies", rf"{_START}Cookies{_END}", "browser profile data"),
        (".", rf"{_START}(?:logins\.json|key4\.db|cookies\.sqlite){_END}", "browser profile data"),
        ("Local Storage", rf"Local Storage{_SEP}leveldb", "browser profile data"),
        ("tdata", rf"{_START}tdata{_END}", "Telegram session data"),
        (".gnupg", rf"{_START}\.gnupg{_END}", "GnuPG keys"),
        ("_history", rf"{_START}\.(?:bash|zsh)_history$", "shell history"),
        ("/etc/", r"^/etc/(?:passwd|shadow)$", "system accounts file"),
    )
)
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]{2,63}\Z")
_SECRET_WORDS = frozenset(
    {
        "TOKEN", "SECRET", "SECRETS", "PASSWORD", "PASSWD", "PASSPHRASE", "KEY", "PRIVKEY",
        "APIKEY", "CREDENTIAL", "CREDENTIALS", "MNEMONIC", "AUTH", "COOKIE", "SESSION",
        "WEBHOOK",
    }
)  # fmt: skip
# Prefixes of services whose every variable configures credentials (AWS_PROFILE names one).
_SECRET_PREFIXES = ("AWS_", "AZURE_", "GOOGLE_APPLICATION_CREDENTIALS", "CARGO_REGISTRIES_")
# Read by legitimate build scripts to tell whether they run in CI: none holds a secret.
_CI_VARIABLES = frozenset(
    {
        "GITHUB_ACTIONS", "GITHUB_WORKFLOW", "GITHUB_RUN_ID", "GITHUB_RUN_NUMBER",
        "GITHUB_SHA", "GITHUB_REF", "GITHUB_REF_NAME", "GITHUB_HEAD_REF", "GITHUB_BASE_REF",
        "GITHUB_WORKSPACE", "GITHUB_EVENT_NAME", "GITHUB_REPOSITORY", "GITHUB_SERVER_URL",
    }
)  # fmt: skip
HOME_VARIABLES = frozenset({"HOME", "USERPROFILE"})


def sensitive_paths(text: str) -> Iterator[Found]:
    for marker, pattern, label in _SENSITIVE_PATHS:
        if marker in text and pattern.search(text):
            yield Finding.SENSITIVE_PATH, f"{label}: {shown(text)!r}"
            return  # one item per literal


def is_secret_variable(name: str) -> bool:
    """Does `name` look like an environment variable holding a secret (`GITHUB_TOKEN`,
    `AWS_SECRET_ACCESS_KEY`, `POLYMARKET_PRIVATE_KEY`, `CARGO_REGISTRY_TOKEN`)?"""
    if not _ENV_NAME.match(name) or name in _CI_VARIABLES:
        return False
    if name.startswith(_SECRET_PREFIXES):
        return True
    words = name.split("_")
    if "SEED" in words and "PHRASE" in words:
        return True  # a wallet's seed phrase (a random generator's SEED is no secret)
    return any(w in _SECRET_WORDS or w.endswith(("TOKEN", "SECRET", "PASSWORD")) for w in words)


_DOWNLOADERS = frozenset(
    {
        "curl", "wget", "certutil", "bitsadmin", "invoke-webrequest", "iwr",
        "invoke-restmethod", "irm", "start-bitstransfer", "tftp", "scp", "ftp",
    }
)  # fmt: skip
_SCRIPT_HOSTS = frozenset(
    {
        "powershell", "pwsh", "mshta", "wscript", "cscript", "rundll32", "regsvr32",
        "osascript", "nc", "ncat", "netcat", "socat", "crontab", "schtasks", "launchctl",
        "invoke-expression", "iex",
    }
)  # fmt: skip
SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "cmd"})
_DASH_C = re.compile(r"(?:^|\s)(?:-c|/c)(?:\s|$)", re.I)
_PIPE_TO_SHELL = re.compile(r"\|\s*(?:sudo\s+)?(?:ba|z|da|k)?sh\b|\|\s*iex\b|\biex\s*\(", re.I)
_POWERSHELL_TELLS = re.compile(
    r"\b(?:DownloadString|DownloadFile|Invoke-Expression|FromBase64String)\b|"
    r"(?:^|\s)-(?:EncodedCommand|enc)\s",
    re.I,
)


def program_name(text: str) -> str:
    """The program a command string starts with: `"/usr/bin/curl -s x"` -> `curl`."""
    words = text.strip().split(None, 1)
    if not words:
        return ""
    name = re.split(r"[/\\]", words[0])[-1].lower()
    return name.removesuffix(".exe")


def shell_commands(text: str) -> Iterator[Found]:
    """Downloaders, script hosts and persistence tools named in a command literal, and
    commands piped into a shell."""
    program = program_name(text)
    if program in _DOWNLOADERS:
        yield Finding.SHELL_COMMAND, f"downloader {program}: {shown(text)!r}"
    elif program in _SCRIPT_HOSTS:
        yield Finding.SHELL_COMMAND, f"script host {program}: {shown(text)!r}"
    elif (
        (program in SHELLS and _DASH_C.search(text))
        or ("|" in text and _PIPE_TO_SHELL.search(text))
        or (("-" in text or "String" in text or "File" in text) and _POWERSHELL_TELLS.search(text))
    ):
        yield Finding.SHELL_COMMAND, f"shell command: {shown(text)!r}"


_SECRET_REGEXES = re.compile(
    r"1-9A-HJ-NP-Za-km-z"  # the base58 alphabet: Solana and Bitcoin keys
    r"|\[[^\]]{0,16}[aA]-[fF][^\]]{0,16}\]\{6[46]\}"  # 64 hex digits: an Ethereum private key
    r"|\b(?:AKIA|ASIA)(?:\[|\\w|\(\?)"  # AWS access key ids
    r"|\b(?:ghp_|gho_|ghs_|github_pat_|glpat-|xox[abprs]-|sk_live_|npm_)(?:\[|\\w|\(\?)"
)


def secret_patterns(text: str) -> Iterator[Found]:
    """Regexes that find private keys or tokens in files (how `faster_log` stole keys)."""
    regex_like = "[" in text or "\\" in text or "(?" in text  # every pattern holds one
    if regex_like and _SECRET_REGEXES.search(text):
        yield Finding.SECRET_PATTERN, f"key/token pattern: {shown(text)!r}"


# -- all at once -----------------------------------------------------------------------------------


def classify(
    text: str,
    escapes: int,
    own: Sequence[str] = (),
    in_attribute: bool = False,
    oid_line: bool = False,
    prose: bool = False,
) -> list[Found]:
    """Everything one string literal's value shows (`escapes`: how many `\\xNN` escapes it
    was written with). In an attribute (`#[cfg(..)]`, `#[doc = ..]`, `#[serde(rename = ..)]`)
    a value names something for the compiler or a derive: only its URLs count."""
    found: list[Found] = []
    found.extend(urls(text, own, in_attribute, oid_line, prose))
    if in_attribute:
        return found
    found.extend(blobs(text, escapes))
    found.extend(sensitive_paths(text))
    if is_secret_variable(text):
        found.append((Finding.SENSITIVE_ENV, f"secret-looking variable name {text!r}"))
    found.extend(shell_commands(text))
    found.extend(secret_patterns(text))
    return found


def suspicious(text: str, addresses: bool = True) -> bool:
    """Is `text` something worth hiding: a URL, (an address), a secret's path, a command?"""
    return bool(findings_keys(text, addresses))


def findings_keys(text: str, addresses: bool = True) -> set[tuple[Finding, str]]:
    """What `text` shows, without the text itself (`(URL, host)`, `(SENSITIVE_PATH, label)`):
    to tell whether pieces joined show something none of them shows alone."""
    found = classify(text.replace("\0", " "), 0)
    keys = {(kind, item.split(": ", 1)[0]) for kind, item in found if kind in _HIDDEN_KINDS}
    if not addresses:
        keys = {(kind, key) for kind, key in keys if not key.startswith("IP address")}
    return keys


_HIDDEN_KINDS = frozenset(
    {
        Finding.URL, Finding.SENSITIVE_PATH, Finding.SENSITIVE_ENV, Finding.SHELL_COMMAND,
        Finding.SECRET_PATTERN,
    }
)  # fmt: skip


def shown(text: str) -> str:
    """`text` on one line, cut to MAX_SHOWN characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_SHOWN else flat[: MAX_SHOWN - 3] + "..."
