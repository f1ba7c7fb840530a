"""Hostile input: generated paths, names, versions, policies and index lines never crash anything.

Each target runs FUZZ_EXAMPLES generated inputs (1,000 in CI; `CRATE_MIRROR_FUZZ_EXAMPLES=10000`
for the long run). The HTTP target checks, rather than assumes, that no request made the mirror
open a file outside its cache directory: a `sys.addaudithook` hook records every `open` event
while the fuzzed requests are served in-process (the upstream runs in a separate process, so
every open seen here is the mirror's own).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirror.app import create_app
from mirror.config import Settings
from mirror.errors import BadRequest, ConfigError
from mirror.http.front import MirrorRunner
from mirror.index import (
    CrateRef,
    IndexFile,
    IndexLine,
    index_path,
    parse_index_path,
    parse_target_path,
    validate_name,
    validate_version,
)
from mirror.policy.model import parse_policy
from mirror.policy.semver import Version, VersionReq
from tests import REPO
from tests.fixtures.h2_client import H2Client
from tests.fixtures.registry import Registry

FUZZ_EXAMPLES = int(os.environ.get("CRATE_MIRROR_FUZZ_EXAMPLES", "1000"))
LONG_RUN = FUZZ_EXAMPLES > 1000
fuzz = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not LONG_RUN,  # CI is reproducible; the long run explores new inputs
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# -- building blocks ---------------------------------------------------------------------------

KNOWN = ("serde", "itoa", "ryu", "memchr", "cfg-if", "unicode-ident")
NASTY_SEGMENTS = (
    "..",
    ".",
    "%2e%2e",
    "%2E%2E",
    "%2f",
    "%2F",
    "%5c",
    "\\",
    "%00",
    "%0a",
    "~",
    "/",
    "etc",
    "passwd",
    "%c0%ae%c0%ae",
    "..%2f",
    "%252e%252e",
    "crates",
    "tmp",
    "audit",
    "index",
    "config.json",
    "download",
    "api",
    "v1",
    "1",
    "2",
    "3",
    "se",
    "rd",
    "it",
    "oa",
    "%ff",
    "%e2%80%ae",
    "con",
    "nul",
    "a" * 300,
    "😀",
    "%",
    "%zz",
    ";",
    "?",
    "#",
    "*",
)
segment = st.one_of(
    st.sampled_from(NASTY_SEGMENTS),
    st.sampled_from(KNOWN),
    st.text(alphabet=st.characters(codec="ascii", exclude_characters="\r\n "), max_size=20),
    st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(-[a-z0-9.]{1,8})?", fullmatch=True),
)
PREFIXES = ("/index/", "/api/v1/crates/", "/", "/healthz", "/metrics", "/tuf/", "//", "/index")
paths = st.one_of(
    st.builds(
        lambda prefix, parts, tail: prefix + "/".join(parts) + tail,
        st.sampled_from(PREFIXES),
        st.lists(segment, max_size=6),
        st.sampled_from(("", "/", "/download", "?x=1", "#frag", "/.", "%2fdownload")),
    ),
    st.sampled_from(KNOWN).map(lambda n: "/index/" + index_path(n)),
    st.builds(lambda n, v: f"/api/v1/crates/{n}/{v}/download", st.sampled_from(KNOWN), segment),
)
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120)
# Headers the mirror reads (conditional requests, auth) or a proxy might forward.
request_headers = st.dictionaries(
    st.sampled_from(
        ("If-None-Match", "If-Modified-Since", "Authorization", "Range", "Accept-Encoding",
         "Content-Length", "Transfer-Encoding", "X-Forwarded-For", "Cookie")
    ),
    st.one_of(header_text, st.sampled_from(('"x"', "*", "W/\"a\", \"b\"", "bytes=0-1", "-1",
                                            "chunked", "gzip, br"))),
    max_size=3,
)  # fmt: skip
METHODS = ("GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT")


# -- pure targets ------------------------------------------------------------------------------


@fuzz
@given(st.text(max_size=80))
def test_crate_names_are_accepted_or_rejected_cleanly(name: str) -> None:
    """Only BadRequest ever escapes, and an accepted name always maps to a safe sparse path."""
    try:
        validate_name(name)
    except BadRequest:
        return
    path = index_path(name)
    assert ".." not in path and not path.startswith("/") and "\\" not in path
    assert parse_index_path(path) == name.lower()


@fuzz
@given(st.one_of(st.text(max_size=80), paths.map(lambda p: p.removeprefix("/index/"))))
def test_index_paths_never_name_anything_but_a_crate(path: str) -> None:
    """Path traversal: whatever parses is exactly the canonical path of a legal crate name."""
    try:
        name = parse_index_path(path)
    except BadRequest:
        return
    assert path == index_path(name)
    assert validate_name(name) == name


@fuzz
@given(
    st.one_of(
        st.text(max_size=140),
        st.from_regex(
            r"([a-z0-9_-]{1,2}/){1,2}[0-9a-fA-F]{62,66}\.[a-z0-9._/-]{1,12}", fullmatch=True
        ),
    )
)
def test_tuf_target_paths_never_name_anything_but_a_crate(path: str) -> None:
    """Path traversal: a parsed TUF target path is the canonical one, or it with a sha256 prefix."""
    try:
        name, digest = parse_target_path(path)
    except BadRequest:
        return
    head, _, tail = index_path(name).rpartition("/")
    expected = index_path(name) if digest is None else f"{head}/{digest}.{tail}".lstrip("/")
    assert path == expected
    assert digest is None or (len(digest) == 64 and digest == digest.lower())


@fuzz
@given(st.one_of(st.text(max_size=60), st.from_regex(r"[0-9.a-z+-]{1,30}", fullmatch=True)))
def test_versions_and_requirements_parse_or_raise_cleanly(text: str) -> None:
    try:
        validate_version(text)
    except BadRequest:
        pass
    else:
        assert str(Version.parse(text)) == text  # the router's check implies semver's
    with contextlib.suppress(ValueError):
        VersionReq.parse(text)
    with contextlib.suppress(BadRequest):
        CrateRef.parse(f"serde@{text}")


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
small_json = st.one_of(json_scalars, st.lists(json_scalars, max_size=3))
index_like = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.sampled_from(KNOWN), small_json),
        "vers": st.one_of(st.just("1.0.0"), small_json),
        "cksum": st.one_of(st.from_regex(r"[0-9a-f]{64}", fullmatch=True), small_json),
        "yanked": small_json,
        "pubtime": small_json,
        "links": small_json,
        "deps": small_json,
        "features": small_json,
    },
)


@fuzz
@given(
    st.one_of(
        st.binary(max_size=300),
        index_like.map(lambda d: json.dumps(d).encode()),
        st.lists(index_like.map(lambda d: json.dumps(d).encode()), max_size=5).map(b"\n".join),
    )
)
def test_index_lines_parse_or_are_kept_unparsed(raw: bytes) -> None:
    """Garbage from upstream is never a crash, and never a line a download can match."""
    try:
        line = IndexLine.parse(raw)
    except ValueError:
        pass
    else:
        assert len(line.cksum) == 64 and line.raw == raw
    parsed = IndexFile.parse(raw)
    for line in parsed.lines:
        assert parsed.find(line.vers) is not None
    assert parsed.keep(lambda _: True).raw.replace(b"\n", b"") in raw.replace(b"\n", b"") or (
        parsed.unparsed
    )


POLICY_KEYS = (
    "version", "rules", "typosquat", "deny", "yanked", "min_age", "advisories", "capabilities",
    "mode", "age", "protect_top", "protect", "corpus", "missing_pubtime", "db", "lock",
    "allow", "crate", "versions", "reason", "name",
)  # fmt: skip
policy_values = st.recursive(
    st.one_of(
        json_scalars,
        st.sampled_from(("block", "warn", "off", "72h", "1d", "*", ">=1, <2", "../../etc/passwd")),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(POLICY_KEYS), st.text(max_size=6)), inner, max_size=5
        ),
    ),
    max_leaves=20,
)
DEFAULT_POLICY = (REPO / "policies" / "default.yaml").read_bytes()


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, byte in edits:
        out[pos % len(out)] = byte
    return bytes(out)


@fuzz
@given(
    st.one_of(
        policy_values.map(lambda v: yaml.safe_dump(v).encode()),
        st.dictionaries(st.sampled_from(("version", "rules", "allow", "deny")), policy_values).map(
            lambda d: yaml.safe_dump({"version": 1, **d}).encode()
        ),
        st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6).map(
            lambda edits: _mutate(DEFAULT_POLICY, edits)
        ),
        st.binary(max_size=200),
    )
)
def test_policy_loading_accepts_or_explains(data: bytes) -> None:
    """A broken policy is a ConfigError with located problems, never a crash at reload time."""
    try:
        parse_policy(data, REPO / "policies" / "fuzzed.yaml")
    except ConfigError as e:
        assert e.problems and all(p.message for p in e.problems)


# -- the HTTP router, in-process, with file opens recorded -----------------------------------


class OpenRecorder:
    """Records every `open` audit event made off the test's own thread while active.

    The mirror runs entirely in other threads (its event loop, to_thread workers, the audit
    writer); the test thread is where hypothesis reads its own caches. Hooks cannot be removed,
    so one recorder is installed per process and switched on and off.
    """

    def __init__(self) -> None:
        self.active = False
        self.paths: list[str] = []
        self.ignored_thread = threading.get_ident()
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if (
            self.active
            and event == "open"
            and args
            and isinstance(args[0], str | bytes)
            and threading.get_ident() != self.ignored_thread
        ):
            path = args[0]
            self.paths.append(os.fsdecode(path))

    def outside(self, allowed: list[Path]) -> list[str]:
        roots = [str(p.resolve()) for p in allowed]
        return [
            p for p in self.paths
            if not any(os.path.realpath(p).startswith(r + os.sep) or os.path.realpath(p) == r
                       for r in roots)
        ]  # fmt: skip


_RECORDER: OpenRecorder | None = None


def recorder() -> OpenRecorder:
    global _RECORDER
    if _RECORDER is None:
        _RECORDER = OpenRecorder()
    return _RECORDER


@contextmanager
def serving(app: web.Application, port_wanted: int = 0) -> Iterator[int]:
    """Serve `app` on 127.0.0.1 from a thread with its own loop; yields the port."""
    loop = asyncio.new_event_loop()
    runner = MirrorRunner(app, access_log=None)  # the front door first, as `serve` does
    started = threading.Event()
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port_wanted)
        await site.start()
        port.append(runner.addresses[0][1])

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30)
    try:
        yield port[0]
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


@contextmanager
def upstream_process(registry: Registry) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.upstream", "--registry", str(registry.root)],
        stdout=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip()
        assert url.startswith("http://"), url
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


BARE_LF_ANSWER_SECONDS = 2.0  # a bare-LF head is refused at once, not after the idle limit


def raw_request(
    port: int,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    *,
    eol: str = "\r\n",
    after: bytes = b"",
) -> int:
    """Send one request byte for byte (no client-side URL cleaning); return the status.

    `eol` ends every line of the head (CRLF, or a bare LF no server may wait on); `after`
    is sent behind the head on the same connection, unanswered (a pipelined request).
    """
    extra = "".join(f"{k}: {v}{eol}" for k, v in (headers or {}).items())
    timeout = BARE_LF_ANSWER_SECONDS if eol == "\n" else 10
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(
            f"{method} {target} HTTP/1.1{eol}Host: 127.0.0.1{eol}{extra}Connection: close{eol}{eol}"
            .encode("utf-8", "surrogateescape") + after
        )  # fmt: skip
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    status_line = head.split(b"\r\n", 1)[0].split()
    return int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0


def reset_after_pipelining(port: int, warm: str, method: str, target: str) -> None:
    """A warm hit and a fuzzed request in one write, then a reset instead of reading."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"GET {warm} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            .encode("utf-8", "surrogateescape")
        )  # fmt: skip
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def over_http2(port: int, warm: str, method: str, target: str, headers: dict[str, str]) -> int:
    """The fuzzed request as a stream of a connection cargo's way upgraded (on a warm hit):
    its status, or 0 when it was reset (HTTP_1_1_REQUIRED) or the connection ended."""

    async def ask() -> int:
        client = await H2Client.upgrade(port, warm, strict=False)
        try:
            stream = client.get(target, headers, method=method)
            answers = await client.wait([1, stream], timeout=10)
        finally:
            await client.close()
        assert answers[0].status == 200
        return answers[1].status

    return asyncio.run(ask())


