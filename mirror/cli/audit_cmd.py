"""`crate-mirror audit verify|query|near-names`: check, search and export the audit log."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from mirror.audit.event import canonical_json
from mirror.audit.files import chain_directories, chain_files
from mirror.audit.index import INDEX_NAME, AuditIndex, EventQuery, EventRow
from mirror.audit.query import (
    EventFilter,
    event_rows,
    format_table,
    near_name_rows,
    parse_since,
    read_all_events,
    read_all_near_names,
    select,
)
from mirror.audit.verify import VerifyResult, verify_chain
from mirror.cli.args import out_file_arg, path_arg, positive_int, sha256_arg
from mirror.config import load_settings
from mirror.errors import ConfigError, StorageError
from mirror.files import write_atomic


def register(subparsers: Any) -> None:
    audit = subparsers.add_parser(
        "audit",
        help="verify, query and export the tamper-evident audit log",
        description="Verify, query and export the tamper-evident audit log.",
    )
    sub = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)

    verify = sub.add_parser(
        "verify",
        help="check the hash chain; exit 1 at the first broken link",
        description="Check every event's hash, seq and prev across all files, oldest first. "
        "Prints 'OK: ...' with the last hash, or the first broken link "
        "(edited, deleted, reordered or truncated event) and exits 1. Replicas each keep "
        "their own chain (a subdirectory named by the replica id): each is verified and "
        "reported on its own, prefixed [replica-id].",
    )
    verify.add_argument(
        "--anchor",
        type=sha256_arg,
        metavar="HASH",
        help="a last hash noted earlier; fail unless the chain still contains it "
        "(detects a chain rewritten or cut from its end)",
    )

    query = sub.add_parser(
        "query",
        help="show matching events as a table or JSON lines",
        description="Show audit events, oldest first, as an aligned table or JSON lines; "
        "the chains of all replicas together, with their replica id. Answered from the "
        "query index (audit-index.sqlite beside the chains, or a replica's own in its state "
        "directory with --config), brought up to date (or rebuilt) from the files first; "
        "from the files, merged by time, when the index cannot be written.",
    )
    query.add_argument("--action", help="only this action (allow, warn, block, approve, ...)")
    query.add_argument("--crate", help="only this crate (- and _ and case are the same)")
    query.add_argument("--rule", help="only events decided by this rule (e.g. typosquat)")
    query.add_argument("--since", help="only events newer than 2h, 30m, 7d or an ISO time")
    query.add_argument("--limit", type=positive_int, help="only the most recent N matching events")
    query.add_argument("--json", action="store_true", help="print JSON lines, not a table")

    near = sub.add_parser(
        "near-names",
        help="print or export the public near-name feed",
        description="Print or export the public feed of requests for names close to a "
        "protected crate (blocked, warned, or allowed by an allow entry). It holds no client "
        "address and no request id.",
    )
    near.add_argument("--since", help="only entries newer than 2h, 30m, 7d or an ISO time")
    near.add_argument("--json", action="store_true", help="print JSON lines, not a table")
    near.add_argument("--out", type=out_file_arg, metavar="FILE", help="write JSON lines to FILE")

    for parser in (verify, query, near):
        parser.add_argument(
            "--dir",
            type=path_arg,
            help="audit directory (default: audit_dir from --config / CRATE_MIRROR_* "
            "settings, i.e. <cache_dir>/audit)",
        )
        parser.add_argument("--config", type=path_arg, help="settings file to read audit_dir from")
        parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        directory = _directory(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not directory.is_dir():
        print(f"error: no audit directory at {directory}", file=sys.stderr)
        return 2
    try:
        since = parse_since(args.since) if getattr(args, "since", None) else None
    except ValueError as e:
        print(f"error: --since: {e}", file=sys.stderr)
        return 2
    if args.audit_command == "verify":
        try:
            return _verify(directory, args.anchor)
        except OSError as e:  # unreadable, or a directory where a chain file should be
            print(f"error: cannot read {e.filename}: {e.strerror}", file=sys.stderr)
            return 2
    if args.audit_command == "query":
        wanted = EventFilter(action=args.action, crate=args.crate, rule=args.rule, since=since)
        try:
            events = _query_index(_index(args, directory), wanted, args.limit, full=args.json)
        except StorageError as e:  # e.g. a read-only copy of the log: read the files instead
            print(f"note: reading the chain files ({e})", file=sys.stderr)
            events = select(read_all_events(directory, since), wanted, args.limit)
        _print(events, event_rows, args.json, sys.stdout)
        return 0
    entries = select(read_all_near_names(directory), EventFilter(since=since))
    if args.out is not None:
        _export(entries, args.out)
        print(f"wrote {len(entries)} near-name entries to {args.out}", file=sys.stderr)
    else:
        _print(entries, near_name_rows, args.json, sys.stdout)
    return 0


def _index(args: argparse.Namespace, directory: Path) -> AuditIndex:
    """The index of every chain in `directory`: a replica's own (its state directory) when
    the settings name one, else the one beside the chains."""
    if args.dir is None:
        settings = load_settings(args.config)
        return AuditIndex(directory, settings.audit_index_path, own=settings.replica_id)
    return AuditIndex(directory, directory / INDEX_NAME)


def _query_index(
    index: AuditIndex, wanted: EventFilter, limit: int | None, *, full: bool
) -> list[dict[str, Any]]:
    """Matching events from the query index (brought up to date first), oldest first; with
    `full`, each read whole from its chain file (JSON output carries every field). Events of
    a replica's chain carry its id as "replica", as when read from the files."""
    try:
        with tqdm(unit="B", unit_scale=True, disable=None, file=sys.stderr, leave=False) as bar:
            index.refresh(progress=lambda done: bar.update(done - bar.n))
        query = EventQuery(action=wanted.action, rule=wanted.rule, crate=wanted.crate,
                           since=wanted.since)  # fmt: skip
        rows: list[EventRow] = []
        before = None
        while limit is None or len(rows) < limit:
            page = 1000 if limit is None else min(1000, limit - len(rows))
            batch = index.events(query, limit=page, before=before)
            rows.extend(batch)
            if len(batch) < page:
                break
            before = batch[-1].seq
        rows.reverse()
        if not full:
            return [_as_event(row) for row in rows]
        events = []
        for row in rows:
            stored = index.event(row.seq)
            if stored is not None:
                fields = dict(stored.fields)
                if row.replica is not None:
                    fields["replica"] = row.replica
                events.append(fields)
        return events
    finally:
        index.close()


