"""The byte pre-filter of the content reader: which places in a Rust file could hold a
suspicious literal or construct (`content.py` then reads only the items around them).

One hyperscan database for all of them (without start-of-match, the costly option: each
token's handler finds its node from where the match ends).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import Enum

from mirror.scan.multimatch import Patterns
from mirror.scan.prefilter import EXPRESSIONS as CAPABILITY_EXPRESSIONS


class Token(Enum):
    STRING = 1  # something inside a string literal (blob, path, name, command, address)
    URL = 9  # `://`: a URL, unless a documentation host's in a comment or an attribute
    ADDRESS = 2  # a dotted quad: an IPv4 address, unless its line names an OID
    TEXT_ARRAY = 3  # the `]` closing an array of at least 12 printable character codes
    ENV_VARS = 4  # `vars()` / `vars_os()`: every environment variable
    HOME_DIR = 5  # `home_dir`
    ASSEMBLY = 6  # `concat!`/`format!` of literals, `push_str("..")` twice, `".." + ".."`
    DECODE = 7  # literal bytes to text: `from_utf8(&[..])`, `(b ^ K) as char`, `x ^= K`
    INCLUDE_BYTES = 8  # `include_bytes!`
    PULL = 10  # `#[path = ..]` or `include!(..)`: the file pulls in another (for contexts)


_B64 = rb"[A-Za-z0-9+/_-]"
_PRINTABLE_CODE = rb"(?:0[xX][2-7][0-9a-fA-F]|\d{2,3})(?:_?u8)?"
_SEP = rb"[ \t\r\n]*,[ \t\r\n]*"
_Q = rb"[\"/\\]"  # a path component starts at a quote or a separator
_SENSITIVE = (
    rb"\.ssh", rb"id_(?:rsa|dsa|ecdsa|ed25519)", rb"authorized_keys", rb"\.aws",
    rb"\.cargo[/\\]+credentials", rb"\"credentials\.toml", rb"\.git-credentials",
    rb"\.npmrc", rb"\.pypirc", rb"\.netrc", rb"\.docker", rb"\.kube", _Q + rb"\.env",
    rb"id\.json", _Q + rb"keystore", rb"\.(?:bitcoin|ethereum|electrum|monero)",
    rb"wallet\.dat", _Q + rb"(?:Login Data|Cookies|Local State|Web Data)",
    rb"logins\.json", rb"key4\.db", rb"cookies\.sqlite", rb"Local Storage", _Q + rb"tdata",
    rb"\.gnupg", rb"\.(?:bash|zsh)_history", rb"/etc/(?:passwd|shadow)",
)  # fmt: skip
_SECRET_WORDS = (
    rb"TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|KEY|PRIVKEY|APIKEY|CREDENTIAL|MNEMONIC|PHRASE"
    rb"|AUTH|COOKIE|SESSION|WEBHOOK"
)
_PROGRAMS = (
    rb"curl|wget|certutil|bitsadmin|powershell|pwsh|mshta|wscript|cscript|rundll32|regsvr32"
    rb"|osascript|nc|ncat|netcat|socat|crontab|schtasks|launchctl|tftp|scp|ftp|iwr|irm|iex"
    rb"|invoke-\w+|start-bitstransfer|sh|bash|zsh|dash|ksh|cmd"
)
_CASELESS = 1
_ONCE = 2  # reported once per file, where it first matches
# A decoding key written as a literal or a constant (`0x5a`, `b'k'`, `KEY`).
_KEY_CONSTANT = rb"(?:0[xX][0-9a-fA-F]+|\d+|b'[^'\n]{1,4}'|[A-Z_][A-Z0-9_]*\b)"
_EXPRESSIONS: tuple[tuple[bytes, Token, int], ...] = (
    # (expression, token, flags)
    (rb"://", Token.URL, 0),
    (rb"\d\.\d{1,3}\.\d{1,3}\.\d", Token.ADDRESS, 0),
    (rb"\"\[?[0-9a-fA-F]{0,4}::[0-9a-fA-F]", Token.STRING, 0),
    (rb"\"\[?[0-9a-fA-F]{1,4}::[\"\]/%]", Token.STRING, 0),
    (rb"\"[0-9a-fA-F]{1,4}:[0-9a-fA-F]{1,4}:", Token.STRING, 0),
    (_B64 + rb"{120}", Token.STRING, _ONCE),
    (rb"(?:\\x[0-9a-fA-F]{2}){64}", Token.STRING, 0),
    *((p, Token.STRING, 0) for p in _SENSITIVE),
    (rb"\"[A-Z0-9_]*(?:" + _SECRET_WORDS + rb")", Token.STRING, 0),
    (rb"\"(?:AWS|AZURE|GOOGLE_APPLICATION_CREDENTIALS|CARGO_REGISTRIES)_?", Token.STRING, 0),
    (rb"\"(?:HOME|USERPROFILE)\"", Token.STRING, 0),
    (rb"\"(?:[\w.-]*/)*(?:" + _PROGRAMS + rb")\b", Token.STRING, _CASELESS),
    (rb"\"[A-Za-z]:(?:\\\\[\w. -]+)*\\\\(?:" + _PROGRAMS + rb")\b", Token.STRING, _CASELESS),
    (rb"\| ?(?:sudo )?(?:ba|z|da|k)?sh[ \t\"';]", Token.STRING, 0),
    (rb"DownloadString|DownloadFile|FromBase64String|EncodedCommand|Invoke-", Token.STRING,
     _CASELESS),
    (rb"1-9A-HJ-NP-Za-km-z|\{6[46]\}", Token.STRING, 0),
    (rb"\b(?:AKIA|ASIA|ghp_|gho_|ghs_|github_pat_|glpat-|xox[abprs]-|sk_live_|npm_)",
     Token.STRING, 0),
    (rb"\[[ \t\r\n]*(?:" + _PRINTABLE_CODE + rb",[ \t\r\n]*){11}", Token.TEXT_ARRAY, 0),
    (rb"\bvars(?:_os)?[ \t]*\([ \t]*\)", Token.ENV_VARS, 0),
    (rb"\bhome_dir\b", Token.HOME_DIR, 0),
    (rb"\bconcat![ \t]*[(\[{][^()\n]*\"[ \t]*,[ \t]*\"", Token.ASSEMBLY, 0),
    (rb"\bformat(?:_args)?![ \t]*\([ \t]*\"[^\"\n]*\{[^\"\n]*\"[ \t]*,[ \t\r\n]*\"",
     Token.ASSEMBLY, 0),
    (rb"\bpush_str[ \t]*\([ \t]*\"[^\"\n]{0,40}\"[ \t]*\)[ \t]*;[ \t\r\n]*"
     rb"\w+\.push_str[ \t]*\([ \t]*\"", Token.ASSEMBLY, 0),
    (rb"\"[ \t]*(?:\.[ \t]*to_(?:string|owned)\(\)|\))?[ \t\r\n]*\+[ \t\r\n]*&?\"",
     Token.ASSEMBLY, 0),
    (rb"from_utf8(?:_lossy|_unchecked)?[ \t]*\([ \t]*&?[ \t]*(?:vec![ \t]*)?(?:\[|b\")",
     Token.DECODE, 0),
    (rb"\)[ \t]*as[ \t]+char\b", Token.DECODE, 0),  # `(b ^ 0x5a) as char`
    (rb"\|[ \t]*\(?[ \t]*\*?\w+[ \t]*\^[ \t]*" + _KEY_CONSTANT, Token.DECODE, 0),  # `|b| b ^ K`
    (rb"\^=[ \t]*" + _KEY_CONSTANT + rb"[ \t]*;", Token.DECODE, 0),  # `*b ^= 0x5a;`
    (rb"\binclude_bytes![ \t]*\(", Token.INCLUDE_BYTES, 0),
    (rb"\bpath\s*=\s*r?#*\"|\binclude\s*!\s*[(\[{]", Token.PULL, _ONCE),  # as modules.py
)  # fmt: skip
# The capability reader's tokens first (reported by their start), then these (by their
# end): one hyperscan scan per file for both readers.
_SPLIT = len(CAPABILITY_EXPRESSIONS)
_PATTERNS = Patterns(
    [*CAPABILITY_EXPRESSIONS, *(expression for expression, _, _ in _EXPRESSIONS)],
    caseless=[_SPLIT + i for i, (_, _, flags) in enumerate(_EXPRESSIONS) if flags & _CASELESS],
    once=[_SPLIT + i for i, (_, _, flags) in enumerate(_EXPRESSIONS) if flags & _ONCE],
    start_of_match=range(_SPLIT),
)
_TOKENS = tuple(token for _, token, _ in _EXPRESSIONS)
# Base64 runs: the trigger says a file has one; they are found exactly by mapping the
# alphabet to one byte (C speed): a regex would try each start position 120 times.
_B64_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-")
_B64_MAP = bytes(1 if byte in _B64_BYTES else 0 for byte in range(256))
_B64_RUN = b"\x01" * 120
# An array of printable codes from its `[` to its `]` (the trigger ends at its 12th code).
_TEXT_ARRAY = re.compile(
    rb"\[[ \t\r\n]*(?:" + _PRINTABLE_CODE + _SEP + rb")*" + _PRINTABLE_CODE + rb"[ \t\r\n,]*\]"
)
_B64_TRIGGER = next(
    i for i, (_, token, flags) in enumerate(_EXPRESSIONS) if token is Token.STRING and flags & _ONCE
)

Hit = tuple[int, Token, int]  # (offset of the match's last byte, its token, its start or -1)


def scan_tokens(source: bytes) -> tuple[list[tuple[int, int]], list[Hit]]:
    """One scan for both readers: where the capability tokens start (`prefilter`'s
    (start, index)), and the content hits."""
    starts, ends = _PATTERNS.starts_and_ends(source, _SPLIT)
    return starts, _content_hits(source, ends)


def content_hits(source: bytes) -> list[Hit]:
    """Every place a content token ends, in order."""
    return scan_tokens(source)[1]


def _content_hits(source: bytes, ends: list[tuple[int, int]]) -> list[Hit]:
    """Every place a content token ends, in order (one per offset and token). Base64 runs
    and arrays of codes are found exactly (with where they start); `PULL` is reported once,
    wherever it first is."""
    found: list[Hit] = []
    for end, index in ends:
        token = _TOKENS[index]
        if index == _B64_TRIGGER:
            found.extend(_base64_runs(source, end - len(_B64_RUN)))
        elif token is Token.TEXT_ARRAY:
            opening = source.rfind(b"[", 0, end)
            array = _TEXT_ARRAY.match(source, opening) if opening >= 0 else None
            if array is not None:
                found.append((array.end() - 1, token, opening))
        else:
            found.append((end - 1, token, -1))
    found.sort(key=lambda hit: hit[0])  # (hyperscan reports ends in order; the runs not)
    return found


def _base64_runs(source: bytes, start: int) -> Iterator[Hit]:
    """The ends of the runs of 120+ base64-alphabet bytes from `start` (the first one)."""
    mapped = source.translate(_B64_MAP)
    at = mapped.find(_B64_RUN, start)
    while at >= 0:
        end = mapped.find(b"\0", at)
        end = len(source) if end < 0 else end
        yield end - 1, Token.STRING, at
        at = mapped.find(_B64_RUN, end)
