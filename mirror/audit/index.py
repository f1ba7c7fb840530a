"""The query index of the audit log: SQLite beside the chain files, rebuilt from them.

The hash-chained files stay the record. The index holds, per event, the fields the console
and `audit query` filter on (action, rule, crate, client, time, request id, near name) and
where its line is (file number, offset, length, hash), so a page of results is one indexed
query and an event's evidence is one read of its line, checked against the hash indexed
for it. Beside the events it keeps `holds`: per crate version, the state of what the mirror
holds back for a person (the latest block or quarantine, whether anyone approved, denied or
let it through since), which is what "pending review" is, whatever the rule.

One index covers every chain under the audit directory: its own, and one per replica in a
subdirectory named by the replica id (mirror.audit.files.chain_directories), so the console,
`audit query` and pending reviews see what every replica sharing the directory decided, and
an approval recorded on one replica closes the hold another one opened. New lines of all
chains are read merged by time, and each event gets its place in the index (`seq` of the
rows and holds here: the chain's own seq when there is one chain, and the order indexed when
there are several; each row also names its `replica` and the event keeps its chain's seq).
A chain that appears with events older than what is indexed already is merged in by a
rebuild, so the index stays in time order.

`refresh()` reads each chain's files from where it stopped (file number, offset), verifies
each new line as `audit verify` does (its hash, the next seq, `prev` linking to the line
before) and records each chain's first broken link, so the chains' status is known without
re-reading a million events. It rebuilds from scratch when the index is missing, from
another schema, or no longer matches the files (rotated away, truncated, rewritten). Any
process may call it: the write transaction (`BEGIN IMMEDIATE`) makes concurrent callers take
turns, and the second finds nothing left to do.

A replica keeps its index on its own disk (`Settings.audit_index_path`, in its state
directory) and reads the other replicas' chain files, which only their writers append to:
SQLite is never shared between hosts. Alerts are claimed from the replica's own chain only
(`own`), so each event is alerted once, by the replica that recorded it.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mirror.audit.event import RECOVERED_ACTION, ZERO_HASH, expected_hash, parse_line
from mirror.audit.files import chain_directories, chain_file_name, chain_files
from mirror.audit.verify import BrokenLink
from mirror.config import AUDIT_INDEX_NAME, Settings
from mirror.errors import StorageError

INDEX_NAME = AUDIT_INDEX_NAME  # beside the chains, unless the caller names another path
SCHEMA = 2  # 2: every chain under the directory (replicas), places of their own
COMMIT_EVERY = 20_000  # events per transaction while catching up (readers see progress)
BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's refresh to finish
MAX_REASON = 400  # characters of an event's reason kept in the index (the file has it all)
HOLD_ACTIONS = ("block", "quarantine")
# Verification failures are attacks or outages, not something a person approves: they are
# alerts (trust failures), never pending reviews.
FAILURE_RULES = frozenset({"tuf", "checksum", "archive"})
READ_ROUTES = ("download", "prefetch", "export")  # routes whose allows name a served version
CLOCK_SLACK = 300.0  # seconds events may be written out of time order (workers' batches)

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chains (
    name TEXT PRIMARY KEY,
    file INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    last_start INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    last_hash TEXT NOT NULL,
    events INTEGER NOT NULL,
    recoveries INTEGER NOT NULL,
    broken TEXT
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    time TEXT NOT NULL,
    action TEXT NOT NULL,
    rule TEXT NOT NULL,
    crate TEXT,
    crate_key TEXT,
    version TEXT,
    client TEXT,
    route TEXT,
    request_id TEXT,
    reason TEXT NOT NULL,
    near TEXT,
    chain TEXT NOT NULL,
    chain_seq INTEGER NOT NULL,
    file INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_action ON events (action, seq);
CREATE INDEX IF NOT EXISTS events_rule ON events (rule, seq);
CREATE INDEX IF NOT EXISTS events_crate ON events (crate_key, seq);
CREATE INDEX IF NOT EXISTS events_client ON events (client, seq);
CREATE INDEX IF NOT EXISTS events_request ON events (request_id);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE INDEX IF NOT EXISTS events_near ON events (seq) WHERE near IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_chain ON events (chain, chain_seq);
CREATE TABLE IF NOT EXISTS holds (
    crate_key TEXT NOT NULL,
    version TEXT NOT NULL,
    crate TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    rule TEXT NOT NULL,
    action TEXT NOT NULL,
    open INTEGER NOT NULL,
    review TEXT,
    review_seq INTEGER,
    reviewer TEXT,
    PRIMARY KEY (crate_key, version)
);
CREATE INDEX IF NOT EXISTS holds_open ON holds (open, last_seq);
CREATE INDEX IF NOT EXISTS holds_review ON holds (review, review_seq);
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, ts REAL NOT NULL);
"""

