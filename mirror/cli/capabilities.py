"""`crate-mirror scan|approve|revoke|pending|diff`: capability reports and the capability lock."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mirror.audit import AuditEvent, AuditLog
from mirror.audit.index import IndexPlace
from mirror.cli.args import path_arg, reason_arg
from mirror.config import load_settings
from mirror.errors import (
    ArchiveError,
    BadRequest,
    ConfigError,
    MirrorError,
    NotFound,
    StorageError,
)
from mirror.index import CrateRef, IndexFile, IndexLine, validate_name
from mirror.policy.capability_lock import describe, merged, revocation
from mirror.printable import printable
from mirror.scan.capabilities import (
    Capability,
    CapabilityReport,
    parse_capabilities,
    report_lines,
    scan_crate,
)
from mirror.serving.capability_guard import LockPlaces
from mirror.serving.review import ReviewDesk
from mirror.serving.scans import Scans
from mirror.sources.capability_lockfile import EPOCH_NAME, load_lock, lock_in_use, update_lock
from mirror.sources.policy_files import PolicyFiles, load_policy
from mirror.store import FilesystemStore

DEFAULT_LOCK = Path("policies/capabilities.lock.yaml")
DEFAULT_CACHE = Path("./mirror-data")


def register(subparsers: Any) -> None:
    scan = subparsers.add_parser(
        "scan",
        help="show a crate's capabilities with evidence (file:line item)",
        description="Scan a .crate file, or a name@version from the mirror's cache, and print "
        "its capabilities (build script, proc-macro, links/ffi, unsafe, net, fs, process, env, "
        "include outside the crate, shipped binaries) with the evidence for each.",
    )
    scan.add_argument("target", metavar="FILE.crate|NAME@VERSION")
    scan.add_argument("--json", action="store_true", help="print the report as JSON")
    _cache_arg(scan)
    scan.set_defaults(func=run_scan)

    approve = subparsers.add_parser(
        "approve",
        help="approve a crate's capabilities in the capability lock",
        description="Add an approval to the reviewed capability lock (it also lifts the "
        "malicious-crate rule for that version). Without --caps, approves exactly the "
        "capabilities the scan of NAME@VERSION found (the crate must be in the cache); with "
        "--caps, NAME@VERSION must be a version the mirror has seen. With "
        "--lockfile, approves everything that Cargo.lock needs reviewed, with one reason. "
        "Running servers apply it at once (give the settings they run with: --config, or "
        "--lock and --cache-dir as printed in their 403s).",
    )
    approve.add_argument("spec", metavar="NAME@VERSION", nargs="?")
    approve.add_argument(
        "--lockfile",
        type=path_arg,
        metavar="Cargo.lock",
        help="approve every crate of this lockfile the mirror holds back for review",
    )
    approve.add_argument("--caps", help="comma-separated capabilities to approve")
    approve.add_argument(
        "--versions",
        metavar="REQ",
        help="limit the approval to a cargo version requirement (default: every version)",
    )
    approve.add_argument(
        "--reason", type=reason_arg, required=True, help="why this is acceptable (kept in the lock)"
    )
    approve.add_argument("--by", default=None, help="approver (default: the current user)")
    _lock_args(approve)
    approve.set_defaults(func=run_approve)

    revoke = subparsers.add_parser(
        "revoke",
        help="remove approvals from the capability lock",
        description="Remove a crate's approvals (all, one --versions range, or some --caps).",
    )
    revoke.add_argument("name", metavar="NAME", help="the crate (approvals cover version ranges)")
    revoke.add_argument("--versions", metavar="REQ", help="only the approval with this range")
    revoke.add_argument("--caps", help="only these capabilities (comma-separated)")
    revoke.add_argument(
        "--reason", type=reason_arg, required=True, help="why (written to the audit log)"
    )
    revoke.add_argument("--by", default=None, help="who (default: the current user)")
    _lock_args(revoke)
    revoke.set_defaults(func=run_revoke)

    pending = subparsers.add_parser(
        "pending",
        help="list what the mirror holds back for review, with its evidence",
        description="Every crate version the server blocked or quarantined with nobody having "
        "approved, denied or let it through since (read from the audit log's query index, "
        "so it is what the server did, whatever the rule), with what it adds, the evidence "
        "and the command that approves it. Give the settings the server runs with "
        "(--config, or --cache-dir / --audit-dir).",
    )
    pending.add_argument("--json", action="store_true", help="print JSON lines")
    _lock_args(pending)
    pending.set_defaults(func=run_pending)

    diff = subparsers.add_parser(
        "diff",
        help="show the capability change between two versions",
        description="Compare two scans (each a .crate file or NAME@VERSION from the cache).",
    )
    diff.add_argument("old", metavar="OLD")
    diff.add_argument("new", metavar="NEW")
    diff.add_argument("--json", action="store_true", help="print the diff as JSON")
    _cache_arg(diff)
    diff.set_defaults(func=run_diff)


def _cache_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        type=path_arg,
        help=f"mirror cache: where NAME@VERSION and stored scans are read (default "
        f"{DEFAULT_CACHE}); scans of .crate files are kept only when this is given",
    )


def _lock_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=path_arg,
        help="the server's settings file: its policy's lock, cache and audit directories",
    )
    parser.add_argument(
        "--lock",
        type=path_arg,
        help=f"reviewed capability lock (default: the policy's, else {DEFAULT_LOCK})",
    )
    parser.add_argument(
        "--audit-dir", type=path_arg, help="audit log directory (default <cache-dir>/audit)"
    )
    parser.add_argument(
        "--cache-dir",
        type=path_arg,
        help=f"the server's cache: index files, crates, scans, its state (default {DEFAULT_CACHE})",
    )


def lock_places(args: argparse.Namespace) -> LockPlaces:
    """The lock, cache and audit log a command acts on: flags, else the settings (--config
    and CRATE_MIRROR_*), else the defaults. The same places the server's 403s print."""
    overrides = {"cache_dir": args.cache_dir} if args.cache_dir is not None else {}
    settings = load_settings(args.config, overrides=overrides)
    lock = args.lock
    if lock is None and settings.policy is not None:
        lock = PolicyFiles(settings.policy).lock_path(load_policy(settings.policy))
    return LockPlaces(
        reviewed=lock if lock is not None else DEFAULT_LOCK,
        recorded=settings.tofu_lock_path,
        epoch=settings.state_directory / EPOCH_NAME,
        cache_dir=settings.cache_dir,
        audit_dir=args.audit_dir if args.audit_dir is not None else settings.audit_directory,
    )


