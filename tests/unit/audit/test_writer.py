"""AuditLog: concurrent writers, crash recovery, secret redaction, the near-name feed."""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from mirror.audit import RECOVERED_ACTION, AuditEvent, AuditLog, read_events, verify_chain
from mirror.audit.files import FEED_NAME, chain_files
from mirror.errors import StorageError
from tests import REPO


def append_from_process(directory: str, worker: str, count: int, start: Any) -> None:
    """One 'server worker': many small batches into the shared chain, with rotations."""
    log = AuditLog(Path(directory), max_file_bytes=8000, flush_interval=0.001, fsync=False)
    start.wait()  # both workers log at the same time, not one after the other
    for i in range(count):
        log.record(AuditEvent("allow", "default", "ok", crate=worker, version=f"0.0.{i}"))
        if i % 25 == 0:
            time.sleep(0.001)  # let the other process take the lock in between
    log.close()


def test_two_processes_append_one_valid_chain(tmp_path: Path) -> None:
    """Batches from two processes interleave into one chain holding every event."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [
        context.Process(target=append_from_process, args=(str(tmp_path), name, 400, start))
        for name in ("alpha", "beta")
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    result = verify_chain(tmp_path)
    assert result.ok, result.broken
    assert result.events == 800 and result.files > 2
    events = list(read_events(tmp_path))
    for name in ("alpha", "beta"):
        versions = [e["version"] for e in events if e["crate"] == name]
        assert versions == [f"0.0.{i}" for i in range(400)]  # all there, in record order
    crates = [e["crate"] for e in events]
    switches = sum(1 for a, b in itertools.pairwise(crates) if a != b)
    assert switches >= 1  # they really did share the chain


def write_some(directory: Path, count: int) -> None:
    log = AuditLog(directory, fsync=False)
    for i in range(count):
        log.record(AuditEvent("allow", "default", "ok", crate="rand", version=f"0.8.{i}"))
    log.close()


@pytest.mark.parametrize(
    "fragment",
    [b'{"action":"allow","crate":"ra', b"not json at all\n"],
    ids=["torn-write", "garbage-line"],
)
def test_recovery_after_a_crash_is_recorded(tmp_path: Path, fragment: bytes) -> None:
    """A damaged tail is reported by verify, then moved aside and recorded on reopen."""
    write_some(tmp_path, 5)
    path = tmp_path / "audit-000001.jsonl"
    good_size = path.stat().st_size
    with open(path, "ab") as handle:
        handle.write(fragment)
    before = verify_chain(tmp_path)
    assert before.broken is not None and before.broken.line == 6
    assert before.broken.kind == ("truncated" if not fragment.endswith(b"\n") else "edited")

    log = AuditLog(tmp_path, fsync=False)  # a restarted server
    log.record(AuditEvent("allow", "default", "after restart"))
    log.close()

    after = verify_chain(tmp_path)
    assert after.ok, after.broken
    assert after.events == 7
    (recovery,) = after.recoveries
    assert (recovery.seq, recovery.fragment_length) == (6, len(fragment))
    assert recovery.fragment_sha256 == hashlib.sha256(fragment).hexdigest()
    assert (tmp_path / recovery.moved_to).read_bytes() == fragment
    events = list(read_events(tmp_path))
    assert events[5]["action"] == RECOVERED_ACTION and events[5]["prev"] == events[4]["hash"]
    assert events[6]["reason"] == "after restart"
    assert path.read_bytes()[:good_size].count(b"\n") == 5


def test_torn_batch_keeps_its_complete_lines(tmp_path: Path) -> None:
    """A batch cut mid-way keeps the events fully written before the cut."""
    write_some(tmp_path, 4)
    path = tmp_path / "audit-000001.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2]) + lines[2] + lines[3][:40])
    AuditLog(tmp_path, fsync=False).close()
    result = verify_chain(tmp_path)
    assert result.ok and result.events == 4  # seq 1-3 kept, seq 4 is the recovery event
    assert result.recoveries[0].fragment_length == 40


def test_kill_9_mid_stream_still_verifies_after_restart(tmp_path: Path) -> None:
    """A writer killed with SIGKILL while logging leaves a chain that verifies after restart."""
    script = (
        "import sys; from pathlib import Path\n"
        "from mirror.audit import AuditEvent, AuditLog\n"
        "log = AuditLog(Path(sys.argv[1]), max_file_bytes=50000, flush_interval=0.001)\n"
        "print('ready', flush=True)\n"
        "i = 0\n"
        "while True:\n"
        "    log.record(AuditEvent('allow', 'default', 'x' * 200, crate='tokio', version=str(i)))\n"
        "    i += 1\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, cwd=REPO
    )
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    time.sleep(0.3)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    written = sum(1 for _ in read_events(tmp_path))
    assert written > 0
    AuditLog(tmp_path, fsync=False).close()
    result = verify_chain(tmp_path)
    assert result.ok, result.broken
    assert result.events >= written


def test_secrets_never_reach_the_disk(tmp_path: Path) -> None:
    """Credential-like keys are redacted at any depth, in the chain and in the feed."""
    secrets = ["Bearer s3cr3t-a", "s3cr3t-b", "s3cr3t-c", "s3cr3t-d", "s3cr3t-e"]
    log = AuditLog(tmp_path, fsync=False)
    log.record(
        AuditEvent(
            "block", "typosquat", "close to serde", crate="serde_",
            details={
                "Authorization": secrets[0],
                "headers": {"X-Api-Key": secrets[1], "Cookie": secrets[2]},
                "attempts": [{"password": secrets[3]}],
                "registry_token": secrets[4],
                "near_name": {"protected": "serde", "check": "edit", "distance": 1},
            },
        )
    )  # fmt: skip
    log.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert not any(secret.encode() in stored for secret in secrets)
    (event,) = read_events(tmp_path)
    assert event["details"]["headers"] == {"X-Api-Key": "[redacted]", "Cookie": "[redacted]"}
    assert event["details"]["attempts"] == [{"password": "[redacted]"}]
    assert verify_chain(tmp_path).ok


class Color(Enum):
    RED = "red"


def test_non_json_values_still_verify(tmp_path: Path) -> None:
    """Enums, paths, sets, int keys and NaN in details are stored so the hash round-trips."""
    log = AuditLog(tmp_path, fsync=False)
    details: dict[Any, Any] = {
        "e": Color.RED,
        "p": Path("/x"),
        "s": {3, 1},
        10: "a",
        9: "b",
        "f": float("nan"),
    }
    log.record(AuditEvent("approve", "admin", "approved", details=details))
    log.close()
    assert verify_chain(tmp_path).ok
    (event,) = read_events(tmp_path)
    assert event["details"] == {"e": "red", "p": "/x", "s": [1, 3], "10": "a", "9": "b", "f": "nan"}


def test_near_name_feed_holds_public_facts_only(tmp_path: Path) -> None:
    """Blocked, warned and allowed near-name events reach the feed, without who asked."""
    log = AuditLog(tmp_path, fsync=False)
    for action, rule in (("block", "risk"), ("warn", "risk"), ("allow", "allow-list")):
        near = {"protected": "serde", "check": "levenshtein", "distance": 1}
        log.record(
            AuditEvent(
                action, rule, "near serde", crate="serd", version="1.0.0",
                client="10.1.2.3", request_id=f"id-{action}", details={"near_name": near},
            )
        )  # fmt: skip
    log.record(AuditEvent("allow", "default", "ok", crate="serde", client="10.1.2.3"))
    log.close()
    feed = [json.loads(line) for line in (tmp_path / FEED_NAME).read_bytes().splitlines()]
    assert [(e["action"], e["rule"]) for e in feed] == [
        ("block", "risk"), ("warn", "risk"), ("allow", "allow-list"),
    ]  # fmt: skip
    for entry in feed:
        warned = {"reason"} if entry["action"] == "warn" else set()  # what it would have stopped
        assert set(entry) == {
            "time", "crate", "version", "action", "rule", "protected", "check", "distance", *warned,
        }  # fmt: skip
        assert (entry["crate"], entry["protected"], entry["distance"]) == ("serd", "serde", 1)
    assert b"10.1.2.3" not in (tmp_path / FEED_NAME).read_bytes()


def test_background_thread_flushes_without_being_asked(tmp_path: Path) -> None:
    """Events reach the disk within the flush interval while the log stays open."""
    log = AuditLog(tmp_path, flush_interval=0.01, fsync=False)
    try:
        log.record(AuditEvent("allow", "default", "ok"))
        deadline = time.monotonic() + 5
        while not list(read_events(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(list(read_events(tmp_path))) == 1
    finally:
        log.close()


def test_record_after_close_is_written_at_once(tmp_path: Path) -> None:
    """An event logged during shutdown, after close(), is not lost."""
    log = AuditLog(tmp_path, fsync=False)
    log.close()
    log.record(AuditEvent("policy.reload", "admin", "late"))
    assert [e["reason"] for e in read_events(tmp_path)] == ["late"]


def test_failed_write_keeps_events_for_the_next_flush(tmp_path: Path) -> None:
    """A write error raises StorageError and the batch is retried, not dropped."""
    log = AuditLog(tmp_path, flush_interval=60, fsync=False)
    blocker = tmp_path / "audit-000001.jsonl"
    blocker.mkdir()  # the chain file cannot be opened for appending
    log.record(AuditEvent("allow", "default", "first"))
    with pytest.raises(StorageError):
        log.flush()
    blocker.rmdir()
    log.record(AuditEvent("allow", "default", "second"))
    log.close()
    assert [e["reason"] for e in read_events(tmp_path)] == ["first", "second"]
    assert verify_chain(tmp_path).ok
    assert [n for n, _ in chain_files(tmp_path)] == [1]


def test_events_shed_under_a_long_outage_are_counted(tmp_path: Path) -> None:
    """Past max_pending queued events the oldest are dropped, and the drop is logged."""
    log = AuditLog(tmp_path, flush_interval=60, max_pending=2, fsync=False)
    blocker = tmp_path / "audit-000001.jsonl"
    blocker.mkdir()
    for i in range(5):
        log.record(AuditEvent("allow", "default", f"event {i}"))
    with pytest.raises(StorageError):
        log.flush()
    blocker.rmdir()
    log.close()
    events = list(read_events(tmp_path))
    assert [e["action"] for e in events] == ["audit.dropped", "allow", "allow"]
    assert events[0]["details"] == {"dropped": 3}
    assert [e["reason"] for e in events[1:]] == ["event 3", "event 4"]


def test_unrenderable_details_do_not_stop_the_log(tmp_path: Path) -> None:
    """An event whose details cannot be rendered is kept without them; others still flow."""
    looped: dict[str, Any] = {}
    looped["self"] = looped
    log = AuditLog(tmp_path, fsync=False)
    log.record(AuditEvent("warn", "age", "odd details", crate="syn", details=looped))
    log.record(AuditEvent("allow", "default", "fine"))
    log.close()
    first, second = read_events(tmp_path)
    assert first["crate"] == "syn" and "RecursionError" in first["details"]["audit_error"]
    assert second["reason"] == "fine"
    assert verify_chain(tmp_path).ok
