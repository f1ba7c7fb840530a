"""The near-name feed as JSON and Atom: newest first, evidence included, hostile text inert."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from mirror.audit.event import feed_entry
from mirror.audit.feed import newest_entries, render_atom, render_json
from mirror.audit.files import FEED_NAME

ATOM = "{http://www.w3.org/2005/Atom}"


def write_feed(directory: Path, entries: list[dict[str, object]], torn: bytes = b"") -> None:
    body = b"".join(json.dumps(e).encode() + b"\n" for e in entries)
    (directory / FEED_NAME).write_bytes(body + torn)


def entry(i: int, **extra: object) -> dict[str, object]:
    return {"time": f"2026-11-27T10:{i:02d}:00Z", "crate": f"crate{i}", "action": "quarantine",
            "rule": "risk", "protected": "serde", "check": "plural", **extra}  # fmt: skip


def test_newest_first_and_limited(tmp_path: Path) -> None:
    write_feed(tmp_path, [entry(i) for i in range(50)])
    got = newest_entries(tmp_path, 5)
    assert [e["crate"] for e in got] == ["crate49", "crate48", "crate47", "crate46", "crate45"]


def test_reads_across_blocks_and_skips_a_torn_last_line(tmp_path: Path) -> None:
    """Entries longer than one read block, and a half-written last line, are handled."""
    big = [entry(i, evidence=[{"id": "x", "points": 1, "text": "y" * 100_000}]) for i in range(6)]
    write_feed(tmp_path, big, torn=b'{"time": "2026-11-27T11:00')
    got = newest_entries(tmp_path, 10)
    assert [e["crate"] for e in got] == [f"crate{i}" for i in range(5, -1, -1)]


def test_no_feed_file_is_an_empty_feed(tmp_path: Path) -> None:
    assert newest_entries(tmp_path, 10) == []


def test_entry_from_a_risk_event_carries_the_evidence() -> None:
    event = {
        "time": "2026-11-27T10:00:00Z",
        "crate": "tracings",
        "version": "0.1.0",
        "action": "quarantine",
        "rule": "risk",
        "client": "10.0.0.7",
        "request_id": "r-1",
        "details": {
            "near_name": {"protected": "tracing", "check": "plural"},
            "risk": {
                "verdict": "quarantine",
                "score": 7.0,
                "meant": "tracing",
                "signals": [{"id": "typo", "points": 3, "text": "looks like `tracing`"}],
                "until": "2026-12-27T10:00:00Z",
            },
        },
    }
    got = feed_entry(event)
    assert got is not None
    assert got["meant"] == "tracing" and got["score"] == 7.0
    assert got["evidence"][0]["id"] == "typo"
    assert "client" not in got and "request_id" not in got  # who asked is never published


def test_a_dry_run_of_any_rule_is_in_the_feed_and_other_decisions_are_not() -> None:
    warn = {
        "time": "2026-11-27T10:00:00Z",
        "action": "warn",
        "rule": "capabilities",
        "crate": "memchr",
        "version": "2.9.0",
        "reason": "memchr 2.9.0 adds: net (build.rs:6 TcpStream::connect)",
        "client": "10.0.0.7",
        "details": {"would": "block", "added": {"net": []}},
    }
    got = feed_entry(warn)
    assert got == {
        "time": "2026-11-27T10:00:00Z",
        "crate": "memchr",
        "version": "2.9.0",
        "action": "warn",
        "rule": "capabilities",
        "would": "block",
        "reason": "memchr 2.9.0 adds: net (build.rs:6 TcpStream::connect)",
    }
    atom = ET.fromstring(render_atom([got], title="t", self_url="http://m/f", feed_id="tag:m"))
    entry = atom.find(f"{ATOM}entry")
    assert entry is not None
    assert entry.findtext(f"{ATOM}title") == "warn (would block): `memchr` 2.9.0 by capabilities"
    assert "TcpStream::connect" in (entry.findtext(f"{ATOM}content") or "")
    assert feed_entry({**warn, "action": "block"}) is None  # a stop without a near name
    assert feed_entry({**warn, "action": "allow", "details": {}}) is None


def test_json_document() -> None:
    body = json.loads(render_json([entry(1)], title="near names"))
    assert body["title"] == "near names"
    assert body["entries"][0]["crate"] == "crate1"


def test_atom_document_is_well_formed_and_complete() -> None:
    doc = render_atom(
        [entry(2, score=7.0, evidence=[{"id": "typo", "points": 3, "text": "looks like serde"}])],
        title="crate-mirror near names",
        self_url="http://mirror.example/feed/near-names.atom",
        feed_id="tag:mirror.example,2026:near-names",
    )
    root = ET.fromstring(doc)
    assert root.tag == f"{ATOM}feed"
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 1
    assert entries[0].findtext(f"{ATOM}title") == "quarantine: `crate2`, like `serde`"
    content = entries[0].findtext(f"{ATOM}content") or ""
    assert "+3 looks like serde" in content and "score 7.0" in content
    assert root.findtext(f"{ATOM}updated") == "2026-11-27T10:02:00Z"


def test_hostile_evidence_cannot_inject_markup_or_break_the_document() -> None:
    """Evidence quotes crate files: markup, entities and control characters stay text."""
    hostile = "</content><script>alert(1)</script>&amp;\x00\x1b]0;pwn\x07\ud800"
    doc = render_atom(
        [entry(3, evidence=[{"id": "url", "points": 1, "text": hostile}])],
        title="t",
        self_url='http://x/"><x>',
        feed_id="tag:x,2026:f",
    )
    root = ET.fromstring(doc)  # raises if ill-formed
    assert root.find(f".//{ATOM}script") is None
    content = root.find(f"{ATOM}entry/{ATOM}content")
    assert content is not None and "<script>alert(1)</script>&amp;" in (content.text or "")
    assert b"<script>" not in doc
