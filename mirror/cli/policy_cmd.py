"""`crate-mirror policy check FILE`: validate a policy file before the server sees it."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from mirror.cli.args import path_arg
from mirror.errors import ConfigError
from mirror.policy.decision import Mode
from mirror.policy.model import RULE_NAMES, Policy
from mirror.sources.advisories import load_advisories
from mirror.sources.capability_lockfile import load_lock
from mirror.sources.corpus import load_corpus
from mirror.sources.policy_files import PolicyFiles, load_policy


def register(subparsers: Any) -> None:
    policy = subparsers.add_parser(
        "policy",
        help="validate policy files",
        description="Work with crate-mirror policy files (reference: docs/policy.md).",
    )
    sub = policy.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)
    check = sub.add_parser(
        "check",
        help="validate a policy file and print every problem with file, line and field",
        description="Validate a policy file: unknown keys and rule names, wrong types, bad "
        "version ranges, bad dates and durations. Every problem is printed as "
        "FILE:LINE: FIELD: MESSAGE and the exit status is 1. A valid file prints a summary of "
        "its rules; entries past their `expires` date and referenced files that do not exist "
        "are printed as warnings. With advisories enabled, the advisory database is loaded "
        "and checked too.",
    )
    check.add_argument("file", type=path_arg, metavar="FILE", help="the policy YAML file")
    check.add_argument(
        "--today",
        type=dt.date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="judge `expires` dates as of this day (default: today, UTC)",
    )
    check.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    check.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return check_policy(args.file, args.today, quiet=args.quiet, out=sys.stdout)


def check_policy(
    path: Path, today: dt.date | None = None, *, quiet: bool = False, out: TextIO = sys.stdout
) -> int:
    """Print problems (exit 1) or a summary and warnings (exit 0)."""
    try:
        policy = load_policy(path)
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=out)
        count = len(e.problems)
        print(f"{path}: invalid ({count} problem{'s' if count != 1 else ''})", file=out)
        return 1
    today = today or dt.datetime.now(dt.UTC).date()
    problems = _file_problems(policy)
    for line in problems:
        print(line, file=out)
    for warning in _warnings(policy, today):
        print(f"warning: {warning}", file=out)
    if problems:
        count = len(problems)
        print(f"{path}: invalid ({count} problem{'s' if count != 1 else ''} in the files it names)",
              file=out)  # fmt: skip
        return 1
    if not quiet:
        _summary(policy, out)
    return 0


def _file_problems(policy: Policy) -> list[str]:
    """What is wrong in the files the policy names that exist (the advisory database, the
    corpus, the capability lock), read as the server reads them; a missing one is a
    warning (`_warnings`)."""
    rules = policy.rules
    files = PolicyFiles(policy.path)
    corpus = files.corpus_path(policy)
    checks: list[tuple[Mode, Path | None, Callable[[Path], object]]] = [
        (rules.advisories.mode, rules.advisories.db, load_advisories),
        (rules.risk.mode, corpus, load_corpus),
        (rules.capabilities.mode, files.lock_path(policy), load_lock),
    ]
    problems = []
    for mode, file, load in checks:
        if mode is Mode.OFF or file is None or not file.exists():
            continue
        try:
            load(file)
        except ConfigError as e:
            problems += [str(p) for p in e.problems]
    return problems


def _warnings(policy: Policy, today: dt.date) -> list[str]:
    out = []
    for entry in (*policy.allow, *policy.deny):
        if not entry.active(today):
            out.append(
                f"{policy.path}:{entry.line}: {entry.field}: `{entry.spec}` expired on "
                f"{entry.expires} and no longer applies"
            )
    rules = policy.rules
    needed = " (the server will refuse to start without it)"
    fetch = f"{needed}; fetch it with `crate-mirror advisories update --policy {policy.path}`"
    referenced = [
        ("rules.risk.corpus", rules.risk.mode, rules.risk.corpus, needed),
        ("rules.advisories.db", rules.advisories.mode, rules.advisories.db, fetch),
        ("rules.capabilities.lock", rules.capabilities.mode, rules.capabilities.lock, " yet"),
    ]
    for fld, mode, path, consequence in referenced:
        if mode is not Mode.OFF and path is not None and not path.exists():
            out.append(f"{fld}: {path} does not exist{consequence}")
    if rules.advisories.mode is not Mode.OFF and rules.advisories.db is None:
        out.append("rules.advisories.db: not set, so no advisories can be applied")
    return out


def _summary(policy: Policy, out: TextIO) -> None:
    print(f"OK: {policy.path} (sha256 {policy.digest[:16]}...)", file=out)
    for name in RULE_NAMES:
        rule = getattr(policy.rules, name)
        print(f"  {name:<13} {rule.mode.value}", file=out)
    print(f"  allow entries: {len(policy.allow)}, deny entries: {len(policy.deny)}", file=out)
