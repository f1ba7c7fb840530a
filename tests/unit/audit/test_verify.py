"""The hash chain across rotation, and each kind of tampering named at the right seq."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from mirror.audit import AuditEvent, AuditLog, verify_chain
from mirror.audit.event import ZERO_HASH, expected_hash
from mirror.audit.files import chain_files


def write_events(directory: Path, count: int, max_file_bytes: int = 64 * 2**20) -> None:
    log = AuditLog(directory, max_file_bytes=max_file_bytes, flush_interval=60, fsync=False)
    for i in range(count):
        log.record(
            AuditEvent(
                "allow", "default", "no rule matched", route="download",
                crate="serde", version=f"1.0.{i}", client="127.0.0.1", request_id=f"r{i}",
            )
        )  # fmt: skip
        if i % 7 == 0:
            log.flush()  # several batches, so rotation happens within and between batches
    log.close()


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def seq_of(line: bytes) -> int:
    return int(json.loads(line)["seq"])


@pytest.fixture
def rotated_chain(tmp_path: Path) -> Path:
    """40 events spread over several small files."""
    write_events(tmp_path, 40, max_file_bytes=2000)
    return tmp_path


def test_chain_continues_across_rotation(rotated_chain: Path) -> None:
    """Each file's first event links to the last event of the file before it."""
    files = [path for _, path in chain_files(rotated_chain)]
    assert len(files) >= 3
    assert all(path.stat().st_size <= 2000 for path in files)
    first = json.loads(lines_of(files[0])[0])
    assert first["seq"] == 1 and first["prev"] == ZERO_HASH
    for before, after in itertools.pairwise(files):
        last = json.loads(lines_of(before)[-1])
        head = json.loads(lines_of(after)[0])
        assert head["prev"] == last["hash"] and head["seq"] == last["seq"] + 1
    result = verify_chain(rotated_chain)
    assert result.ok and result.broken is None
    assert (result.events, result.files, result.last_seq) == (40, len(files), 40)
    assert result.last_hash == json.loads(lines_of(files[-1])[-1])["hash"]


def test_each_event_carries_the_decision_fields(tmp_path: Path) -> None:
    """An event line holds time, ids, route, crate, version, action, rule, reason, digest, cksum."""
    log = AuditLog(tmp_path, fsync=False)
    log.record(
        AuditEvent(
            "block", "typosquat", "too close to serde", route="index", crate="serde_",
            version="1.0.0", request_id="abc123", client="10.0.0.7", policy_digest="d" * 64,
            cksum="c" * 64,
        )
    )  # fmt: skip
    log.close()
    (event,) = [json.loads(line) for line in lines_of(tmp_path / "audit-000001.jsonl")]
    assert event["time"].endswith("Z") and "T" in event["time"]
    assert {k: event[k] for k in ("action", "rule", "request_id", "client", "cksum")} == {
        "action": "block", "rule": "typosquat", "request_id": "abc123",
        "client": "10.0.0.7", "cksum": "c" * 64,
    }  # fmt: skip
    assert event["hash"] == expected_hash(event)