# -- finding reports ---------------------------------------------------------------------------


def load_report(target: str, cache_dir: Path | None) -> CapabilityReport:
    """Scan a .crate file, or read the scan of a name@version from the mirror's cache.

    A file is scanned without any cache unless `cache_dir` is given (then its report is kept
    there); name@version needs the cache (`cache_dir`, default ./mirror-data) and is scanned
    from the stored crate when no report is kept yet.
    """
    path = Path(target)
    if target.endswith(".crate") or path.is_file():
        try:
            data = path.read_bytes()
        except OSError as e:
            raise NotFound(f"cannot read {target}: {e.strerror}") from e
        if cache_dir is None:
            return scan_crate(data)  # scanning a local file needs no cache: write nothing
        scans = Scans(FilesystemStore(cache_dir))
        known = scans.known(hashlib.sha256(data).hexdigest())
        return known if known is not None else scans.scan_bytes(data)
    ref = CrateRef.parse(target)
    store = _existing_cache(cache_dir or DEFAULT_CACHE)
    if store is None:
        raise NotFound(f"{ref}: no mirror cache at {cache_dir or DEFAULT_CACHE}")
    scans = Scans(store)
    for report in scans.stored():
        if report.name == ref.name and report.version == ref.version:
            return report
    return scans.scan_bytes(_stored_crate(ref, store))