def garbage_over_http2(port: int, warm: str, frames: bytes) -> None:
    """Arbitrary bytes where HTTP/2 frames should follow the upgrade, then a close."""

    async def send() -> None:
        client = await H2Client.upgrade(port, warm)
        client.writer.write(frames)
        await client.writer.drain()
        await client.close()

    asyncio.run(send())


# How a fuzzed request reaches the server: a plain head, one whose lines end in bare LF (never
# a CRLFCRLF to wait for), behind a warm hit the front door answers then a reset, or as an
# HTTP/2 stream after cargo's upgrade (and arbitrary bytes as frames).
connection_shapes = st.sampled_from(
    ("plain", "plain", "plain", "bare LF", "pipelined, then reset", "HTTP/2", "HTTP/2 garbage")
)
# Where an escaped exception would be logged: aiohttp's loggers, and asyncio's for a task
# whose exception nobody retrieved.
LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.access", "asyncio")


class ErrorLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # aiohttp answers an unparseable request line itself (400) and logs it at ERROR with
        # a traceback; that is its parser refusing input, not an exception escaping the mirror.
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            self.records.append(record)


def test_open_recorder_sees_reads_from_server_threads(tmp_path: Path) -> None:
    """The check below is not vacuous: an open in another thread is recorded and flagged."""
    outside = tmp_path.parent / f"outside-{tmp_path.name}.txt"
    outside.write_text("secret")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "inside").write_text("ok")
    rec = recorder()
    rec.ignored_thread = threading.get_ident()
    rec.paths.clear()
    rec.active = True
    try:
        thread = threading.Thread(
            target=lambda: [outside.read_bytes(), (cache / "inside").read_bytes()]
        )
        thread.start()
        thread.join()
        outside.read_bytes()  # the test's own thread is not the mirror: not recorded
    finally:
        rec.active = False
        outside.unlink()
    assert rec.outside([cache]) == [str(outside)]


