"""Hostile clients against the real server process: they cost little and normal clients still win.

Oversized headers and bodies are refused with a 4xx before they are buffered, thousands of idle
connections do not delay a normal request, and slowloris-style clients (headers trickled a byte
at a time, or a connection that never sends anything) are cut off by a header-read timeout.
Measured on aiohttp 3.14: both kinds are closed after exactly 75 s, aiohttp's keepalive timer
(armed at connect, not extended by partial headers); the test asks for 10 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirror.index import index_path
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

IDLE_CONNECTIONS = 2000
NORMAL_REQUEST_BUDGET = 2.0  # seconds a normal request may take while hostile clients sit idle
HEADER_TIMEOUT_EXPECTED = 10.0  # seconds; a client must send its full headers within this
RSS_GROWTH_LIMIT = 64 * 2**20  # bytes of server RSS 2,000 idle connections may add


@pytest.fixture(scope="module")
def mirror(
    small_registry_template: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MirrorProcess]:
    """One real server for the module (start-up is the expensive part)."""
    root = tmp_path_factory.mktemp("hostile")
    registry = small_registry_template.copy_to(root / "registry")
    with FakeUpstream(registry).in_thread() as upstream:
        proc = MirrorProcess(root / "cache", upstream=upstream.url + "/").start()
        try:
            yield proc
        finally:
            proc.stop()


def _status_of(raw: bytes) -> int:
    parts = raw.split(b"\r\n", 1)[0].split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _send(mirror: MirrorProcess, data: bytes, *, timeout: float = 10.0) -> int:
    """Send raw bytes, return the answer's status (0 if the server just closed)."""
    with socket.create_connection(("127.0.0.1", mirror.port), timeout=timeout) as sock:
        with contextlib.suppress(ConnectionError):
            sock.sendall(data)
        answer = b""
        with contextlib.suppress(ConnectionError, TimeoutError):
            while b"\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
    return _status_of(answer)


def _answer_time(mirror: MirrorProcess, data: bytes, *, timeout: float) -> tuple[int, float]:
    """(status, seconds until the first answer byte or the close) for raw bytes."""
    started = time.monotonic()
    return _send(mirror, data, timeout=timeout), time.monotonic() - started


def _normal_get(mirror: MirrorProcess, path: str) -> tuple[int, float]:
    started = time.monotonic()
    with urllib.request.urlopen(mirror.url + path, timeout=30) as resp:
        resp.read()
        return resp.status, time.monotonic() - started