def _existing_cache(cache_dir: Path) -> FilesystemStore | None:
    """The mirror cache at `cache_dir`, or None when there is none (never create one here)."""
    return FilesystemStore(cache_dir) if cache_dir.is_dir() else None


def _cached_line(ref: CrateRef, cache_dir: Path) -> IndexLine:
    """name@version's line in the cached index file; NotFound when the mirror has not seen
    that version (an approval of a mistyped version would approve every version)."""
    store = _existing_cache(cache_dir)
    if store is None:
        raise NotFound(f"{ref}: no mirror cache at {cache_dir}")
    cached = store.read_index(ref.name)
    if cached is None:
        raise NotFound(
            f"{ref.name} is not in the cache (what the mirror answered moments ago is written "
            "to it within seconds: try again)"
        )
    line = IndexFile.parse(cached.body).find(ref.version)
    if line is None:
        raise NotFound(f"{ref} is not in the cached index file")
    return line


def _stored_crate(ref: CrateRef, store: FilesystemStore) -> bytes:
    """The .crate bytes of name@version: cached index file -> cksum -> the stored crate."""
    line = _cached_line(ref, store.root)
    if not store.has_crate(line.cksum):
        raise NotFound(f"{ref} has not been downloaded through the mirror yet")
    return store.crate_path(line.cksum).read_bytes()


# -- commands ----------------------------------------------------------------------------------


def run_scan(args: argparse.Namespace) -> int:
    return _guarded(lambda: _scan(args))


def _scan(args: argparse.Namespace) -> int:
    report = load_report(args.target, args.cache_dir)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print("\n".join(report_lines(report)))
    return 0


def run_approve(args: argparse.Namespace) -> int:
    return _guarded(lambda: _approve(args))


def _approve(args: argparse.Namespace) -> int:
    places = lock_places(args)
    _only_the_servers_lock(places)
    by = args.by or getpass.getuser()
    if (args.spec is None) == (args.lockfile is None):
        raise BadRequest("give NAME@VERSION or --lockfile (one of them)")
    if args.lockfile is not None:
        return _approve_lockfile(args, places, by)
    ref = CrateRef.parse(args.spec)
    if args.caps is not None:
        caps = parse_capabilities(args.caps)
        _cached_line(ref, places.cache_dir)  # a version the mirror has seen, not a typo
    else:
        caps = load_report(str(ref), places.cache_dir).capability_set
    when = datetime.now(UTC)
    _audit_writable(places.audit_dir)
    lock = update_lock(
        places.reviewed,
        lambda old: old.with_approval(
            ref.name, args.versions, caps, by, args.reason, when, reviewed=ref.version
        ),
        epoch=places.epoch,
    )
    listed = ", ".join(c.value for c in Capability if c in caps) or "no capabilities"
    _audit(
        places.audit_dir,
        "approve",
        f"{by} approved {listed} for {ref.name}"
        + (f" {args.versions}" if args.versions else "")
        + f": {args.reason}",
        ref.name,
        ref.version,
        {
            "capabilities": sorted(c.value for c in caps),
            "versions": args.versions,
            "by": by,
            "why": args.reason,
            "lock": str(places.reviewed),
        },
    )
    now = lock.approved_for(ref.name, ref.version) or frozenset()
    print(f"approved for {ref}: {', '.join(c.value for c in Capability if c in now) or 'none'}")
    return 0


def _approve_lockfile(args: argparse.Namespace, places: LockPlaces, by: str) -> int:
    """Everything the lockfile needs reviewed, approved in one lock write with one reason."""
    if args.caps is not None or args.versions is not None:
        raise BadRequest("--lockfile approves what each version's scan found: no --caps/--versions")
    try:
        text = args.lockfile.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise NotFound(f"cannot read {args.lockfile}: {e}") from e
    with _desk(places, _index_place(args, places)) as desk:
        holds = desk.holds_in_lockfile(text)
        targets = [(h.crate, h.version) for h in holds]
        outcome = desk.approve(targets, by, args.reason, via="cli")
    for label in outcome.done:
        print(f"approved {label}")
    for label, why in outcome.skipped:
        print(f"not approved {label}: {why}", file=sys.stderr)
    print(f"{len(outcome.done)} approved, {len(outcome.skipped)} not approvable")
    return 0 if not outcome.skipped else 1


