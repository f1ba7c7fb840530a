"""The audit query index: built from the chain files, kept current, checking the chain as it
reads, deriving pending reviews, and answering every console query from an index."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mirror.audit import AuditEvent, AuditLog
from mirror.audit.event import canonical_json, expected_hash
from mirror.audit.index import INDEX_NAME, AuditIndex, EventQuery, IndexPlace, event_query_sql


def write(directory: Path, events: list[AuditEvent], **options: Any) -> None:
    log = AuditLog(directory, **options)
    for event in events:
        log.record(event)
    log.close()


def hold(
    crate: str, version: str | None, rule: str = "capabilities", action: str = "block"
) -> AuditEvent:
    return AuditEvent(action, rule, f"{crate} held", route="download", crate=crate, version=version)


def allow(crate: str, version: str | None, route: str = "download") -> AuditEvent:
    return AuditEvent("allow", "default", "allowed", route=route, crate=crate, version=version)


def review(action: str, crate: str, version: str, by: str = "alice") -> AuditEvent:
    return AuditEvent(action, "capabilities", f"{by} {action}d", route="console", crate=crate,
                      version=version, details={"by": by, "why": "reviewed"})  # fmt: skip


def pending(index: AuditIndex) -> list[tuple[str, str]]:
    index.refresh()
    return [(h.crate, h.version) for h in index.pending()]


def lines(directory: Path, name: str = "audit-000001.jsonl") -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in (directory / name).read_text().splitlines()]


def rewrite(
    directory: Path, events: list[dict[str, Any]], name: str = "audit-000001.jsonl"
) -> None:
    (directory / name).write_text("".join(canonical_json(e) + "\n" for e in events))


# -- building and keeping up ------------------------------------------------------------------


def test_index_is_built_from_the_files_and_catches_up_with_new_lines(tmp_path: Path) -> None:
    """A missing index is built from every chain file; later lines are added incrementally."""
    write(tmp_path, [allow("itoa", "1.0.0") for _ in range(5)], max_file_bytes=600)
    assert len(list(tmp_path.glob("audit-*.jsonl"))) > 1  # rotation: several files
    index = AuditIndex(tmp_path)
    assert index.refresh() == 5
    assert index.refresh() == 0  # nothing new
    write(tmp_path, [hold("evil", "2.0.0")], max_file_bytes=600)
    assert index.refresh() == 1
    status = index.status()
    assert (status.events, status.last_seq, status.broken) == (6, 6, None)
    assert status.last_hash == lines(tmp_path, sorted(p.name for p in
                                     tmp_path.glob("audit-*.jsonl"))[-1])[-1]["hash"]  # fmt: skip
    rows = index.events(EventQuery())
    assert [r.seq for r in rows] == [6, 5, 4, 3, 2, 1]


def test_the_server_writer_keeps_the_index_current(tmp_path: Path) -> None:
    """`AuditLog(index=True)` (what the server's writer runs) leaves nothing to index."""
    write(tmp_path, [hold("evil", "2.0.0")], index=IndexPlace.beside(tmp_path))
    assert (tmp_path / INDEX_NAME).is_file()
    assert AuditIndex(tmp_path).refresh() == 0
    assert pending(AuditIndex(tmp_path)) == [("evil", "2.0.0")]


def test_a_deleted_index_is_rebuilt_and_a_rewritten_chain_reindexed(tmp_path: Path) -> None:
    """The files are the record: the index follows them when they change under it."""
    write(tmp_path, [allow("itoa", "1.0.0"), hold("evil", "2.0.0")])
    index = AuditIndex(tmp_path)
    index.refresh()
    index.close()
    for path in tmp_path.glob(INDEX_NAME + "*"):
        path.unlink()
    assert AuditIndex(tmp_path).refresh() == 2
    # The chain is replaced by a shorter, different one (restored from another host).
    for path in tmp_path.glob("audit-*.jsonl"):
        path.unlink()
    write(tmp_path, [hold("other", "1.0.0")])
    assert pending(index) == [("other", "1.0.0")]
    assert index.status().events == 1


def test_partial_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    """A line still being written (no newline yet) is read on a later refresh, whole."""
    write(tmp_path, [allow("itoa", "1.0.0"), hold("evil", "2.0.0")])
    path = tmp_path / "audit-000001.jsonl"
    data = path.read_bytes()
    cut = data.rindex(b"\n", 0, len(data) - 1) + 1
    path.write_bytes(data[: cut + 10])
    index = AuditIndex(tmp_path)
    assert index.refresh() == 1
    path.write_bytes(data)
    assert index.refresh() == 1
    assert index.status().broken is None


# -- checking the chain while reading ---------------------------------------------------------


def test_an_edited_event_is_reported_as_the_first_broken_link(tmp_path: Path) -> None:
    """Changing a field without re-hashing: `edited` at that event, as `audit verify` says."""
    write(tmp_path, [allow("a", "1.0.0"), hold("b", "1.0.0"), allow("c", "1.0.0")])
    events = lines(tmp_path)
    events[1]["reason"] = "nothing to see"
    rewrite(tmp_path, events)
    index = AuditIndex(tmp_path)
    index.refresh()
    broken = index.status().broken
    assert broken is not None and (broken.kind, broken.seq, broken.line) == ("edited", 2, 2)
    stored = index.event(2)
    assert stored is not None and not stored.intact


def test_a_rehashed_edit_breaks_the_next_link(tmp_path: Path) -> None:
    """Re-hashing an edited event moves the break to the next event's `prev`."""
    write(tmp_path, [allow("a", "1.0.0"), hold("b", "1.0.0"), allow("c", "1.0.0")])
    events = lines(tmp_path)
    events[1]["reason"] = "rewritten"
    events[1]["hash"] = expected_hash(events[1])
    rewrite(tmp_path, events)
    index = AuditIndex(tmp_path)
    index.refresh()
    broken = index.status().broken
    assert broken is not None and (broken.kind, broken.seq) == ("edited", 3)


def test_deleted_and_reordered_events_are_reported(tmp_path: Path) -> None:
    """A missing seq is `deleted`; a seq already seen is `reordered`."""
    write(tmp_path, [allow(c, "1.0.0") for c in "abcd"])
    events = lines(tmp_path)
    rewrite(tmp_path, [events[0], events[2], events[3]])
    index = AuditIndex(tmp_path)
    index.refresh()
    broken = index.status().broken
    assert broken is not None and (broken.kind, broken.seq) == ("deleted", 3)

    other = tmp_path / "other"
    write(other, [allow(c, "1.0.0") for c in "abcd"])
    events = lines(other)
    rewrite(other, [events[0], events[2], events[1], events[3]])
    index = AuditIndex(other)
    index.refresh()
    broken = index.status().broken
    assert broken is not None and broken.kind in ("deleted", "reordered")
    assert index.status().events == 4  # every line is still searchable


def test_a_clean_chain_stays_unbroken_across_many_refreshes(tmp_path: Path) -> None:
    """Incremental reads link each batch to the last indexed event: no false breaks."""
    index = AuditIndex(tmp_path)
    for i in range(5):
        write(tmp_path, [allow("a", f"1.0.{i}"), hold("b", f"1.0.{i}")], max_file_bytes=900)
        index.refresh()
    status = index.status()
    assert status.broken is None and status.events == 10


# -- pending reviews --------------------------------------------------------------------------


def test_pending_is_the_latest_hold_with_no_approval_denial_or_allow_since(
    tmp_path: Path,
) -> None:
    """Held versions are pending until a person approves or denies them or one is served."""
    index = AuditIndex(tmp_path)
    write(tmp_path, [hold("a", "1.0.0"), hold("b", "1.0.0"), hold("c", "1.0.0", rule="risk",
                     action="quarantine"), hold("a", "1.0.0")])  # fmt: skip
    assert pending(index) == [("a", "1.0.0"), ("c", "1.0.0"), ("b", "1.0.0")]
    assert index.hold("a", "1.0.0").count == 2  # type: ignore[union-attr]
    write(tmp_path, [review("approve", "A", "1.0.0"), review("deny", "b", "1.0.0")])
    assert pending(index) == [("c", "1.0.0")]
    approved = index.hold("a", "1.0.0")
    assert approved is not None and (approved.review, approved.reviewer) == ("approve", "alice")
    # Denied stays denied, however often cargo asks again.
    write(tmp_path, [hold("b", "1.0.0"), hold("b", "1.0.0")])
    assert pending(index) == [("c", "1.0.0")]
    assert [h.crate for h in index.denied()] == ["b"]
    # Approved, then revoked: the next hold opens a new review.
    write(tmp_path, [AuditEvent("revoke", "capabilities", "gone", crate="a"), hold("a", "1.0.0")])
    assert pending(index) == [("a", "1.0.0"), ("c", "1.0.0")]
    # A served download of the held version (quarantine over, policy changed) closes it.
    write(tmp_path, [allow("c", "1.0.0"), allow("a", "1.0.0", route="index")])
    assert pending(index) == [("a", "1.0.0")]


def test_verification_failures_are_not_reviews_and_crate_level_holds_clear_on_approval(
    tmp_path: Path,
) -> None:
    """Checksum/TUF/archive failures never become pending; a hold of the crate as a whole
    (no version) is closed by approving any version of it."""
    index = AuditIndex(tmp_path)
    write(tmp_path, [hold("x", "1.0.0", rule="checksum"), hold("y", "1.0.0", rule="tuf"),
                     hold("look-alike", None, rule="risk", action="quarantine")])  # fmt: skip
    assert pending(index) == [("look-alike", "")]
    write(tmp_path, [review("approve", "look_alike", "0.1.0")])
    assert pending(index) == []


def test_holds_of_a_lockfile_are_found_in_one_query(tmp_path: Path) -> None:
    """`holds_of` answers "what of this lockfile needs review" (names as crates.io compares)."""
    index = AuditIndex(tmp_path)
    write(tmp_path, [hold("a-b", "1.0.0"), hold("c", "2.0.0"), hold("d", "1.0.0"),
                     hold("e", None, rule="risk")])  # fmt: skip
    index.refresh()
    found = index.holds_of([("A_B", "1.0.0"), ("c", "1.0.0"), ("e", "3.0.0")])
    assert [(h.crate, h.version) for h in found] == [("a-b", "1.0.0"), ("e", "")]


# -- queries ----------------------------------------------------------------------------------


def test_event_filters_and_paging(tmp_path: Path) -> None:
    """Action, rule, crate (crates.io spelling), client, request id and time all filter."""
    events = [
        AuditEvent("block", "typosquat", "near serde", route="index", crate="serde_",
                   client="ci (10.0.0.1)", request_id="r1",
                   details={"near_name": {"protected": "serde", "distance": 1}}),
        AuditEvent("allow", "default", "ok", route="index", crate="Serde-Json", client="dev"),
        AuditEvent("warn", "yanked", "yanked", route="download", crate="itoa", version="1.0.0"),
    ]  # fmt: skip
    write(tmp_path, events)
    index = AuditIndex(tmp_path)
    index.refresh()

    def seqs(**query: Any) -> list[int]:
        before = query.pop("before", None)
        return [r.seq for r in index.events(EventQuery(**query), before=before)]

    assert seqs(action="block") == [1]
    assert seqs(rule="yanked") == [3]
    assert seqs(crate="serde_json") == [2]
    assert seqs(client="ci (10.0.0.1)") == [1]
    assert seqs(request_id="r1") == [1]
    assert seqs(before=3) == [2, 1]
    now = datetime.now(UTC)
    assert seqs(since=now - timedelta(minutes=5)) == [3, 2, 1]
    assert seqs(since=now + timedelta(minutes=5)) == []
    assert seqs(until=now - timedelta(minutes=5)) == []
    assert [r.crate for r in index.near_names()] == ["serde_"]


SQL_QUERIES = [
    EventQuery(action="block"),
    EventQuery(rule="capabilities"),
    EventQuery(crate="serde"),
    EventQuery(client="ci"),
    EventQuery(request_id="abc"),
    EventQuery(action="block", crate="serde"),
    EventQuery(action="block", rule="risk", client="ci"),
    EventQuery(since=datetime(2026, 1, 1, tzinfo=UTC)),
]


@pytest.mark.parametrize("query", SQL_QUERIES, ids=lambda q: repr(q)[10:60])
def test_every_filtered_query_uses_an_index_and_sorts_nothing(
    tmp_path: Path, query: EventQuery
) -> None:
    """With a million events a full scan or a sort of all matches would miss 200 ms: every
    filter the console offers is answered by walking an index in seq order."""
    write(tmp_path, [hold(f"c{i}", "1.0.0") for i in range(50)])
    index = AuditIndex(tmp_path)
    index.refresh()
    sql, params = event_query_sql(query)
    plan = " | ".join(index.explain(sql, params))
    assert "USING" in plan and ("INDEX" in plan or "PRIMARY KEY" in plan), plan
    assert "TEMP B-TREE" not in plan or query.since is not None, plan


def test_pending_near_names_and_claims_use_indexes(tmp_path: Path) -> None:
    """The other pages' queries: pending reviews, the near-name feed, alert claims."""
    write(tmp_path, [hold(f"c{i}", "1.0.0") for i in range(20)])
    index = AuditIndex(tmp_path)
    index.refresh()
    plans = {
        "pending": index.explain(
            "SELECT * FROM holds WHERE open = 1 ORDER BY last_seq DESC LIMIT 50"
        ),
        "near": index.explain(
            "SELECT seq FROM events WHERE near IS NOT NULL ORDER BY seq DESC LIMIT 50"
        ),
        "claim": index.explain(
            "SELECT seq FROM events WHERE seq > 1 AND seq <= 9 AND action IN ('block', 'deny') "
            "ORDER BY seq LIMIT 200"
        ),
    }
    assert "holds_open" in " ".join(plans["pending"])
    assert "events_near" in " ".join(plans["near"])
    assert "PRIMARY KEY" in " ".join(plans["claim"]) or "events_action" in " ".join(plans["claim"])


# -- claims -----------------------------------------------------------------------------------


def test_claims_hand_each_event_to_one_claimer_and_start_at_the_end(tmp_path: Path) -> None:
    """Two workers claiming alert events never get the same one; history is not replayed."""
    write(tmp_path, [hold("old", "1.0.0")])
    first, second = AuditIndex(tmp_path), AuditIndex(tmp_path)
    first.refresh()
    assert first.claim("alerts", ["block"]) == []  # the cursor starts at the end
    write(tmp_path, [hold(f"c{i}", "1.0.0") for i in range(30)])
    first.refresh()
    got: list[int] = []
    lock = threading.Lock()

    def claim(index: AuditIndex) -> None:
        while True:
            batch = index.claim("alerts", ["block"], batch=4)
            if not batch:
                return
            with lock:
                got.extend(row.seq for row, _ in batch)

    threads = [threading.Thread(target=claim, args=(ix,)) for ix in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(2, 32))  # each exactly once


def test_claims_say_which_hold_opened_a_review(tmp_path: Path) -> None:
    """The first hold of a version opens a review; repeats of it do not."""
    index = AuditIndex(tmp_path)
    index.refresh()
    index.claim("a", ["block"])
    write(tmp_path, [hold("x", "1.0.0"), hold("x", "1.0.0")])
    index.refresh()
    assert [opens for _, opens in index.claim("a", ["block"])] == [True, False]


def test_first_in_remembers_keys_for_a_window(tmp_path: Path) -> None:
    """One alert per key and window, across index handles (processes)."""
    a, b = AuditIndex(tmp_path), AuditIndex(tmp_path)
    assert a.first_in("block:x", 60, now=1000.0)
    assert not b.first_in("block:x", 60, now=1030.0)
    assert b.first_in("block:x", 60, now=1061.0)