_EVENT_COLUMNS = (
    "seq, ts, time, action, rule, crate, crate_key, version, client, route, request_id, reason, "
    "near, chain, chain_seq, file, offset, length, hash"
)
_ROW_COLUMNS = (
    "seq, time, action, rule, crate, version, client, route, request_id, reason, near, chain"
)
_HOLD_COLUMNS = (
    "crate_key, version, crate, first_seq, last_seq, count, rule, action, open, review, "
    "review_seq, reviewer"
)
_CHAIN_COLUMNS = "file, offset, last_start, last_seq, last_hash, events, recoveries, broken"


def crate_key(name: str) -> str:
    """crates.io treats `-`/`_` and case as the same name; so do the index's lookups."""
    return name.lower().replace("-", "_")


# -- what queries return ------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRow:
    """One event as the index keeps it (the full line, with details, is `AuditIndex.event`)."""

    seq: int  # its place in the index (with one chain, the chain's seq)
    time: str
    action: str
    rule: str
    crate: str | None
    version: str | None
    client: str | None
    route: str | None
    request_id: str | None
    reason: str
    near: str | None
    replica: str | None = None  # the replica whose chain holds it (None: the directory's own)


def _event_row(row: Sequence[Any]) -> EventRow:
    seq, time, action, rule, crate, version, client, route, request_id, reason, near, chain = row
    return EventRow(
        seq, time, action, rule, crate, version, client, route, request_id, reason, near,
        chain or None,
    )  # fmt: skip


@dataclass(frozen=True)
class Hold:
    """What the mirror holds back of one crate version ("" : the crate as a whole)."""

    crate: str
    version: str
    first_seq: int  # the hold that opened the current episode
    last_seq: int  # the latest hold: its details are the evidence shown
    count: int  # holds recorded in all (every refused request is one)
    rule: str
    action: str
    open: bool  # pending: held, and nobody approved, denied or let it through since
    review: str | None  # "approve" | "deny" | None
    review_seq: int | None
    reviewer: str | None


@dataclass(frozen=True)
class ChainStatus:
    events: int  # indexed
    last_seq: int
    last_hash: str
    files: int  # chain files indexed so far
    broken: BrokenLink | None  # the first broken link the index met
    recoveries: int  # audit.recovered events (a crash moved a torn tail aside)
    built_at: float | None  # unix time the index was (re)built from scratch
    refreshed_at: float | None  # unix time of the last refresh that found something new
    replica: str | None = None  # whose chain (None: the directory's own)


@dataclass(frozen=True)
class EventQuery:
    """Filters of the decisions page and `audit query`; None means any."""

    action: str | None = None
    rule: str | None = None
    crate: str | None = None  # compared as crates.io does (crate_key)
    client: str | None = None
    request_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class StoredEvent:
    """An event read back from its chain file."""

    fields: Mapping[str, Any]
    intact: bool  # the line still hashes to what was indexed (False: edited since)
    replica: str | None = None  # whose chain it is in (None: the directory's own)


# -- the index ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexPlace:
    """Which chains an index covers (every one under `root`), where it is kept, and whose
    chain the process using it writes (picklable: handed to the audit writer's process)."""

    root: Path
    path: Path
    own: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> IndexPlace:
        """The index a server runs with (a replica's own, on its local disk)."""
        return cls(settings.audit_root, settings.audit_index_path, settings.replica_id)

    @classmethod
    def beside(cls, directory: Path) -> IndexPlace:
        return cls(directory, directory / INDEX_NAME)

    def open(self) -> AuditIndex:
        return AuditIndex(self.root, self.path, own=self.own)


