"""`crate-mirror advisories update`: fetch the RustSec advisory database a policy reads."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mirror.cli.args import path_arg
from mirror.errors import ConfigError, MirrorError
from mirror.policy.schema import RUSTSEC_ADVISORY_DB
from mirror.sources.advisories import update_advisory_db
from mirror.sources.policy_files import load_policy


def register(subparsers: Any) -> None:
    advisories = subparsers.add_parser(
        "advisories",
        help="fetch the RustSec advisory database the advisories rule reads",
        description="Manage the local copy of the RustSec advisory database "
        "(rules.advisories.db in the policy; docs/policy.md).",
    )
    sub = advisories.add_subparsers(dest="advisories_command", metavar="SUBCOMMAND", required=True)
    update = sub.add_parser(
        "update",
        help="clone the advisory database and replace the local copy once it checks out",
        description="Clone the advisory database from its source (rules.advisories.source, "
        f"by default {RUSTSEC_ADVISORY_DB}) next to rules.advisories.db, load it exactly as "
        "the server does, and only then put it in place of the old copy. On any failure the "
        "old copy is kept. A running mirror with this policy picks the new copy up within a "
        "few seconds. Needs `git`.",
    )
    update.add_argument("--policy", type=path_arg, help="policy whose rules.advisories to use")
    update.add_argument(
        "--db", type=path_arg, help="where the database goes (overrides the policy)"
    )
    update.add_argument(
        "--source",
        help="git URL or local path to clone from (overrides the policy; default "
        f"{RUSTSEC_ADVISORY_DB})",
    )
    update.add_argument(
        "--no-progress", action="store_true", help="do not relay git's progress to stderr"
    )
    update.set_defaults(func=run_update)


def run_update(args: argparse.Namespace) -> int:
    db: Path | None = args.db
    source: str = args.source or RUSTSEC_ADVISORY_DB
    if args.policy is not None:
        try:
            rule = load_policy(args.policy).rules.advisories
        except ConfigError as e:
            print(f"crate-mirror: invalid policy:\n{e}", file=sys.stderr)
            return 2
        db = db or rule.db
        source = args.source or rule.source
    if db is None:
        print(
            "crate-mirror advisories update: no database path: give --db DIR, or --policy FILE "
            "whose rules.advisories.db is set",
            file=sys.stderr,
        )
        return 2
    print(f"fetching advisories from {source} into {db} ...", file=sys.stderr, flush=True)
    progress = None if args.no_progress else _relay
    try:
        fresh = update_advisory_db(source, db, progress=progress)
    except MirrorError as e:
        print(f"crate-mirror advisories update: {e} ({db} unchanged)", file=sys.stderr)
        return 1
    crates = len(fresh.by_crate)
    print(
        f"updated {db}: {len(fresh)} advisories for {crates} crates "
        f"({fresh.withdrawn} withdrawn ones skipped)"
    )
    return 0


def _relay(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()
