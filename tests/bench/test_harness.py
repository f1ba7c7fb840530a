"""The benchmark harness's parts: wrk driving and parsing, nginx's static tree, RSS, report."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench import cold_fetch
from bench.load import Target, parse_wrk_report, run_wrk, write_targets
from bench.micro import parse_micro
from bench.nginx import NginxServer
from bench.report import render_markdown, summarize_targets
from bench.rss import PeakMemory, process_tree, read_status_kib
from tests.mirror_process import free_port

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")
needs_nginx = pytest.mark.skipif(
    shutil.which("nginx", path="/usr/sbin:/usr/bin") is None, reason="nginx not installed"
)

REPORT = (
    'BENCH-JSON {"requests":1000,"duration_us":2000000,"bytes":50000,"connect_errors":0,'
    '"read_errors":1,"write_errors":0,"status_errors":2,"timeouts":3,"p50_us":1500,'
    '"p90_us":2500,"p99_us":9000,"max_us":12000,"mean_us":1700.5}'
)


def test_wrk_report_is_parsed_from_the_script_line() -> None:
    """Rates, percentiles (µs -> ms) and the error total come from the JSON line."""
    result = parse_wrk_report("Running 2s test\n" + REPORT + "\n", connections=64, threads=1)
    assert result.requests_per_s == 500.0
    assert (result.p50_ms, result.p99_ms) == (1.5, 9.0)
    assert result.errors == 6
    assert result.bytes_per_request == 50.0


def test_wrk_output_without_the_script_line_is_an_error() -> None:
    """Text wrk printed without our done() line must not be mistaken for a result."""
    with pytest.raises(ValueError, match="BENCH-JSON"):
        parse_wrk_report("Requests/sec: 1000\n", connections=1, threads=1)


def test_target_paths_with_tabs_are_refused(tmp_path: Path) -> None:
    """A tab would split a path into a bogus header in the target file."""
    with pytest.raises(ValueError):
        write_targets(tmp_path / "t.tsv", [Target("/a\tb")])


@contextmanager
def _recording_server() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("If-None-Match")))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@needs_wrk
def test_wrk_rotates_targets_with_their_own_headers() -> None:
    """Every target is requested, each carrying its own If-None-Match (the 304 run)."""
    targets = [Target("/a", {"If-None-Match": '"etag-a"'}), Target("/b", {"If-None-Match": '"b"'})]
    with _recording_server() as (url, seen):
        result = run_wrk(url, targets, connections=2, duration=1)
    assert result.requests > 10
    assert result.errors == 0
    assert {("/a", '"etag-a"'), ("/b", '"b"')} == set(seen)


@needs_nginx
def test_nginx_serves_index_and_crates_at_the_mirrors_paths(tmp_path: Path) -> None:
    """Same URL paths as the mirror, the file's exact bytes, and 304 for its own ETag."""
    root = tmp_path / "static"
    index = root / "index" / "se" / "rd" / "serde"
    index.parent.mkdir(parents=True)
    index.write_bytes(b'{"name":"serde","vers":"1.0.0"}\n')
    crate = root / "crates" / "serde" / "serde-1.0.0.crate"
    crate.parent.mkdir(parents=True)
    crate.write_bytes(bytes(range(256)) * 100)
    with NginxServer(root, tmp_path / "prefix", free_port(), workers=1) as nginx:
        with urllib.request.urlopen(nginx.url + "/index/se/rd/serde") as resp:
            assert resp.read() == index.read_bytes()
            etag = resp.headers["ETag"]
        with urllib.request.urlopen(nginx.url + "/api/v1/crates/serde/1.0.0/download") as resp:
            assert (
                hashlib.sha256(resp.read()).digest() == hashlib.sha256(crate.read_bytes()).digest()
            )
        req = urllib.request.Request(
            nginx.url + "/index/se/rd/serde", headers={"If-None-Match": etag}
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req)
        assert err.value.code == 304
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(nginx.url + "/api/v1/crates/serde/9.9.9/download")
        assert err.value.code == 404
    assert nginx.proc is not None and nginx.proc.poll() is not None