def run_revoke(args: argparse.Namespace) -> int:
    return _guarded(lambda: _revoke(args))


def _revoke(args: argparse.Namespace) -> int:
    if "@" in args.name:
        # An approval covers a range, not one version: revoking "name@1.0.1" would have
        # removed them all. Say so rather than guess.
        raise BadRequest(
            f"{args.name}: revoke takes a crate name; to revoke one approval's range, give "
            "its --versions REQ (as the lock lists it)"
        )
    places = lock_places(args)
    _only_the_servers_lock(places)
    name = validate_name(args.name)
    caps = parse_capabilities(args.caps) if args.caps is not None else None
    before = merged(load_lock(places.reviewed), load_lock(places.recorded))
    if not before.approvals(name):
        print(f"{name} has no approvals in {places.reviewed}", file=sys.stderr)
        return 1
    by = args.by or getpass.getuser()
    _audit_writable(places.audit_dir)
    tombstone = revocation(by, args.reason, datetime.now(UTC))
    if args.versions is None:
        # Trust-on-first-use records of it go too: re-approval must not resurrect them.
        update_lock(places.recorded, lambda old: old.without(name, None, caps))
    update_lock(
        places.reviewed,
        lambda old: old.without(name, args.versions, caps, revoked=tombstone),
        epoch=places.epoch,
    )
    what = ", ".join(sorted(c.value for c in caps)) if caps else "all approvals"
    _audit(
        places.audit_dir,
        "revoke",
        f"{by} revoked {what} for {name}"
        + (f" {args.versions}" if args.versions else "")
        + f": {args.reason}",
        name,
        None,
        {
            "capabilities": sorted(c.value for c in caps) if caps else None,
            "versions": args.versions,
            "by": by,
            "why": args.reason,
            "lock": str(places.reviewed),
        },
    )
    print(f"revoked {what} for {name}")
    return 0


def run_pending(args: argparse.Namespace) -> int:
    return _guarded(lambda: _pending(args))


def _pending(args: argparse.Namespace) -> int:
    places = lock_places(args)
    if not places.audit_dir.is_dir():
        raise NotFound(
            f"no audit log at {places.audit_dir}: give the settings the server runs with "
            "(--config, or --cache-dir / --audit-dir)"
        )
    with _desk(places, _index_place(args, places), writes=False) as desk:
        holds = desk.pending(limit=100_000)
        reviews = [desk.review(h.crate, h.version) for h in holds]
    for review in reviews:
        if review is None:
            continue
        hold = review.hold
        if args.json:
            print(json.dumps({
                "crate": hold.crate, "version": hold.version or None, "rule": hold.rule,
                "action": hold.action, "requests": hold.count,
                "reason": review.event.get("reason"),
                "added": {a.capability: [{"file": e.file, "line": e.line, "item": e.item}
                                         for e in a.evidence] for a in review.added},
                "approvable": review.approvable, "approve": review.command,
            }))  # fmt: skip
            continue
        print(f"{hold.crate} {hold.version or '(every version)'}  {hold.action} by {hold.rule}, "
              f"{hold.count} request(s)")  # fmt: skip
        print(f"  {printable(review.event.get('reason', ''))}")
        for addition in review.added:
            print(f"  + {addition.capability}")
            for e in addition.evidence:
                print(f"      {printable(e.file)}:{e.line} {printable(e.item)}")
        if review.approvable:
            print(f"  approve: {review.command}")
    if not reviews and not args.json:
        print("nothing pending")
    return 0