def test_fuzzed_requests_get_no_5xx_and_read_nothing_outside_the_cache(
    small_registry: Registry, mirror_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Traversal, odd methods and malformed paths: 4xx at worst, never a 5xx or a stray read."""
    rec = recorder()
    rec.ignored_thread = threading.get_ident()
    errors = ErrorLogs()
    for name in LOGGERS:
        logging.getLogger(name).addHandler(errors)
    with upstream_process(small_registry) as upstream_url:
        # HTTP/2 on loopback too (`auto` keeps a client on the same host on HTTP/1.1).
        settings = mirror_settings(None, upstream_index=upstream_url + "/", http2="always")
        app = create_app(settings)  # start-up reads (policy, Python modules) happen before
        statuses: dict[int, int] = {}
        over_h2: dict[int, int] = {}  # 0: sent back to HTTP/1.1 (or the connection ended)
        resets = garbage = 0
        warm_hit = "/index/" + index_path("serde")
        with serving(app) as port:
            # Warm up: import-on-first-use of codecs and the like is Python, not the mirror;
            # the second serde request leaves a prepared answer for the front door.
            for warm in ("/index/config.json", warm_hit, warm_hit, "/nope"):
                raw_request(port, "GET", warm)
            rec.paths.clear()
            rec.active = True
            try:

                @fuzz
                @given(
                    st.sampled_from(METHODS),
                    paths,
                    request_headers,
                    connection_shapes,
                    st.binary(max_size=300),
                )
                def one(
                    method: str, path: str, headers: dict[str, str], shape: str, frames: bytes
                ) -> None:
                    nonlocal resets, garbage
                    if shape == "pipelined, then reset":
                        reset_after_pipelining(port, warm_hit, method, path)
                        resets += 1
                        return
                    if shape == "HTTP/2 garbage":
                        garbage_over_http2(port, warm_hit, frames)
                        garbage += 1
                        return
                    if shape == "HTTP/2":
                        status = over_http2(port, warm_hit, method, path, headers)
                        over_h2[status] = over_h2.get(status, 0) + 1
                        assert status < 500, (method, path, status)
                        return
                    eol = "\n" if shape == "bare LF" else "\r\n"
                    status = raw_request(port, method, path, headers, eol=eol)
                    statuses[status] = statuses.get(status, 0) + 1
                    assert 0 < status < 500, (method, path, shape, status)
                    if shape == "bare LF":
                        assert status == 400, (method, path, status)

                one()
            finally:
                rec.active = False
    for name in LOGGERS:
        logging.getLogger(name).removeHandler(errors)
    assert sum(statuses.values()) + resets + sum(over_h2.values()) + garbage >= FUZZ_EXAMPLES
    assert resets and garbage and statuses.get(400) and over_h2.get(0)
    print("over HTTP/2:", over_h2)
    assert errors.records == [], [r.getMessage() for r in errors.records[:5]]
    allowed = [settings.cache_dir, Path(sys.prefix), Path(sys.base_prefix)]
    stray = rec.outside(allowed)
    assert stray == [], stray[:20]
    # The fuzzer did reach the cache: proof the hook was recording the mirror's own reads.
    assert any(p.startswith(str(settings.cache_dir)) for p in rec.paths) or statuses.get(200)