def test_status_fields_are_read_in_kib() -> None:
    """VmRSS/Pss lines give kB values; an absent field reads as 0."""
    text = "Name:\tpython\nVmRSS:\t  51234 kB\nThreads:\t3\n"
    assert read_status_kib(text, "VmRSS") == 51234
    assert read_status_kib(text, "Pss") == 0


def test_peak_memory_sees_a_child_that_grows() -> None:
    """A forked child allocating 64 MB shows up in the tree's peak RSS."""
    code = "import time; time.sleep(0.3); b = bytearray(64 * 2**20); time.sleep(1.0)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        assert child.pid in process_tree(child.pid)
        with PeakMemory(child.pid, interval=0.05) as peak:
            child.wait(10)
        assert peak.max_rss_kib - peak.baseline.rss_kib > 48 * 1024
    finally:
        child.kill()
        child.wait()


def test_micro_benchmark_summaries_are_recognised() -> None:
    """The numbers of each sibling script's printed summary are extracted."""
    typo = "3,000 protected names: index built in 0.11 s\n  mix   52,069 checks/s  19.2 µs/check\n"
    assert parse_micro("names", typo, False) == {"mix checks/s @3000": 52069.0}
    scan = "40 crates, 9.8 MB unpacked in 2.00 s\nthroughput: 4.9 MB/s\n"
    assert parse_micro("scan", scan, False) == {"mb_per_s": 4.9, "crates": 40, "mb": 9.8}
    assert parse_micro("scan", "garbage", False)["error"]
    assert parse_micro("audit", 'x\n{"events_per_s": 5}\n', True) == {"events_per_s": 5}


def _load_row(scenario: str, conns: int, rps: float, p99: float, rss: float) -> dict[str, Any]:
    side = {"requests_per_s": 1000.0, "p50_ms": 1.0, "p99_ms": 2.0, "errors": 0}
    return {
        "scenario": scenario,
        "describe": scenario,
        "workers": 1,
        "connections": conns,
        "mirror": side,
        "nginx": side,
        "rps_ratio": rps,
        "p50_ratio": 1.0,
        "p99_ratio": p99,
        "mirror_memory": {"peak_rss_mb": rss, "baseline_rss_mb": 50.0},
    }


def test_targets_are_judged_against_the_issue_goals() -> None:
    """Ratios and RSS are compared with the issue's thresholds, in both directions."""
    results: dict[str, Any] = {
        "load": [
            _load_row("index_hit", 64, 0.4, 1.5, 60.0),
            _load_row("index_hit", 1000, 0.4, 1.5, 250.0),
            _load_row("crate_5mb", 64, 1.0, 1.0, 80.0),
        ],
        "cold_fetch": {"ratio": 1.2},
        "cold_fetch_default_policy": {"ratio": 1.05},
        "warm_fetch": {"ratio": 1.5},
    }
    met = {t["target"].split(" (")[0]: t["met"] for t in summarize_targets(results, 5 * 2**20)}
    assert met == {
        "warm hits req/s ratio": False,
        "warm hits p99 ratio": True,
        "req/s ratio at 1000 connections": False,  # 0.4 < 1.0, in every run
        "peak RSS MB at 1000 connections": False,
        "p99 ratio at 1000 connections": True,
        "RSS growth MB per concurrent 5 MB download": True,  # 30 MB over 64 downloads
        "cold cargo fetch mirror/direct": False,  # 1.2 > 1.1 (issue 16)
        "cold cargo fetch mirror/direct, shipped default policy": True,
        "warm cargo fetch mirror/nginx": False,
    }