def _rss(mirror: MirrorProcess) -> int:
    assert mirror.proc is not None
    for line in Path(f"/proc/{mirror.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_oversized_header_is_refused_with_4xx(mirror: MirrorProcess) -> None:
    """A 64 KiB header is not buffered and processed: header-flood memory exhaustion."""
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n"
    assert 400 <= _send(mirror, big) < 500
    assert _normal_get(mirror, "/healthz")[0] == 200


def test_too_many_headers_are_refused_with_4xx(mirror: MirrorProcess) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(1000))
    status = _send(mirror, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert 400 <= status < 500


def test_oversized_request_line_is_refused_with_4xx(mirror: MirrorProcess) -> None:
    line = b"GET /index/" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert 400 <= _send(mirror, line) < 500


def test_huge_declared_body_is_refused_without_reading_it(mirror: MirrorProcess) -> None:
    """A client announcing 10 GiB gets a 4xx at once; the mirror never waits for the body."""
    head = b"POST /index/config.json HTTP/1.1\r\nHost: x\r\nContent-Length: 10737418240\r\n\r\n"
    started = time.monotonic()
    status = _send(mirror, head + b"x" * 65536, timeout=10)
    assert 400 <= status < 500
    assert time.monotonic() - started < 5
    assert _normal_get(mirror, "/healthz")[0] == 200


@pytest.mark.parametrize("target", ["/healthz", "/index/" + index_path("itoa"), "/nope"])
def test_get_announcing_a_huge_body_is_refused_and_closed_at_once(
    mirror: MirrorProcess, target: str
) -> None:
    """`GET` with `Content-Length: 10 GiB`: a 413 at once, whether the route exists or not,
    and the connection closed after a short linger, not held while the body drains."""
    head = f"GET {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 10737418240\r\n\r\n"
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", mirror.port), timeout=5) as sock:
        sock.sendall(head.encode() + b"x" * 4096)
        answer = sock.recv(4096)
        answered = time.monotonic() - started
        with contextlib.suppress(ConnectionError):
            while sock.recv(4096):  # the client sends no more: the server must close
                pass
        closed = time.monotonic() - started
    assert _status_of(answer) == 413
    assert b"takes no request body" in answer
    assert answered < 1.0
    assert closed < 3.0  # the 1 s lingering time, not aiohttp's 10 s


def test_get_with_an_empty_body_is_served(mirror: MirrorProcess) -> None:
    """`Content-Length: 0` announces no body: such a GET is answered as usual."""
    assert _send(mirror, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n") == 200


def test_thousands_of_idle_connections_do_not_block_normal_clients(
    mirror: MirrorProcess,
) -> None:
    """2,000 connections that send nothing: a cargo-like request is still served fast."""
    path = "/index/" + index_path("itoa")
    assert _normal_get(mirror, path)[0] == 200  # warm: measure serving, not the first fetch
    rss_before = _rss(mirror)
    idle: list[socket.socket] = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            idle.append(socket.create_connection(("127.0.0.1", mirror.port), timeout=10))
        # A few with half a request line, the cheapest slowloris.
        for sock in idle[:200]:
            sock.sendall(b"GET /index/se/rd/serde HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.5)  # let the server accept them all
        for _ in range(5):
            status, took = _normal_get(mirror, path)
            assert status == 200
            assert took < NORMAL_REQUEST_BUDGET
        dl_status, _ = _normal_get(mirror, "/healthz")
        assert dl_status == 200
        assert _rss(mirror) - rss_before < RSS_GROWTH_LIMIT
    finally:
        for sock in idle:
            sock.close()


def test_slowloris_clients_are_cut_off(mirror: MirrorProcess) -> None:
    """Trickled headers and silent connections are closed within the header timeout."""
    trickle = socket.create_connection(("127.0.0.1", mirror.port), timeout=1)
    silent = socket.create_connection(("127.0.0.1", mirror.port), timeout=1)
    trickle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    deadline = time.monotonic() + HEADER_TIMEOUT_EXPECTED + 2
    closed = {"trickle": False, "silent": False}
    try:
        while time.monotonic() < deadline and not all(closed.values()):
            try:
                trickle.sendall(b"X")  # one byte of a never-ending header name
            except OSError:
                closed["trickle"] = True
            for name, sock in (("trickle", trickle), ("silent", silent)):
                if closed[name]:
                    continue
                sock.settimeout(0.5)
                try:
                    if sock.recv(4096) == b"":
                        closed[name] = True
                except TimeoutError:
                    pass
                except OSError:
                    closed[name] = True
    finally:
        trickle.close()
        silent.close()
    assert closed == {"trickle": True, "silent": True}


BAD_HEADS = {
    "bare LF line ends": b"GET /healthz HTTP/1.1\nHost: x\n\n",
    "bare LF after the request line": b"GET /healthz HTTP/1.1\nHost: x\r\n\r\n",
    "bare LF in a header": b"GET /healthz HTTP/1.1\r\nHost: x\n",
    "TLS hello on the plain port": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage",
    "no URL": b"GET garbage\r\n",
    "space in a header name": b"GET /healthz HTTP/1.1\r\nHo st: x\r\n",
}


@pytest.mark.parametrize("head", BAD_HEADS.values(), ids=BAD_HEADS.keys())
def test_malformed_heads_without_crlfcrlf_get_400_at_once(
    mirror: MirrorProcess, head: bytes
) -> None:
    """A head that can never end in CRLFCRLF is refused at its first bad byte, as plain
    aiohttp does, not left waiting for the idle limit (HEADER_TIMEOUT_EXPECTED)."""
    status, took = _answer_time(mirror, head, timeout=HEADER_TIMEOUT_EXPECTED / 2)
    assert status == 400
    assert took < 2.0


PIPELINED_RESETS = 300  # connections; before the fix about one in ten left a traceback


def test_pipelined_hit_then_reset_leaves_no_traceback(mirror: MirrorProcess) -> None:
    """A warm hit and a request the front door hands over, sent together, then a reset: the
    front door's answer to the hit fails, and nothing is left for aiohttp to choke on.

    The server is stopped (SIGSTOP) while the clients connect, send and reset, so every
    connection reaches it with its requests and its reset already queued: the race the
    issue measured under load, made certain.
    """
    hit = "/index/" + index_path("itoa")
    for _ in range(2):  # the handler answers the first and prepares the second
        assert _normal_get(mirror, hit)[0] == 200
    pipelined = (
        f"GET {hit} HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    ).encode()
    assert mirror.proc is not None
    log_size = mirror.log_path.stat().st_size
    os.kill(mirror.proc.pid, signal.SIGSTOP)
    try:
        for _ in range(PIPELINED_RESETS):
            sock = socket.create_connection(("127.0.0.1", mirror.port), timeout=5)
            sock.sendall(pipelined)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # RST, not FIN
    finally:
        os.kill(mirror.proc.pid, signal.SIGCONT)
    for _ in range(3):  # every reset connection has been read, answered and dropped by now
        assert _normal_get(mirror, "/healthz")[0] == 200
        time.sleep(0.3)
    new_lines = mirror.log_path.read_bytes()[log_size:].decode(errors="replace")
    for symptom in ("Traceback", "Task exception was never retrieved", "Fatal error"):
        assert symptom not in new_lines, new_lines[-3000:]
