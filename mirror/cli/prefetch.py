"""`crate-mirror prefetch`: warm the cache for lockfiles and crates."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from pathlib import Path
from typing import Any

from mirror.cli.args import path_arg, positive_int
from mirror.cli.serve import add_settings_arguments, settings_from_args
from mirror.errors import BadRequest, ConfigError, MirrorError
from mirror.index import CrateRef


def register(sub: Any) -> None:
    p = sub.add_parser(
        "prefetch",
        help="download and verify the crates of lockfiles into the cache",
        description="Warm the mirror's cache through the same verified path as serving "
        "(index, checksum, policy). Every crate is judged in one pass: what the policy holds "
        "for a person's review is listed together, with the one command that approves all of "
        "a lockfile. Safe to re-run; exits 1 if anything failed or needs review.",
    )
    add_settings_arguments(p)
    p.add_argument(
        "--lockfile",
        type=path_arg,
        action="append",
        default=[],
        help="a Cargo.lock whose registry packages to fetch (repeatable)",
    )
    p.add_argument(
        "--crate",
        dest="crates",
        action="append",
        default=[],
        metavar="NAME@VERSION",
        help="an extra crate to fetch (repeatable)",
    )
    p.add_argument("--policy", type=path_arg, help="apply this policy while fetching")
    p.add_argument("--upstream", dest="upstream_index", help="upstream sparse index URL")
    p.add_argument(
        "--concurrency", type=positive_int, default=8, help="downloads at once (default 8)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mirror.serving.prefetch import crates_in_lockfile

    try:
        settings = settings_from_args(args)
        refs = [ref for lock in args.lockfile for ref in crates_in_lockfile(lock)]
        refs += [CrateRef.parse(spec) for spec in args.crates]
    except (ConfigError, BadRequest) as e:
        print(f"crate-mirror prefetch: {e}", file=sys.stderr)
        return 2
    if not refs:
        what = (
            f"{', '.join(map(str, args.lockfile))} lists no crates.io packages"
            if args.lockfile
            else "give --lockfile or --crate"
        )
        print(f"crate-mirror prefetch: nothing to fetch ({what})", file=sys.stderr)
        return 2
    if settings.offline:
        print("crate-mirror prefetch: cannot prefetch in offline mode", file=sys.stderr)
        return 2
    try:
        return asyncio.run(
            _prefetch(settings, refs, args.lockfile, args.concurrency, not args.no_progress)
        )
    except MirrorError as e:  # the cache cannot be opened or written (a file, read-only)
        print(f"crate-mirror prefetch: {e}", file=sys.stderr)
        return 1


async def _prefetch(
    settings: Any, refs: list[CrateRef], lockfiles: list[Path], concurrency: int, progress: bool
) -> int:
    from tqdm import tqdm

    from mirror.serving.capability_guard import CapabilityGuard
    from mirror.serving.open import open_mirror
    from mirror.serving.prefetch import prefetch

    try:
        core, close = open_mirror(settings)
    except ConfigError as e:
        print(f"crate-mirror prefetch: invalid configuration:\n{e}", file=sys.stderr)
        return 2
    bar = tqdm(total=len(set(refs)), unit="crate", disable=not progress, file=sys.stderr)
    guard = core.gate.capabilities
    flags = guard.places.command_flags if isinstance(guard, CapabilityGuard) else ""
    try:
        await core.start()
        report = await prefetch(
            core,
            refs,
            concurrency=concurrency,
            on_done=lambda ref, outcome: bar.update(1),
        )
        await core.settle()  # the capability records of crates seen for the first time
    finally:
        bar.close()
        await close()
    print(
        f"fetched {len(report.fetched)}, already cached {len(report.cached)}, "
        f"held for review {len(report.held)}, failed {len(report.failed)}"
    )
    if report.held:
        print(f"needs review ({len(report.held)}):")
        for ref, rule, _ in sorted(report.held, key=lambda h: str(h[0])):
            print(f"  {ref}  ({rule})")
        print("see each one's evidence with `crate-mirror pending` or in the console (/-/);")
        print("approve everything a lockfile needs, with one reason:")
        for lockfile in lockfiles:
            print(f'  crate-mirror approve --lockfile {shlex.quote(str(lockfile))} --reason "..."'
                  f"{flags}")  # fmt: skip
    for ref, reason in sorted(report.failed, key=lambda f: str(f[0])):
        print(f"  FAILED {ref}: {reason}")
    return 0 if report.ok else 1