def _index_place(args: argparse.Namespace, places: LockPlaces) -> IndexPlace:
    """The chains whose holds a command reads: those under --audit-dir, else the server's
    (with replicas, every replica's chain, through the replica's own index)."""
    if args.audit_dir is not None:
        return IndexPlace.beside(places.audit_dir)
    overrides = {"cache_dir": args.cache_dir} if args.cache_dir is not None else {}
    return IndexPlace.of(load_settings(args.config, overrides=overrides))


@contextlib.contextmanager
def _desk(places: LockPlaces, place: IndexPlace, *, writes: bool = True) -> Iterator[ReviewDesk]:
    # Listing writes nothing: the log is not opened for writing (a read-only copy of a
    # cache could not even be listed).
    audit: AuditLog | _NothingToWrite = AuditLog(places.audit_dir) if writes else _NothingToWrite()
    index = place.open()
    try:
        yield ReviewDesk(index, FilesystemStore(places.cache_dir), places, audit)
    finally:
        audit.close()
        index.close()


class _NothingToWrite:
    """The audit sink of a command that only reads (`pending`)."""

    def record(self, event: AuditEvent) -> None:
        raise AssertionError(f"a listing recorded {event.action}")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def run_diff(args: argparse.Namespace) -> int:
    return _guarded(lambda: _diff(args))


def _diff(args: argparse.Namespace) -> int:
    old = load_report(args.old, args.cache_dir)
    new = load_report(args.new, args.cache_dir)
    added = {c: e for c, e in new.capabilities.items() if c not in old.capabilities}
    removed = {c: e for c, e in old.capabilities.items() if c not in new.capabilities}
    if args.json:
        print(json.dumps({
            "old": f"{old.name}@{old.version}", "new": f"{new.name}@{new.version}",
            "added": {c.value: [str(e) for e in ev] for c, ev in added.items()},
            "removed": [c.value for c in removed],
        }, indent=2))  # fmt: skip
        return 0
    print(f"{old.name} {old.version} -> {new.name} {new.version}")
    if not added and not removed:
        print("  no capability change")
    if added:
        print(f"  adds: {describe(added)}")
        for cap, evidence in added.items():
            print(f"  + {cap.value}")
            print("\n".join(f"      {e}" for e in evidence))
    for cap in removed:
        print(f"  - {cap.value}")
    return 0


def _only_the_servers_lock(places: LockPlaces) -> None:
    """A lock other than the one this cache's server reads is a mistyped --lock: the change
    would go to a file nobody reads (the crate stays held), and be audited as done."""
    used = lock_in_use(places.epoch.parent)
    if used is not None and used != places.reviewed.resolve():
        raise BadRequest(
            f"--lock {places.reviewed}: the server of {places.cache_dir} reads {used} (give "
            "that lock, as its 403s and `pending` print it, or --config)"
        )


def _audit_writable(directory: Path) -> None:
    """Checked before the lock changes: an approval nobody can audit is refused, not half
    made (a read-only cache took the lock change, then failed to record it)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot write the audit log in {directory}: {e.strerror}") from e
    if not os.access(directory, os.W_OK):
        raise StorageError(f"cannot write the audit log in {directory}")


def _audit(
    directory: Path,
    action: str,
    reason: str,
    crate: str,
    version: str | None,
    details: dict[str, Any],
) -> None:
    log = AuditLog(directory)
    try:
        log.record(AuditEvent(action, "capabilities", reason, crate=crate, version=version,
                              route="cli", details=details))  # fmt: skip
    finally:
        log.close()


def _guarded(command: Any) -> int:
    try:
        return int(command())
    except ConfigError as e:
        # The settings, the policy or the lock: each problem names its file and line.
        print(f"error: invalid configuration:\n{e}", file=sys.stderr)
        return 2
    except ArchiveError as e:
        print(f"error: rejected crate: {e}", file=sys.stderr)
        return 2
    except (MirrorError, ValueError) as e:
        kind = "error" if not isinstance(e, BadRequest) else "usage"
        print(f"{kind}: {e}", file=sys.stderr)
        return 2