def _as_event(row: EventRow) -> dict[str, Any]:
    fields = ("time", "replica", "action", "rule", "crate", "version", "client", "route",
              "reason")  # fmt: skip
    return {f: getattr(row, f) for f in fields if getattr(row, f) is not None}


def _directory(args: argparse.Namespace) -> Path:
    if args.dir is not None:
        return Path(args.dir)
    return load_settings(args.config).audit_root


def _verify(directory: Path, anchor: str | None) -> int:
    """Every chain under `directory` (one per replica), each on its own; with `anchor`, some
    chain must still contain it."""
    chains = chain_directories(directory) or [(None, directory)]
    total = sum(path.stat().st_size for _, d in chains for _, path in chain_files(d))
    results = []
    # disable=None: a progress bar on a terminal, nothing when piped or in CI.
    with tqdm(total=total, unit="B", unit_scale=True, disable=None, file=sys.stderr) as bar:
        for name, chain in chains:
            results.append((name, verify_chain(chain, anchor=anchor, progress=bar.update)))
    for name, result in results:
        report = describe(result, anchor_checked=len(results) == 1)
        print(
            report
            if name is None
            else "\n".join(f"[{name}] {line}" for line in report.splitlines())
        )
    anchored = anchor is None or any(r.anchor_found for _, r in results)
    if not anchored and len(results) > 1:
        print("BROKEN: the anchor hash is in none of the chains (rewritten or cut short)")
    return 0 if anchored and all(r.broken is None for _, r in results) else 1


def describe(result: VerifyResult, *, anchor_checked: bool = True) -> str:
    """The verify report: OK or the first broken link, then any crash recoveries."""
    lines = []
    if result.broken is not None:
        lines.append(f"BROKEN: {result.broken}")
        lines.append(f"({result.events} events verified before it)")
    else:
        lines.append(
            f"OK: {result.events} events in {result.files} files, "
            f"last seq {result.last_seq}, last hash {result.last_hash}"
        )
    if result.anchor_found is False and anchor_checked:
        lines.append("BROKEN: the anchor hash is not in the chain (rewritten or cut short)")
    for r in result.recoveries:
        lines.append(
            f"RECOVERED: {r.file}:{r.line} (seq {r.seq}): {r.fragment_length} damaged bytes "
            f"(sha256 {r.fragment_sha256}) moved to {r.moved_to} after a crash"
        )
    return "\n".join(lines)


def _print(
    items: list[dict[str, Any]],
    rows: Callable[[Iterable[dict[str, Any]]], list[list[str]]],
    as_json: bool,
    out: TextIO,
) -> None:
    if as_json:
        for item in items:
            out.write(json.dumps(item, sort_keys=True) + "\n")
    elif items:
        out.write(format_table(rows(items)) + "\n")
    else:
        print("no matching events", file=sys.stderr)


def _export(entries: Iterable[dict[str, Any]], out: Path) -> None:
    """Write the feed as JSON lines to a temporary name, then rename it into place."""
    body = "".join(canonical_json(entry) + "\n" for entry in entries)
    write_atomic(out.resolve(), body.encode("ascii"), mode=0o644)