class AuditIndex:
    def __init__(
        self, directory: Path, path: Path | None = None, *, own: str | None = None
    ) -> None:
        """The index of every chain in `directory` (its own, and one per replica below it),
        kept at `directory/audit-index.sqlite` unless `path` is given. `own`: the replica
        whose chain this process writes (None: the directory's own chain); its status and
        alert claims are this process's. Nothing is read until the first call; raises
        StorageError when the index cannot be opened or written."""
        self.directory = Path(directory)
        self.path = path if path is not None else self.directory / INDEX_NAME
        self.own = own or ""
        self._lock = threading.Lock()  # one connection, shared by the caller's threads
        self._conn: sqlite3.Connection | None = None

    # -- connection ---------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")  # readers never wait for a refresh
                conn.execute("PRAGMA synchronous=NORMAL")  # the files are the record, not this
                _drop_other_schema(conn)
                conn.executescript(_SCHEMA_SQL)
            except (sqlite3.Error, OSError) as e:
                raise StorageError(f"cannot open the audit index {self.path}: {e}") from e
            self._conn = conn
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db().execute(sql, params).fetchall()
            except sqlite3.Error as e:
                raise StorageError(f"audit index query failed: {e}") from e

    def _meta(self, conn: sqlite3.Connection) -> dict[str, str]:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())

    # -- keeping up with the files ------------------------------------------------------------

    def refresh(self, progress: Callable[[int], None] | None = None) -> int:
        """Index every line written since the last refresh; returns how many were added.

        `progress` is called with the number of bytes read after each batch (a progress
        bar for a rebuild). Raises StorageError if the index cannot be written.
        """
        if not self._grew():
            return 0
        with self._lock:
            conn = self._db()
            try:
                return _Ingest(conn, self.directory, progress).run()
            except sqlite3.Error as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageError(f"cannot update the audit index {self.path}: {e}") from e

    def _grew(self) -> bool:
        """Cheap check (a stat per chain and two small queries): anything new to index?"""
        schema = self._read("SELECT value FROM meta WHERE key = 'schema'")
        if not schema or schema[0][0] != str(SCHEMA):
            return True
        indexed = {name: (file, offset) for name, file, offset in self._read(
            "SELECT name, file, offset FROM chains")}  # fmt: skip
        chains = chain_directories(self.directory)
        if {_chain_name(name) for name, _ in chains} != set(indexed):
            return True
        for name, directory in chains:
            files = chain_files(directory)
            if not files:
                return True
            number, path = files[-1]
            try:
                size = path.stat().st_size
            except OSError:
                return True
            if indexed[_chain_name(name)] != (number, size):
                return True
        return False

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Forget everything and index every chain again from its first file."""
        with self._lock:
            conn = self._db()
            conn.execute("BEGIN IMMEDIATE")
            _clear(conn)
            conn.execute("COMMIT")
        return self.refresh(progress)

    # -- events -------------------------------------------------------------------------------

    def events(
        self, query: EventQuery, *, limit: int = 50, before: int | None = None
    ) -> list[EventRow]:
        """Matching events, newest first; `before` pages on (events with a smaller seq)."""
        sql, params = event_query_sql(query, limit, before, self._seq_bounds(query))
        return [_event_row(row) for row in self._read(sql, params)]

    def _seq_bounds(self, query: EventQuery) -> tuple[int | None, int | None]:
        """A time filter as a seq range (found on the time index): events are indexed in time
        order but for workers' clock slack, so the exact `ts` filter then runs on that range
        only. A chain that lagged by more than the slack turns this off until a rebuild."""
        lo = hi = None
        if self._read("SELECT 1 FROM meta WHERE key = 'unordered'"):
            return lo, hi
        if query.since is not None:
            rows = self._read(
                "SELECT seq FROM events WHERE ts >= ? ORDER BY ts LIMIT 1",
                [query.since.timestamp() - CLOCK_SLACK],
            )
            lo = int(rows[0][0]) if rows else None
            if lo is None:
                return (2**62, None)  # nothing that recent
        if query.until is not None:
            rows = self._read(
                "SELECT seq FROM events WHERE ts >= ? ORDER BY ts LIMIT 1",
                [query.until.timestamp() + CLOCK_SLACK],
            )
            hi = int(rows[0][0]) if rows else None
        return lo, hi

    def rows(self, seqs: Iterable[int]) -> dict[int, EventRow]:
        """The indexed rows of these events (e.g. the latest hold of each pending review)."""
        wanted = sorted(set(seqs))
        found: dict[int, EventRow] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            sql = f"SELECT {_ROW_COLUMNS} FROM events WHERE seq IN ({','.join('?' * len(chunk))})"
            for row in self._read(sql, chunk):
                found[int(row[0])] = _event_row(row)
        return found

    def event(self, seq: int) -> StoredEvent | None:
        """The whole event `seq`, read from its line in the chain file."""
        rows = self._read(
            "SELECT chain, file, offset, length, hash FROM events WHERE seq = ?", [seq]
        )
        if not rows:
            return None
        chain, number, offset, length, digest = rows[0]
        path = _chain_directory(self.directory, chain) / chain_file_name(int(number))
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                raw = handle.read(length)
        except OSError:
            return None
        parsed = parse_line(raw)
        if parsed is None:
            return StoredEvent({"seq": seq}, intact=False, replica=chain or None)
        intact = parsed.get("hash") == digest and expected_hash(parsed) == digest
        return StoredEvent(parsed, intact, chain or None)

    def near_names(self, *, limit: int = 50, before: int | None = None) -> list[EventRow]:
        """Events that carried `details.near_name`, newest first."""
        sql = f"SELECT {_ROW_COLUMNS} FROM events WHERE near IS NOT NULL"
        params: list[Any] = []
        if before is not None:
            sql += " AND seq < ?"
            params.append(before)
        sql += " ORDER BY seq DESC LIMIT ?"
        return [_event_row(row) for row in self._read(sql, [*params, max(0, limit)])]

    # -- holds --------------------------------------------------------------------------------

    def pending(self, *, limit: int = 200, offset: int = 0) -> list[Hold]:
        """Crate versions held back with nobody having approved, denied or allowed them
        since, the most recently held first."""
        sql = f"SELECT {_HOLD_COLUMNS} FROM holds WHERE open = 1 ORDER BY last_seq DESC"
        rows = self._read(sql + " LIMIT ? OFFSET ?", [max(0, limit), max(0, offset)])
        return [_hold(row) for row in rows]

    def pending_count(self) -> int:
        return int(self._read("SELECT count(*) FROM holds WHERE open = 1")[0][0])

    def denied(self, *, limit: int = 100) -> list[Hold]:
        sql = f"SELECT {_HOLD_COLUMNS} FROM holds WHERE review = 'deny' ORDER BY review_seq DESC"
        return [_hold(row) for row in self._read(sql + " LIMIT ?", [max(0, limit)])]

    def hold(self, crate: str, version: str) -> Hold | None:
        sql = f"SELECT {_HOLD_COLUMNS} FROM holds WHERE crate_key = ? AND version = ?"
        rows = self._read(sql, [crate_key(crate), version])
        return _hold(rows[0]) if rows else None

    def holds_of(self, crates: Iterable[tuple[str, str]]) -> list[Hold]:
        """The open holds among these (crate, version) pairs (a lockfile's crates), each
        with its crate-level hold ("" version) considered too."""
        wanted = {(crate_key(c), v) for c, v in crates}
        names = sorted({c for c, _ in wanted})
        found: list[Hold] = []
        for start in range(0, len(names), 500):  # SQLite's bound-parameter limit
            chunk = names[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT {_HOLD_COLUMNS} FROM holds WHERE open = 1 AND crate_key IN ({marks})"
            for row in self._read(sql, chunk):
                hold = _hold(row)
                key = (crate_key(hold.crate), hold.version)
                if key in wanted or hold.version == "":
                    found.append(hold)
        return sorted(found, key=lambda h: (crate_key(h.crate), h.version))

    # -- status -------------------------------------------------------------------------------

    def status(self) -> ChainStatus:
        """The status of this process's own chain (empty until it has an event)."""
        chains = self.chains()
        mine = [c for c in chains if (c.replica or "") == self.own]
        if mine:
            return mine[0]
        built = chains[0].built_at if chains else None
        return ChainStatus(0, 0, ZERO_HASH, 0, None, 0, built, None, self.own or None)

    def chains(self) -> list[ChainStatus]:
        """Every chain indexed: the directory's own first, then the replicas by name."""
        with self._lock:
            conn = self._db()
            meta = self._meta(conn)
            try:
                rows = conn.execute(f"SELECT name, {_CHAIN_COLUMNS} FROM chains ORDER BY name")
                found = rows.fetchall()
            except sqlite3.Error as e:
                raise StorageError(f"audit index query failed: {e}") from e
        built = float(meta["built_at"]) if "built_at" in meta else None
        out = []
        for name, number, _, _, last_seq, last_hash, events, recoveries, broken in found:
            where = json.loads(broken) if broken else None
            refreshed = meta.get(f"refreshed_at:{name}")
            out.append(ChainStatus(
                events=int(events), last_seq=int(last_seq), last_hash=str(last_hash),
                files=int(number), broken=BrokenLink(**where) if where else None,
                recoveries=int(recoveries), built_at=built,
                refreshed_at=float(refreshed) if refreshed is not None else None,
                replica=name or None,
            ))  # fmt: skip
        return out

    def explain(self, sql: str, params: Sequence[Any] = ()) -> list[str]:
        """SQLite's query plan for `sql` (tests check that pages use the indexes)."""
        return [str(row[-1]) for row in self._read("EXPLAIN QUERY PLAN " + sql, params)]

    # -- claims (alerts: each event handled once, whichever process gets it) -------------------

    def claim(
        self, cursor: str, actions: Sequence[str], *, batch: int = 200
    ) -> list[tuple[EventRow, bool]]:
        """The next events with one of `actions` after the cursor named `cursor`, moved past
        them in the same transaction: concurrent claimers (workers) never get the same event.
        The flag says whether a hold event opened a new pending review. A new cursor starts
        at the end of the chain: history is not replayed."""
        key = f"cursor:{cursor}"
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
                meta = self._meta(conn)
                head = int(meta.get("last_pos", 0))
                if key not in meta:
                    _set(conn, key, head)
                    conn.execute("COMMIT")
                    return []
                start = int(meta[key])
                marks = ",".join("?" * len(actions))
                rows = conn.execute(
                    f"SELECT {', '.join('e.' + c.strip() for c in _ROW_COLUMNS.split(','))}, "
                    "h.first_seq = e.seq FROM events e LEFT JOIN holds h "
                    "ON h.crate_key = e.crate_key AND h.version = coalesce(e.version, '') "
                    f"WHERE e.seq > ? AND e.seq <= ? AND e.action IN ({marks}) AND e.chain = ? "
                    "ORDER BY e.seq LIMIT ?",
                    [start, head, *actions, self.own, batch],
                ).fetchall()
                end = int(rows[-1][0]) if len(rows) == batch else head
                _set(conn, key, end)
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageError(f"audit index claim failed: {e}") from e
        return [(_event_row(row[:-1]), bool(row[-1])) for row in rows]

    def first_in(self, key: str, window: float, now: float | None = None) -> bool:
        """True (and remembered) unless `key` was remembered less than `window` seconds ago:
        one alert per crate and kind per window, across processes."""
        now = time.time() if now is None else now
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute("SELECT ts FROM seen WHERE key = ?", [key]).fetchone()
                fresh = row is None or now - float(row[0]) >= window
                if fresh:
                    conn.execute("INSERT OR REPLACE INTO seen (key, ts) VALUES (?, ?)", [key, now])
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageError(f"audit index update failed: {e}") from e
        return fresh

    def note(self, key: str, value: str) -> str | None:
        """Store `value` under `key`; returns what was there before (e.g. the broken link an
        alert was last sent for)."""
        with self._lock:
            conn = self._db()
            conn.execute("BEGIN IMMEDIATE")
            before = self._meta(conn).get(f"note:{key}")
            _set(conn, f"note:{key}", value)
            conn.execute("COMMIT")
        return before


def _drop_other_schema(conn: sqlite3.Connection) -> None:
    """An index of another schema (e.g. 1: one chain, no chain column) is dropped here and
    rebuilt from the files by the next refresh; cursors and notes (alert state) are kept."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is not None and row[0] != str(SCHEMA):
            for table in ("events", "holds", "seen", "chains"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute("DELETE FROM meta WHERE key NOT LIKE 'cursor:%' AND key NOT LIKE 'note:%'")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _set(conn: sqlite3.Connection, key: str, value: object) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, str(value)])


def _clear(conn: sqlite3.Connection) -> None:
    """Forget what was indexed; claim cursors and notes (alert state) survive a rebuild (a
    cursor is kept as the chain and seq of the event it points at, and found again)."""
    for key, value in conn.execute("SELECT key, value FROM meta WHERE key LIKE 'cursor:%'"):
        at = conn.execute("SELECT chain, chain_seq FROM events WHERE seq = ?", [int(value)])
        found = at.fetchone()
        if found is not None:
            _set(conn, "was:" + key, json.dumps(list(found)))
    for table in ("events", "holds", "seen", "chains"):
        conn.execute(f"DELETE FROM {table}")
    conn.execute(
        "DELETE FROM meta WHERE key NOT LIKE 'cursor:%' AND key NOT LIKE 'note:%' "
        "AND key NOT LIKE 'was:cursor:%'"
    )


def _restore_cursors(conn: sqlite3.Connection) -> None:
    """After a rebuild: each cursor at the new place of the event it pointed at (nothing to
    do otherwise: one small query on `meta`)."""
    for key, value in conn.execute("SELECT key, value FROM meta WHERE key LIKE 'was:%'").fetchall():
        chain, chain_seq = json.loads(value)
        found = conn.execute(
            "SELECT seq FROM events WHERE chain = ? AND chain_seq = ?", [chain, chain_seq]
        ).fetchone()
        if found is not None:
            _set(conn, key.removeprefix("was:"), int(found[0]))
        conn.execute("DELETE FROM meta WHERE key = ?", [key])


def _chain_name(name: str | None) -> str:
    return name or ""


def _chain_directory(root: Path, chain: str) -> Path:
    return root / chain if chain else root


def _hold(row: tuple[Any, ...]) -> Hold:
    (_, version, crate, first, last, count, rule, action, is_open, review, rseq, who) = row
    return Hold(crate, version, first, last, count, rule, action, bool(is_open), review, rseq, who)


def _where(query: EventQuery, bounds: tuple[int | None, int | None]) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("action", query.action),
        ("rule", query.rule),
        ("client", query.client),
        ("request_id", query.request_id),
    ):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if query.crate:
        where.append("crate_key = ?")
        params.append(crate_key(query.crate))
    lo, hi = bounds
    if lo is not None:
        where.append("seq >= ?")
        params.append(lo)
    if hi is not None:
        where.append("seq < ?")
        params.append(hi)
    if query.since is not None:
        where.append("ts >= ?")
        params.append(query.since.timestamp())
    if query.until is not None:
        where.append("ts < ?")
        params.append(query.until.timestamp())
    return where, params


def event_query_sql(
    query: EventQuery,
    limit: int = 50,
    before: int | None = None,
    bounds: tuple[int | None, int | None] = (None, None),
) -> tuple[str, list[Any]]:
    """The SQL `events()` runs for `query` (tests and the bench EXPLAIN it)."""
    if query.since is not None and bounds == (None, None):
        bounds = (1, None)  # what a time filter becomes once its seq range is looked up
    where, params = _where(query, bounds)
    if before is not None:
        where.append("seq < ?")
        params.append(before)
    sql = f"SELECT {_ROW_COLUMNS} FROM events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY seq DESC LIMIT ?", [*params, max(0, limit)]


# -- ingesting ----------------------------------------------------------------------------------


@dataclass
class _Chain:
    """Where the index stands in one chain, and what it has verified of it."""

    name: str  # "" for the directory's own chain, else the replica id
    directory: Path
    file: int = 0
    offset: int = 0
    last_start: int = 0
    last_seq: int = 0
    last_hash: str = ZERO_HASH
    events: int = 0
    recoveries: int = 0
    broken: str | None = None  # JSON of the first broken link met
    added: int = 0  # in this refresh

    def state(self) -> list[Any]:
        return [self.name, self.file, self.offset, self.last_start, self.last_seq,
                self.last_hash, self.events, self.recoveries, self.broken]  # fmt: skip


@dataclass(frozen=True)
class _Line:
    """One complete line read from a chain file (raw None: an empty new file begins)."""

    key: tuple[float, str]  # merge order: time, then chain
    chain: _Chain
    number: int
    offset: int
    raw: bytes | None
    parsed: dict[str, Any] | None
    after_missing_file: bool


class _Ingest:
    """One refresh: read new lines of every chain merged by time, verify each chain, insert
    rows, update holds."""

    def __init__(
        self, conn: sqlite3.Connection, directory: Path, progress: Callable[[int], None] | None
    ) -> None:
        self.conn = conn
        self.directory = directory
        self.progress = progress
        self.rows: list[tuple[Any, ...]] = []
        self.added = 0
        self.read_bytes = 0

    def run(self) -> int:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        found = [(_chain_name(name), path) for name, path in chain_directories(self.directory)]
        known = {
            row[0]: _Chain(row[0], _chain_directory(self.directory, row[0]), *row[1:])
            for row in conn.execute(f"SELECT name, {_CHAIN_COLUMNS} FROM chains")
        }
        rebuilt = meta.get("schema") != str(SCHEMA) or not self._current(meta, known, found)
        if rebuilt:
            _clear(conn)
            meta = {"schema": str(SCHEMA), "built_at": repr(time.time())}
            for key, value in meta.items():
                _set(conn, key, value)
            known = {}
        self.position = int(meta.get("last_pos", 0))
        self.max_ts = float(meta.get("max_ts", 0.0))
        self.unordered = "unordered" in meta
        self.open_holds = {
            (k, v) for k, v in conn.execute("SELECT crate_key, version FROM holds WHERE open = 1")
        }
        self.chains = [known.get(name) or _Chain(name, path) for name, path in found]
        streams = [self._lines(chain) for chain in self.chains]
        for line in heapq.merge(*streams, key=lambda line: line.key):
            self._take(line)
        self._flush_rows()
        _restore_cursors(conn)  # after a rebuild (here, or by `rebuild()`)
        self._flush(final=True)
        return self.added

    def _current(
        self, meta: Mapping[str, str], known: Mapping[str, _Chain], found: list[tuple[str, Path]]
    ) -> bool:
        """Whether the index can go on from where it stopped: every chain indexed is still
        as it was, and no chain appeared with events older than those indexed (it would be
        out of time order: a rebuild merges it in)."""
        present = {name for name, _ in found}
        if any(name not in present or not _consistent(chain) for name, chain in known.items()):
            return False
        newest = float(meta.get("max_ts", 0.0))
        for name, path in found:
            if name not in known:
                first = _first_time(path)
                if first is not None and first < newest - CLOCK_SLACK:
                    return False
        return True

    def _lines(self, chain: _Chain) -> Iterator[_Line]:
        """The new complete lines of one chain, in file order."""
        file, offset = chain.file, chain.offset  # where the last refresh stopped
        previous_number: int | None = None
        key = (0.0, chain.name)
        for number, path in chain_files(chain.directory):
            if number < file:
                previous_number = number
                continue
            missing_file = previous_number is not None and number != previous_number + 1
            previous_number = number
            start = offset if number == file else 0
            try:
                handle = open(path, "rb")  # noqa: SIM115 (closed below; lines are streamed)
            except OSError:
                return
            with handle:
                handle.seek(start)
                position = start
                first = True
                for raw in handle:
                    if not raw.endswith(b"\n"):
                        break  # a write in progress (or torn): read it next time
                    parsed = parse_line(raw)
                    stamp = parsed.get("time") if parsed is not None else None
                    key = (_timestamp(stamp) or key[0], chain.name)
                    yield _Line(key, chain, number, position, raw, parsed, missing_file and first)
                    first = False
                    position += len(raw)
                if first and number != file:
                    # An empty new file (or one holding only a partial line): start there
                    # next time.
                    yield _Line(key, chain, number, start, None, None, False)

    def _take(self, line: _Line) -> None:
        chain = line.chain
        if line.raw is None:
            chain.file, chain.offset, chain.last_start = line.number, line.offset, line.offset
            return
        length = len(line.raw)
        self._line(chain, line, length)
        chain.file, chain.offset, chain.last_start = line.number, line.offset + length, line.offset
        self.read_bytes += length
        if len(self.rows) >= COMMIT_EVERY:
            self._flush(final=False)
            if self.progress is not None:
                self.progress(self.read_bytes)

    def _line(self, chain: _Chain, line: _Line, length: int) -> None:
        parsed = line.parsed
        name = chain_file_name(line.number)
        if (
            parsed is None
            or not isinstance(parsed.get("seq"), int)
            or not isinstance(parsed.get("hash"), str)
            or not isinstance(parsed.get("prev"), str)
        ):
            self._break(chain, name, line.offset, None, "edited", "the line is not a valid "
                        "audit event")  # fmt: skip
            return
        seq = parsed["seq"]
        digest = parsed["hash"]
        if digest != expected_hash(parsed):
            self._break(chain, name, line.offset, seq, "edited",
                        "the event's content does not match its hash")  # fmt: skip
        elif seq != chain.last_seq + 1:
            message = f"expected seq {chain.last_seq + 1} but found seq {seq}"
            if seq <= chain.last_seq:
                kind = "reordered"
            else:
                kind = "deleted"
                if line.after_missing_file:
                    message += " (a chain file is missing)"
            self._break(chain, name, line.offset, seq, kind, message)
        elif parsed["prev"] != chain.last_hash:
            self._break(chain, name, line.offset, seq, "edited",
                        "'prev' does not match the hash of the event before")  # fmt: skip
        if seq <= chain.last_seq and self._seen(chain.name, seq):
            return  # a duplicated or reordered line: the first copy stays indexed
        chain.last_seq, chain.last_hash = max(seq, chain.last_seq), digest
        chain.events += 1
        chain.added += 1
        self.added += 1
        if parsed.get("action") == RECOVERED_ACTION:
            chain.recoveries += 1
        ts = line.key[0]
        if ts < self.max_ts - CLOCK_SLACK:
            self.unordered = True  # a chain lagged: time filters stop using seq ranges
        self.max_ts = max(self.max_ts, ts)
        self.position += 1
        self.rows.append(_row(parsed, self.position, chain.name, line.number, line.offset, length))
        self._hold(parsed, self.position)

    def _seen(self, chain: str, seq: int) -> bool:
        if any(row[13] == chain and row[14] == seq for row in self.rows):
            return True
        found = self.conn.execute(
            "SELECT 1 FROM events WHERE chain = ? AND chain_seq = ?", [chain, seq]
        )
        return found.fetchone() is not None

    def _break(
        self, chain: _Chain, file: str, offset: int, seq: int | None, kind: str, message: str
    ) -> None:
        if chain.broken is not None:
            return  # like `audit verify`, the first broken link is the one reported
        line = _line_number(chain.directory / file, offset)
        shown = f"{chain.name}/{file}" if chain.name else file
        where = {"file": shown, "line": line, "seq": seq, "kind": kind, "message": message}
        chain.broken = json.dumps(where)

    def _hold(self, event: Mapping[str, Any], seq: int) -> None:
        """Keep `holds` current: a hold opens (or extends) a pending review; an approval, a
        denial or a served download of that version closes it."""
        crate = event.get("crate")
        if not isinstance(crate, str):
            return
        action = event.get("action")
        version = event.get("version") if isinstance(event.get("version"), str) else ""
        key = crate_key(crate)
        rule = str(event.get("rule", ""))
        if action in HOLD_ACTIONS and rule not in FAILURE_RULES:
            self.conn.execute(
                f"INSERT INTO holds ({_HOLD_COLUMNS}) VALUES (?, ?, ?, ?, ?, 1, ?, ?, 1, NULL, "
                "NULL, NULL) ON CONFLICT (crate_key, version) DO UPDATE SET "
                "crate = excluded.crate, last_seq = excluded.last_seq, count = count + 1, "
                "rule = excluded.rule, action = excluded.action, "
                "first_seq = CASE WHEN open = 0 AND coalesce(review, '') != 'deny' "
                "THEN excluded.first_seq ELSE first_seq END, "
                "open = CASE WHEN coalesce(review, '') = 'deny' THEN 0 ELSE 1 END",
                [key, version, crate, seq, seq, rule, action],
            )
            self.open_holds.add((key, version))
        elif action in ("approve", "deny"):
            details = event.get("details")
            info = details if isinstance(details, Mapping) else {}
            who = info.get("by") or info.get("approved_by")
            targets = [version, ""] if action == "approve" else [version]
            for target in targets:
                self.conn.execute(
                    "UPDATE holds SET open = 0, review = ?, review_seq = ?, reviewer = ? "
                    "WHERE crate_key = ? AND version = ?",
                    [action, seq, str(who) if who else None, key, target],
                )
                self.open_holds.discard((key, target))
        elif action == "allow" and version and event.get("route") in READ_ROUTES:
            for target in (version, ""):
                if (key, target) in self.open_holds:
                    self.conn.execute(
                        "UPDATE holds SET open = 0 WHERE crate_key = ? AND version = ?",
                        [key, target],
                    )
                    self.open_holds.discard((key, target))

    def _flush_rows(self) -> None:
        if self.rows:
            marks = ", ".join("?" * len(self.rows[0]))
            self.conn.executemany(
                f"INSERT OR IGNORE INTO events ({_EVENT_COLUMNS}) VALUES ({marks})", self.rows
            )
            self.rows = []

    def _flush(self, *, final: bool) -> None:
        self._flush_rows()
        now = repr(time.time())
        for chain in self.chains:
            self.conn.execute(
                f"INSERT OR REPLACE INTO chains (name, {_CHAIN_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                chain.state(),
            )
            if chain.added:
                _set(self.conn, f"refreshed_at:{chain.name}", now)
        _set(self.conn, "last_pos", self.position)
        _set(self.conn, "max_ts", repr(self.max_ts))
        if self.unordered:
            _set(self.conn, "unordered", 1)
        if self.added:
            _set(self.conn, "refreshed_at", now)
        self.conn.execute("COMMIT")
        if final:
            if self.added > COMMIT_EVERY:
                self.conn.execute("ANALYZE")  # after a rebuild: statistics for the planner
        else:
            self.conn.execute("BEGIN IMMEDIATE")


def _consistent(chain: _Chain) -> bool:
    """Whether a chain's files still hold what was indexed: the last indexed line is where
    it was and hashes to what was recorded (a rotated, cut or rewritten chain is rebuilt)."""
    if chain.file == 0:
        return True
    path = dict(chain_files(chain.directory)).get(chain.file)
    if path is None:
        return False
    try:
        if path.stat().st_size < chain.offset:
            return False
        with open(path, "rb") as handle:
            handle.seek(chain.last_start)
            raw = handle.read(chain.offset - chain.last_start)
    except OSError:
        return False
    if not raw:
        return chain.last_hash == ZERO_HASH or chain.last_start == chain.offset
    parsed = parse_line(raw)
    return parsed is not None and parsed.get("hash") == chain.last_hash


def _first_time(directory: Path) -> float | None:
    """The time of a chain's first event (None: none readable yet)."""
    files = chain_files(directory)
    if not files:
        return None
    try:
        with open(files[0][1], "rb") as handle:
            parsed = parse_line(handle.readline())
    except OSError:
        return None
    return _timestamp(parsed.get("time")) if parsed is not None else None


def _row(
    event: Mapping[str, Any], position: int, chain: str, number: int, offset: int, length: int
) -> tuple[Any, ...]:
    details = event.get("details")
    near = details.get("near_name") if isinstance(details, Mapping) else None
    protected = near.get("protected") if isinstance(near, Mapping) else None
    crate = event.get("crate")
    stamp = event.get("time")
    return (
        position,
        _timestamp(stamp),
        stamp if isinstance(stamp, str) else "",
        str(event.get("action", "")),
        str(event.get("rule", "")),
        crate if isinstance(crate, str) else None,
        crate_key(crate) if isinstance(crate, str) else None,
        _text(event.get("version")),
        _text(event.get("client")),
        _text(event.get("route")),
        _text(event.get("request_id")),
        str(event.get("reason", ""))[:MAX_REASON],
        str(protected) if protected is not None else None,
        chain,
        event["seq"],
        number,
        offset,
        length,
        event["hash"],
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _timestamp(stamp: Any) -> float:
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            pass
    return 0.0


def _line_number(path: Path, offset: int) -> int:
    """The 1-based line at byte `offset` (only when reporting a break: reads the file)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(offset).count(b"\n") + 1
    except OSError:
        return 0
