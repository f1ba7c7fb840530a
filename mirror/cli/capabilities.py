"""`crate-mirror scan|approve|revoke|pending|diff`: capability reports and the capability lock."""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mirror.audit import AuditEvent, AuditLog
from mirror.errors import ArchiveError, BadRequest, ConfigError, MirrorError, NotFound
from mirror.index import CrateRef, IndexFile, validate_name
from mirror.policy.capability_lock import (
    CapabilityRule,
    decide_capabilities,
    describe,
)
from mirror.policy.decision import Action, Mode
from mirror.scan.capabilities import (
    Capability,
    CapabilityReport,
    parse_capabilities,
    report_lines,
    scan_crate,
)
from mirror.serving.scans import Scans
from mirror.sources.capability_lockfile import load_lock, update_lock
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
        description="Add an approval to the capability lock. Without --caps, approves exactly "
        "the capabilities the scan of NAME@VERSION found (the crate must be in the cache).",
    )
    approve.add_argument("spec", metavar="NAME@VERSION")
    approve.add_argument("--caps", help="comma-separated capabilities to approve")
    approve.add_argument(
        "--versions",
        metavar="REQ",
        help="limit the approval to a cargo version requirement (default: every version)",
    )
    approve.add_argument(
        "--reason", required=True, help="why this is acceptable (kept in the lock)"
    )
    approve.add_argument("--by", default=None, help="approver (default: the current user)")
    _lock_args(approve)
    approve.set_defaults(func=run_approve)

    revoke = subparsers.add_parser(
        "revoke",
        help="remove approvals from the capability lock",
        description="Remove a crate's approvals (all, one --versions range, or some --caps).",
    )
    revoke.add_argument("name", metavar="NAME[@VERSION]", help="crate (a version is ignored)")
    revoke.add_argument("--versions", metavar="REQ", help="only the approval with this range")
    revoke.add_argument("--caps", help="only these capabilities (comma-separated)")
    revoke.add_argument("--reason", required=True, help="why (written to the audit log)")
    revoke.add_argument("--by", default=None, help="who (default: the current user)")
    _lock_args(revoke)
    revoke.set_defaults(func=run_revoke)

    pending = subparsers.add_parser(
        "pending",
        help="list scanned versions the lock holds back, with what they add",
        description="Every cached scan whose decision against the lock is block or warn, "
        "with the added capabilities, their evidence and the command to approve.",
    )
    pending.add_argument(
        "--first-seen",
        choices=("trust", "require-approval"),
        default="trust",
        help="treat crates missing from the lock as trusted (default) or pending",
    )
    pending.add_argument("--json", action="store_true", help="print JSON lines")
    pending.add_argument("--lock", type=Path, default=DEFAULT_LOCK, help="capability lock file")
    _cache_arg(pending)
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
        type=Path,
        help=f"mirror cache: where NAME@VERSION and stored scans are read (default "
        f"{DEFAULT_CACHE}); scans of .crate files are kept only when this is given",
    )


def _lock_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK, help="capability lock file")
    parser.add_argument(
        "--audit-dir", type=Path, help="audit log directory (default <cache-dir>/audit)"
    )
    _cache_arg(parser)


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


def _stored_crate(ref: CrateRef, store: FilesystemStore) -> bytes:
    """The .crate bytes of name@version: cached index file -> cksum -> the stored crate."""
    cached = store.read_index(ref.name)
    if cached is None:
        raise NotFound(f"{ref.name} is not in the cache")
    line = IndexFile.parse(cached.body).find(ref.version)
    if line is None:
        raise NotFound(f"{ref} is not in the cached index file")
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
    ref = CrateRef.parse(args.spec)
    if args.caps is not None:
        caps = parse_capabilities(args.caps)
    else:
        caps = load_report(str(ref), args.cache_dir).capability_set
    by = args.by or getpass.getuser()
    when = datetime.now(UTC)
    lock = update_lock(
        args.lock,
        lambda old: old.with_approval(
            ref.name, args.versions, caps, by, args.reason, when, reviewed=ref.version
        ),
    )
    listed = ", ".join(c.value for c in Capability if c in caps) or "no capabilities"
    _audit(
        args.audit_dir or args.cache_dir / "audit",
        "approve",
        f"{by} approved {listed} for {ref.name}" + (f" {args.versions}" if args.versions else ""),
        ref.name,
        ref.version,
        {
            "capabilities": sorted(c.value for c in caps),
            "versions": args.versions,
            "by": by,
            "why": args.reason,
            "lock": str(args.lock),
        },
    )
    now = lock.approved_for(ref.name, ref.version) or frozenset()
    print(f"approved for {ref}: {', '.join(c.value for c in Capability if c in now) or 'none'}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    return _guarded(lambda: _revoke(args))


def _revoke(args: argparse.Namespace) -> int:
    name = validate_name(args.name.partition("@")[0])
    caps = parse_capabilities(args.caps) if args.caps is not None else None
    before = load_lock(args.lock)
    if before.approved_for(name, "0.0.0") is None:
        print(f"{name} has no approvals in {args.lock}", file=sys.stderr)
        return 1
    update_lock(args.lock, lambda old: old.without(name, args.versions, caps))
    by = args.by or getpass.getuser()
    what = ", ".join(sorted(c.value for c in caps)) if caps else "all approvals"
    _audit(
        args.audit_dir or args.cache_dir / "audit",
        "revoke",
        f"{by} revoked {what} for {name}" + (f" {args.versions}" if args.versions else ""),
        name,
        None,
        {
            "capabilities": sorted(c.value for c in caps) if caps else None,
            "versions": args.versions,
            "by": by,
            "why": args.reason,
            "lock": str(args.lock),
        },
    )
    print(f"revoked {what} for {name}")
    return 0


def run_pending(args: argparse.Namespace) -> int:
    return _guarded(lambda: _pending(args))


def _pending(args: argparse.Namespace) -> int:
    lock = load_lock(args.lock)
    rule = CapabilityRule(Mode.BLOCK, args.first_seen)
    store = _existing_cache(args.cache_dir or DEFAULT_CACHE)
    reports = list(Scans(store).stored()) if store is not None else []
    held = []
    for report in tqdm(reports, desc="checking", unit="scan", disable=None, leave=False):
        decision = decide_capabilities(report, lock, rule)
        if decision.action in (Action.BLOCK, Action.WARN):
            held.append((report, decision))
    held.sort(key=lambda rd: (rd[0].name, rd[0].version))
    for report, decision in held:
        if args.json:
            print(json.dumps({"crate": report.name, "version": report.version,
                              "sha256": report.sha256, **decision.details}))  # fmt: skip
            continue
        print(f"{report.name} {report.version}")
        for cap, evidence in decision.details["added"].items():
            print(f"  + {cap}")
            for e in evidence:
                print(f"      {e['file']}:{e['line']} {e['item']}")
        print(f"  approve: {decision.details['approve']}")
    if not held and not args.json:
        print("nothing pending")
    return 0


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
        print(f"error: invalid capability lock:\n{e}", file=sys.stderr)
        return 2
    except ArchiveError as e:
        print(f"error: rejected crate: {e}", file=sys.stderr)
        return 2
    except (MirrorError, ValueError) as e:
        kind = "error" if not isinstance(e, BadRequest) else "usage"
        print(f"{kind}: {e}", file=sys.stderr)
        return 2
