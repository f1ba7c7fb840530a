"""The background scanner's process (mirror.scan.worker): its frames and its answers. The
process itself is tested through mirror.serving.background_scanner
(tests/unit/serving/test_first_sightings.py)."""

from __future__ import annotations

import hashlib
import io
import json

from mirror.scan import worker
from tests.unit.scan.test_archive import build_tar, gz
from tests.unit.scan.test_capabilities import make_crate


def test_frames_read_back_and_a_cut_short_frame_is_the_end() -> None:
    stream = io.BytesIO(worker.frame(b"one") + worker.frame(b"") + worker.frame(b"three")[:-1])
    assert worker.read_frame(stream) == b"one"
    assert worker.read_frame(stream) == b""
    assert worker.read_frame(stream) is None  # cut short: the server went away mid-frame
    assert worker.read_frame(io.BytesIO(b"\0\0")) is None


def test_each_answer_says_what_it_holds() -> None:
    good = make_crate({"src/lib.rs": "use std::net::TcpStream;\n"})
    kind, body = worker.answer(good)[:1], worker.answer(good)[1:]
    assert kind == worker.REPORT
    report = json.loads(body)
    assert report["sha256"] == hashlib.sha256(good).hexdigest() and "net" in body.decode()
    hostile = gz(build_tar([("demo-1.0.0/Cargo.toml", b"[package]\n"), ("/etc/passwd", b"")]))
    refused = worker.answer(hostile)
    assert refused[:1] == worker.ARCHIVE_ERROR and b"unsafe path" in refused
    assert worker.answer(b"not a gzip stream")[:1] == worker.ARCHIVE_ERROR
