"""One query index over every replica's chain: the console, `audit query` and pending reviews
see what all replicas decided, an approval on one closes a hold opened on another, each chain
is verified on its own, and alerts are claimed from the replica's own chain only."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from mirror.audit import AuditEvent, AuditLog
from mirror.audit.index import AuditIndex, EventQuery, IndexPlace
from mirror.config import load_settings


def _write(directory: Path, events: list[tuple[float, AuditEvent]]) -> None:
    log = AuditLog(directory)
    for stamp, event in events:
        log.record_at(stamp, event)
    log.close()


def _hold(crate: str, version: str) -> AuditEvent:
    return AuditEvent("block", "capabilities", f"{crate} held", route="download", crate=crate,
                      version=version)  # fmt: skip


def _approve(crate: str, version: str) -> AuditEvent:
    return AuditEvent("approve", "capabilities", "alice approved", route="console", crate=crate,
                      version=version, details={"by": "alice", "why": "reviewed"})  # fmt: skip


def _allow(crate: str) -> AuditEvent:
    return AuditEvent("allow", "default", "ok", route="index", crate=crate)


def _pending(index: AuditIndex) -> list[tuple[str, str]]:
    index.refresh()
    return [(h.crate, h.version) for h in index.pending()]


def test_one_index_reads_every_chain_in_time_order_and_each_event_from_its_own_file(
    tmp_path: Path,
) -> None:
    now = time.time()
    _write(tmp_path / "replica-a", [(now - 40, _allow("a1")), (now - 20, _allow("a2"))])
    _write(tmp_path / "replica-b", [(now - 30, _allow("b1")), (now - 10, _allow("b2"))])
    index = AuditIndex(tmp_path, tmp_path / "state" / "index.sqlite", own="replica-a")
    assert index.refresh() == 4
    rows = index.events(EventQuery())
    assert [(r.crate, r.replica) for r in rows] == [
        ("b2", "replica-b"), ("a2", "replica-a"), ("b1", "replica-b"), ("a1", "replica-a"),
    ]  # fmt: skip
    for row in rows:
        stored = index.event(row.seq)
        assert stored is not None and stored.intact and stored.replica == row.replica
        assert stored.fields["crate"] == row.crate  # read from that replica's chain file
    assert index.events(EventQuery(crate="b1"))[0].replica == "replica-b"
    # More lines in both chains: read from where each stopped.
    _write(tmp_path / "replica-b", [(now - 5, _allow("b3"))])
    _write(tmp_path / "replica-a", [(now - 4, _allow("a3"))])
    assert index.refresh() == 2 and index.refresh() == 0
    assert [r.crate for r in index.events(EventQuery(), limit=2)] == ["a3", "b3"]
    assert {c.replica: c.events for c in index.chains()} == {"replica-a": 3, "replica-b": 3}


def test_an_approval_on_one_replica_closes_a_hold_another_one_opened(tmp_path: Path) -> None:
    """The load balancer sends the refused request to B and the reviewer's approval to A:
    the review is no longer pending, wherever either was recorded."""
    now = time.time()
    _write(tmp_path / "replica-b", [(now - 30, _hold("evil", "2.0.0")),
                                    (now - 25, _hold("other", "1.0.0"))])  # fmt: skip
    index = AuditIndex(tmp_path, tmp_path / "a.sqlite", own="replica-a")
    assert _pending(index) == [("other", "1.0.0"), ("evil", "2.0.0")]
    _write(tmp_path / "replica-a", [(now - 10, _approve("evil", "2.0.0"))])
    assert _pending(index) == [("other", "1.0.0")]
    hold = index.hold("evil", "2.0.0")
    assert hold is not None and hold.review == "approve" and hold.reviewer == "alice"
    # The replica holding it again after the approval opens a new review.
    _write(tmp_path / "replica-b", [(now - 5, _hold("evil", "2.0.0"))])
    assert ("evil", "2.0.0") in _pending(index)


def test_each_chain_is_verified_on_its_own_and_a_replica_alerts_only_its_own_break(
    tmp_path: Path,
) -> None:
    now = time.time()
    _write(tmp_path / "replica-a", [(now - 20, _allow("a1"))])
    _write(tmp_path / "replica-b", [(now - 10, _allow("b1")), (now - 5, _allow("b2"))])
    chain = tmp_path / "replica-b" / "audit-000001.jsonl"
    chain.write_text(chain.read_text().replace('"b2"', '"bX"'))
    a = AuditIndex(tmp_path, tmp_path / "a.sqlite", own="replica-a")
    b = AuditIndex(tmp_path, tmp_path / "b.sqlite", own="replica-b")
    for index in (a, b):
        index.refresh()
        broken = {c.replica: c.broken for c in index.chains()}
        assert broken["replica-a"] is None
        found = broken["replica-b"]
        assert found is not None and (found.file, found.line, found.kind) == (
            "replica-b/audit-000001.jsonl", 2, "edited")  # fmt: skip
    assert a.status().broken is None and a.status().replica == "replica-a"
    assert b.status().broken is not None


def test_alerts_are_claimed_from_the_replicas_own_chain(tmp_path: Path) -> None:
    """Each replica's dispatcher reads every chain but alerts only what it recorded: one
    alert per event across the replicas, not one per replica."""
    now = time.time()
    _write(tmp_path / "replica-a", [(now - 60, _allow("start"))])
    _write(tmp_path / "replica-b", [(now - 60, _allow("start"))])
    a = AuditIndex(tmp_path, tmp_path / "a.sqlite", own="replica-a")
    b = AuditIndex(tmp_path, tmp_path / "b.sqlite", own="replica-b")
    for index in (a, b):
        index.refresh()
        assert index.claim("alerts", ["block"]) == []  # cursors start at the end
    _write(tmp_path / "replica-a", [(now - 20, _hold("x", "1.0.0"))])
    _write(tmp_path / "replica-b", [(now - 10, _hold("y", "1.0.0"))])
    claimed = {}
    for name, index in (("a", a), ("b", b)):
        index.refresh()
        claimed[name] = [(row.crate, row.replica) for row, _ in index.claim("alerts", ["block"])]
    assert claimed == {"a": [("x", "replica-a")], "b": [("y", "replica-b")]}


def test_a_chain_that_appears_with_older_events_is_merged_in_time_order_by_a_rebuild(
    tmp_path: Path,
) -> None:
    """A replica's directory collected later (or a volume mounted late) holds events older
    than those indexed: the index is rebuilt so pages stay in time order, and the alert
    cursor still points after the event it had reached (nothing replayed)."""
    now = time.time()
    _write(tmp_path / "replica-a", [(now - 10, _hold("new", "1.0.0"))])
    index = AuditIndex(tmp_path, tmp_path / "a.sqlite", own="replica-a")
    index.refresh()
    index.claim("alerts", ["block"])  # the cursor starts at a's last event
    built = index.status().built_at
    _write(tmp_path / "replica-b", [(now - 3600, _hold("old", "1.0.0"))])
    assert index.refresh() == 2  # rebuilt: both chains indexed again
    assert index.status().built_at != built
    assert [r.crate for r in index.events(EventQuery())] == ["new", "old"]
    since = index.events(EventQuery(since=_utc(now - 60)))
    assert [r.crate for r in since] == ["new"]
    assert index.claim("alerts", ["block"]) == []  # a's hold was alerted before the rebuild
    _write(tmp_path / "replica-a", [(now - 1, _hold("next", "1.0.0"))])
    index.refresh()
    assert [row.crate for row, _ in index.claim("alerts", ["block"])] == ["next"]


def test_a_replica_keeps_its_index_in_its_state_directory(tmp_path: Path) -> None:
    """SQLite is never shared between hosts: the audit directory may be a shared volume, so
    a replica's index is on its own disk, and covers every chain of the directory."""
    settings = load_settings(
        None, env={}, overrides={"cache_dir": tmp_path / "cache", "audit_dir": tmp_path / "audit",
                                 "replica_id": "replica-a"},
    )  # fmt: skip
    place = IndexPlace.of(settings)
    assert place == IndexPlace(
        tmp_path / "audit", tmp_path / "cache" / "state" / "audit-index.sqlite", "replica-a"
    )
    _write(settings.audit_directory, [(time.time(), _allow("mine"))])
    _write(tmp_path / "audit" / "replica-b", [(time.time(), _allow("theirs"))])
    index = place.open()
    assert index.refresh() == 2
    assert not (tmp_path / "audit" / "audit-index.sqlite").exists()
    assert not list((tmp_path / "audit").rglob("*.sqlite"))
    single = load_settings(None, env={}, overrides={"cache_dir": tmp_path / "one"})
    assert IndexPlace.of(single).path == tmp_path / "one" / "audit" / "audit-index.sqlite"


