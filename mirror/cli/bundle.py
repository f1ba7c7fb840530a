"""`crate-mirror export` and `crate-mirror import`: move crates across an air gap."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from mirror.cli.args import out_file_arg, path_arg
from mirror.cli.serve import add_settings_arguments, settings_from_args
from mirror.config import Settings
from mirror.errors import BadRequest, ConfigError, MirrorError
from mirror.index import CrateRef
from mirror.trust.settings import TufRepositorySettings, TufSettings


def register(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write a signed bundle of what lockfiles need, for a disconnected mirror",
        description="Index files (as this mirror serves them), crates and this mirror's "
        "signed TUF metadata for exactly the packages of the given lockfiles, in one tar "
        "with a manifest. Crates missing from the cache are fetched first (policy applies).",
    )
    add_settings_arguments(p)
    p.add_argument(
        "--lockfile",
        type=path_arg,
        action="append",
        default=[],
        required=True,
        help="a Cargo.lock (repeatable)",
    )
    p.add_argument(
        "--crate",
        dest="crates",
        action="append",
        default=[],
        metavar="NAME@VERSION",
        help="an extra crate (repeatable)",
    )
    p.add_argument("--repo", type=path_arg, help="TUF repository dir (default: tuf.repository.dir)")
    p.add_argument("--out", type=out_file_arg, required=True, help="bundle file to write")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_export)

    p = sub.add_parser(
        "import",
        help="verify a bundle against the pinned root, then add it to the cache",
        description="Verifies every file (threshold signatures, expiry, rollback, hashes) "
        "before anything enters the cache; any failure rejects the whole bundle.",
    )
    add_settings_arguments(p)
    p.add_argument("bundle", type=path_arg)
    p.add_argument(
        "--trusted-root",
        type=path_arg,
        help="pinned root.json of the exporting mirror (default: tuf.upstream.trusted_root)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_import)


def _tuf(settings: Settings, args: argparse.Namespace, offline: bool) -> TufSettings:
    return TufSettings.from_mapping(settings.tuf, str(args.config or "settings"), offline=offline)


def run_export(args: argparse.Namespace) -> int:
    from mirror.serving.prefetch import crates_in_lockfile

    try:
        settings = settings_from_args(args)
        repo = _tuf(settings, args, settings.offline).repository
        if args.repo is not None:
            repo = (
                TufRepositorySettings(args.repo)
                if repo is None
                else TufRepositorySettings(args.repo, repo.bins, repo.expiry, repo.signers)
            )
        if repo is None:
            raise BadRequest("no TUF repository: give --repo or configure tuf.repository")
        refs = [ref for lock in args.lockfile for ref in crates_in_lockfile(lock)]
        refs += [CrateRef.parse(spec) for spec in args.crates]
    except ConfigError as e:
        print(f"crate-mirror export: invalid configuration:\n{e}", file=sys.stderr)
        return 2
    except BadRequest as e:
        print(f"crate-mirror export: {e}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_export(settings, repo, sorted(set(refs), key=str), args))
    except MirrorError as e:
        print(f"crate-mirror export: {e}", file=sys.stderr)
        return 1


async def _export(
    settings: Settings, repo: TufRepositorySettings, refs: list[CrateRef], args: argparse.Namespace
) -> int:
    from tqdm import tqdm

    from mirror.request_ids import next_request_id
    from mirror.serving.core import Client
    from mirror.serving.open import open_mirror
    from mirror.serving.prefetch import check_locked
    from mirror.trust.bundle import export_bundle
    from mirror.trust.repository import MirrorRepository

    core, close = open_mirror(settings)
    index_files: dict[str, bytes] = {}
    crates: dict[str, Path] = {}
    bar = tqdm(total=len(refs), unit="crate", disable=args.no_progress, file=sys.stderr)
    try:
        await core.start()
        for ref in refs:
            client = Client(next_request_id(), "export")
            answer = await core.fetch_crate(ref.name, ref.version, client, route="export")
            check_locked(ref, answer.line.cksum)  # a bundle cargo would refuse is no bundle
            # The bundle carries what downstream would see: the policy-filtered index file.
            index_files[ref.name] = answer.served_index.body
            crates[answer.line.cksum] = answer.crate.path
            bar.update(1)
        await core.settle()  # the capability records of crates seen for the first time
    finally:
        bar.close()
        await close()
    files = tqdm(unit="file", disable=args.no_progress, file=sys.stderr, desc="writing")
    try:
        report = await asyncio.to_thread(
            export_bundle, args.out, index_files, crates, MirrorRepository(repo), files.update
        )
    finally:
        files.close()
    print(
        f"wrote {args.out}: {report.index_files} index files, {report.crates} crates, "
        f"{report.bytes} bytes"
    )
    return 0


def run_import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mirror.store import FilesystemStore
    from mirror.trust.bundle import import_bundle

    try:
        settings = settings_from_args(args)
        # An import never contacts upstream: a pinned root alone is enough (air gap).
        root = args.trusted_root or _tuf(settings, args, offline=True).pinned_root
        if root is None:
            raise BadRequest("give --trusted-root or configure tuf.upstream.trusted_root")
    except ConfigError as e:
        print(f"crate-mirror import: invalid configuration:\n{e}", file=sys.stderr)
        return 2
    except BadRequest as e:
        print(f"crate-mirror import: {e}", file=sys.stderr)
        return 2
    bar = tqdm(unit="file", disable=args.no_progress, file=sys.stderr, desc="verifying")
    details: dict[str, Any] = {"bundle": str(args.bundle), "trusted_root": str(root)}
    try:
        report = import_bundle(
            args.bundle, FilesystemStore(settings.cache_dir), root, progress=bar.update
        )
    except MirrorError as e:
        _audit(settings, "block", f"bundle rejected: {e}", details)
        print(f"crate-mirror import: bundle rejected: {e}", file=sys.stderr)
        return 1
    finally:
        bar.close()
    details |= {
        "index_files": report.index_files,
        "crates_added": report.crates_added,
        "metadata_version": report.metadata_version,
    }
    _audit(settings, "import", "bundle verified and imported", details)
    print(
        f"imported {args.bundle}: {report.index_files} index files, {report.crates_added} new "
        f"crates, {report.crates_present} already present (metadata v{report.metadata_version})"
    )
    return 0


def _audit(settings: Settings, action: str, reason: str, details: dict[str, Any]) -> None:
    """Record the import verdict in the tamper-evident audit log, like any serving decision."""
    from mirror.audit.event import AuditEvent
    from mirror.audit.writer import AuditLog

    log = AuditLog(settings.audit_directory)
    try:
        log.record(AuditEvent(action, "tuf.bundle", reason, route="cli", details=details))
    finally:
        log.close()