def test_p99_at_1000_connections_is_judged_in_every_run() -> None:
    """Issue 16: p99 <= 2x nginx's at 1,000 connections in each of the runs, not on average."""
    rows = [_load_row("index_hit", 1000, 1.0, p99, 100.0) for p99 in (1.2, 2.4, 0.9)]
    for i, row in enumerate(rows):
        row["run"] = i + 1
    targets = summarize_targets({"load": rows}, 5 * 2**20)
    p99 = [(t["target"], t["met"]) for t in targets if t["target"].startswith("p99 ratio")]
    assert p99 == [
        ("p99 ratio at 1000 connections (workers=1, run 1)", True),
        ("p99 ratio at 1000 connections (workers=1, run 2)", False),
        ("p99 ratio at 1000 connections (workers=1, run 3)", True),
    ]


def test_markdown_report_has_every_section() -> None:
    """The printed table carries the load rows, fetch ratios, policy costs and targets."""
    results: dict[str, Any] = {
        "timestamp": "t",
        "quick": True,
        "machine": {
            "nproc": 2,
            "cpu_model": "cpu",
            "memory": "m",
            "python": "3.11",
            "nginx": "nginx",
            "wrk": "wrk",
        },
        "settings": {"wrk_threads": 1, "duration_s": 3.0, "warmup_s": 1.0},
        "load": [_load_row("index_hit", 64, 0.4, 1.5, 60.0)],
        "cold_fetch": {
            "a": "mirror",
            "b": "direct",
            "locked_crates": 113,
            "a_median_s": 3.0,
            "b_median_s": 2.0,
            "ratio": 1.5,
            "a_seconds": [3.0],
            "b_seconds": [2.0],
        },
        "cold_fetch_distant": {
            "a": "mirror, upstream 20 ms away",
            "b": "direct",
            "locked_crates": 113,
            "a_median_s": 1.0,
            "b_median_s": 2.5,
            "ratio": 0.4,
            "a_seconds": [1.0],
            "b_seconds": [2.5],
        },
        "micro": {"scan": {"mb_per_s": 4.9, "command": "python -m bench.scan_bench"}},
    }
    results["targets"] = summarize_targets(results, 5 * 2**20)
    text = render_markdown(results)
    assert "| index_hit | 1 | 64 | 1,000 | 1,000 | 0.40 |" in text
    assert "| mirror vs direct | 113 | 3.00 | 2.00 | 1.50 |" in text
    # For information: no target row (the target is the worst case, upstream on loopback).
    assert "| mirror, upstream 20 ms away vs direct | 113 | 1.00 | 2.50 | 0.40 |" in text
    assert "20 ms away |" not in text.split("| target |")[1]
    assert "mb_per_s 4.9" in text
    assert "| cold cargo fetch mirror/direct | 1.50 | <= 1.1 | no |" in text


def test_fetch_comparison_alternates_sides_and_takes_medians(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs go reference, mirror, reference, mirror; medians and the ratio follow. cargo
    multiplexes (offers HTTP/2) only to the mirror: the reference speaks HTTP/1.1."""
    order: list[str] = []
    times = iter([2.0, 3.0, 4.0, 5.0, 2.0, 4.0])

    def fake_fetch(workdir: Path, url: str, lockfile: Path, *, multiplexing: bool) -> float:
        order.append(f"{url}{'+mux' if multiplexing else ''}")
        return next(times)

    @contextmanager
    def side(url: str) -> Iterator[str]:
        yield url

    monkeypatch.setattr(cold_fetch, "timed_fetch", fake_fetch)
    result = cold_fetch.compare_fetches(
        tmp_path,
        tmp_path / "Cargo.lock",
        100,
        (("mirror", lambda: side("m")), ("direct", lambda: side("d"))),
        rounds=3,
    )
    assert order == ["d", "m+mux", "d", "m+mux", "d", "m+mux"]
    assert result.seconds_b == [2.0, 4.0, 2.0] and result.seconds_a == [3.0, 5.0, 4.0]
    assert result.ratio == 2.0  # median 4.0 / median 2.0
