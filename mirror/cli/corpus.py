"""`crate-mirror corpus update|check`: refresh the protected-name corpus, try names against it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from tqdm import tqdm

from mirror.cli.args import path_arg
from mirror.errors import BadRequest, MirrorError
from mirror.index import validate_name
from mirror.policy.names import NameIndex
from mirror.sources.corpus import DEFAULT_CORPUS, CorpusUpdateSettings, load_corpus, update_corpus


def register(subparsers: Any) -> None:
    corpus = subparsers.add_parser(
        "corpus",
        help="manage the popular-crate corpus used by typosquat checks",
        description="Manage the popular-crate corpus that typosquat checks protect.",
    )
    sub = corpus.add_subparsers(dest="corpus_command", metavar="SUBCOMMAND", required=True)

    defaults = CorpusUpdateSettings()
    update = sub.add_parser(
        "update",
        help="refresh the corpus from a crates.io-compatible API",
        description=(
            "Fetch the most downloaded crate names from a crates.io-compatible API "
            "(/api/v1/crates?sort=downloads), at most one request per second with an "
            "identifying User-Agent, and replace the corpus file atomically. On any failure "
            "the old file is kept."
        ),
    )
    update.add_argument(
        "--api", default=defaults.api, help=f"API base URL (default: {defaults.api})"
    )
    update.add_argument(
        "--count",
        type=_positive_int,
        default=defaults.count,
        help=f"number of names to fetch (default: {defaults.count})",
    )
    update.add_argument(
        "--out",
        type=path_arg,
        default=DEFAULT_CORPUS,
        help=f"corpus file to replace (default: {DEFAULT_CORPUS})",
    )
    update.set_defaults(func=run_update)

    check = sub.add_parser(
        "check",
        help="check crate names against the corpus (exit 1 if any is a suspected squat)",
        description="Report which protected crate each NAME imitates, and by which check.",
    )
    check.add_argument("names", nargs="+", metavar="NAME")
    check.add_argument("--corpus", type=path_arg, default=DEFAULT_CORPUS, help="corpus file")
    check.add_argument(
        "--top", type=_positive_int, default=None, help="protect only the first N names"
    )
    check.set_defaults(func=run_check)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def run_update(args: argparse.Namespace) -> int:
    settings = CorpusUpdateSettings(api=args.api, count=args.count)
    with tqdm(total=args.count, unit="name", desc="corpus", disable=None) as bar:
        try:
            names = asyncio.run(update_corpus(args.out, settings, on_page=bar.update))
        except MirrorError as e:
            bar.close()
            print(f"crate-mirror corpus update: {e} (corpus unchanged)", file=sys.stderr)
            return 1
    print(f"wrote {len(names)} names to {args.out}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    try:
        names = load_corpus(args.corpus)
    except MirrorError as e:
        print(f"crate-mirror corpus check: {e}", file=sys.stderr)
        return 2
    index = NameIndex(names, protect_top=args.top if args.top is not None else len(names))
    suspected = 0
    for name in args.names:
        try:
            validate_name(name)  # '' or '../x' is no crate name: not "no look-alike"
        except BadRequest as e:
            print(f"crate-mirror corpus check: {name!r}: {e}", file=sys.stderr)
            return 2
        facts = index.facts(name)
        rank = f"ranks #{facts.rank}" if facts.rank is not None else "not in the corpus"
        if facts.typo is not None:
            suspected += 1
            m = facts.typo
            print(
                f"{name}: looks like {m.protected} (rank {m.protected_rank}): {m.description}"
                f" [{m.check}, distance {m.distance}]; {rank}"
            )
        elif facts.combo is not None:
            suspected += 1
            c = facts.combo
            print(f"{name}: {c.protected} (rank {c.protected_rank}) with {c.description}; {rank}")
        else:
            print(f"{name}: no look-alike; {rank}")
    return 1 if suspected else 0