def test_an_index_of_schema_1_is_rebuilt(tmp_path: Path) -> None:
    """An index written before replicas (one chain, no chain column) is dropped and rebuilt
    from the files, not misread; the alert cursor survives."""
    _write(tmp_path, [(time.time(), _hold("evil", "1.0.0"))])
    with sqlite3.connect(tmp_path / "audit-index.sqlite") as conn:
        conn.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, ts REAL, action TEXT, file INTEGER,"
            " offset INTEGER, length INTEGER, hash TEXT);"
            "CREATE TABLE holds (crate_key TEXT, version TEXT, open INTEGER);"
            "INSERT INTO meta VALUES ('schema', '1'), ('file', '1'), ('offset', '5'),"
            " ('cursor:alerts', '1');"
        )
    conn.close()
    index = AuditIndex(tmp_path)
    assert _pending(index) == [("evil", "1.0.0")]
    assert index.status().events == 1
    assert index.claim("alerts", ["block"]) == []  # the cursor was kept: no replay


def _utc(stamp: float):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.fromtimestamp(stamp, UTC)


def test_an_explicit_rebuild_keeps_the_alert_cursor_on_its_event(tmp_path: Path) -> None:
    """Places change when chains are merged again; the cursor follows its event."""
    now = time.time()
    _write(tmp_path / "replica-a", [(now - 20, _hold("a", "1.0.0"))])
    index = AuditIndex(tmp_path, tmp_path / "a.sqlite", own="replica-a")
    index.refresh()
    index.claim("alerts", ["block"])
    _write(tmp_path / "replica-b", [(now - 30, _hold("b", "1.0.0"))])  # within the slack
    index.refresh()
    assert [r.crate for r in index.events(EventQuery())] == ["b", "a"]  # indexed later
    index.rebuild()
    assert [r.crate for r in index.events(EventQuery())] == ["a", "b"]  # time order
    assert index.claim("alerts", ["block"]) == []