def rewrite(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def test_edited_field_is_reported_at_its_seq(rotated_chain: Path) -> None:
    """Changing a block into an allow breaks that event's own hash."""
    path = chain_files(rotated_chain)[1][1]
    lines = lines_of(path)
    target = seq_of(lines[2])
    lines[2] = lines[2].replace(b'"action":"allow"', b'"action":"block"')
    rewrite(path, lines)
    result = verify_chain(rotated_chain)
    assert result.broken is not None and not result.ok
    assert (result.broken.kind, result.broken.seq) == ("edited", target)
    assert (result.broken.file, result.broken.line) == (path.name, 3)


def test_edited_and_rehashed_event_is_caught_by_the_next_link(rotated_chain: Path) -> None:
    """An editor who recomputes the edited event's hash still breaks the next event's prev."""
    path = chain_files(rotated_chain)[0][1]
    lines = lines_of(path)
    event: dict[str, Any] = json.loads(lines[1])
    event["client"] = "192.0.2.1"
    event["hash"] = expected_hash(event)
    lines[1] = json.dumps(event).encode() + b"\n"
    rewrite(path, lines)
    result = verify_chain(rotated_chain)
    assert result.broken is not None
    assert (result.broken.kind, result.broken.seq) == ("edited", event["seq"] + 1)
    assert f"seq {event['seq']}" in result.broken.message


def test_deleted_line_is_named(rotated_chain: Path) -> None:
    """Removing one event leaves a seq gap: the missing seq is named."""
    path = chain_files(rotated_chain)[1][1]
    lines = lines_of(path)
    gone = seq_of(lines[1])
    del lines[1]
    rewrite(path, lines)
    result = verify_chain(rotated_chain)
    assert result.broken is not None
    assert (result.broken.kind, result.broken.seq) == ("deleted", gone + 1)
    assert f"seq {gone} deleted" in result.broken.message


def test_swapped_lines_are_reported_as_reordered(rotated_chain: Path) -> None:
    """Swapping two events is told apart from a deletion: the expected seq is found later."""
    path = chain_files(rotated_chain)[0][1]
    lines = lines_of(path)
    first = seq_of(lines[1])
    lines[1], lines[2] = lines[2], lines[1]
    rewrite(path, lines)
    result = verify_chain(rotated_chain)
    assert result.broken is not None
    assert (result.broken.kind, result.broken.seq, result.broken.line) == (
        "reordered", first + 1, 2,
    )  # fmt: skip
    assert f"{path.name}:3" in result.broken.message


def test_truncated_last_line_is_reported(rotated_chain: Path) -> None:
    """A last line cut mid-way (no newline) is a truncation, not silently skipped."""
    path = chain_files(rotated_chain)[-1][1]
    data = path.read_bytes()
    path.write_bytes(data[:-30])
    result = verify_chain(rotated_chain)
    assert result.broken is not None
    assert result.broken.kind == "truncated"
    assert (result.broken.file, result.broken.line) == (path.name, len(data.splitlines()))


def test_deleted_middle_file_is_named(rotated_chain: Path) -> None:
    """Removing a whole file leaves a seq gap at the next file's first line."""
    files = chain_files(rotated_chain)
    middle = files[1][1]
    missing = [seq_of(line) for line in lines_of(middle)]
    middle.unlink()
    result = verify_chain(rotated_chain)
    assert result.broken is not None
    assert result.broken.kind == "deleted"
    assert (result.broken.file, result.broken.line) == (files[2][1].name, 1)
    assert f"seqs {missing[0]}..{missing[-1]} deleted" in result.broken.message
    assert middle.name in result.broken.message


def test_deleted_oldest_file_is_named(rotated_chain: Path) -> None:
    """Dropping the first file means the chain no longer starts at seq 1."""
    chain_files(rotated_chain)[0][1].unlink()
    result = verify_chain(rotated_chain)
    assert result.broken is not None
    assert result.broken.kind == "deleted" and "seqs 1.." in result.broken.message


def test_anchor_detects_events_cut_from_the_end(rotated_chain: Path) -> None:
    """Dropping the newest events leaves a valid chain; a noted last hash exposes it."""
    noted = verify_chain(rotated_chain).last_hash
    assert verify_chain(rotated_chain, anchor=noted).ok
    path = chain_files(rotated_chain)[-1][1]
    rewrite(path, lines_of(path)[:-2])
    assert verify_chain(rotated_chain).ok
    cut = verify_chain(rotated_chain, anchor=noted)
    assert not cut.ok and cut.anchor_found is False and cut.broken is None


def test_empty_directory_verifies_as_empty(tmp_path: Path) -> None:
    """No files is a valid, empty chain."""
    result = verify_chain(tmp_path)
    assert result.ok and (result.events, result.files, result.last_hash) == (0, 0, ZERO_HASH)
