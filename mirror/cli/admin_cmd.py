"""`crate-mirror admin add|list|revoke`: the review console's admins and their tokens."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mirror.cli.args import path_arg
from mirror.config import load_settings
from mirror.errors import BadRequest, ConfigError, NotFound
from mirror.sources.tokens import TokenStore, admin_tokens

DEFAULT_ADMIN_FILE = Path("mirror-data/admin-tokens.json")


def register(subparsers: Any) -> None:
    admin = subparsers.add_parser(
        "admin",
        help="add, list and revoke the review console's admins (their own tokens)",
        description="Manage who may use the review console (/-/ on the mirror) and approve "
        "crates there. Admin tokens (cma_...) are kept apart from cargo's client tokens: "
        "neither kind works as the other. The file stores only sha256 hashes; a new token is "
        "printed once. The server serves the console when its `admin_tokens` setting names "
        "this file.",
    )
    sub = admin.add_subparsers(dest="admin_command", metavar="SUBCOMMAND", required=True)

    def with_file(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--file",
            type=path_arg,
            help=f"admin token file (default: admin_tokens from --config, else "
            f"{DEFAULT_ADMIN_FILE})",
        )
        p.add_argument("--config", type=path_arg, help="settings file giving admin_tokens")
        return p

    add = with_file(
        sub.add_parser(
            "add",
            help="create an admin token and print it once",
            description="Create a console token for NAME (a person: every approval made with "
            "it records NAME) and print it on stdout, only this once.",
        )
    )
    add.add_argument("name", help="who the token is for; recorded with every approval")
    add.set_defaults(func=run_add)
    ls = with_file(
        sub.add_parser(
            "list",
            help="show admins and dates",
            description="List the console's admins: name, when added, and the start of "
            "their token's sha256.",
        )
    )
    ls.set_defaults(func=run_list)
    revoke = with_file(
        sub.add_parser(
            "revoke",
            help="delete an admin token (its console sessions end at once)",
            description="Delete NAME's token. Sessions opened with it stop working on their "
            "next request.",
        )
    )
    revoke.add_argument("name")
    revoke.set_defaults(func=run_revoke)


def _store(args: argparse.Namespace) -> TokenStore:
    path = args.file
    if path is None and args.config is not None:
        path = load_settings(args.config).admin_tokens
    return admin_tokens(path if path is not None else DEFAULT_ADMIN_FILE)


def run_add(args: argparse.Namespace) -> int:
    try:
        store = _store(args)
        token = store.add(args.name)
    except (BadRequest, ConfigError) as e:
        print(f"crate-mirror: {e}", file=sys.stderr)
        return 2
    print(token)
    print(f"admin {args.name!r} added to {store.path}; the token is shown only now; log in at "
          "<mirror>/-/login", file=sys.stderr)  # fmt: skip
    return 0


def run_list(args: argparse.Namespace) -> int:
    try:
        store = _store(args)
        records = store.records()
    except ConfigError as e:
        print(f"crate-mirror: {e}", file=sys.stderr)
        return 2
    if not records:
        if not Path(store.path).exists():  # a typo, not an empty list
            print(f"crate-mirror: no file {store.path}", file=sys.stderr)
            return 2
        print(f"no admins in {store.path}", file=sys.stderr)
        return 0
    width = max(len(r.name) for r in records)
    for r in records:
        print(f"{r.name:<{width}}  {r.created}  sha256:{r.sha256[:12]}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    try:
        gone = _store(args).revoke(args.name)
    except NotFound as e:  # nothing to revoke: 1
        print(f"crate-mirror: {e}", file=sys.stderr)
        return 1
    except ConfigError as e:  # a malformed file: 2, as `list` and `add` say
        print(f"crate-mirror: {e}", file=sys.stderr)
        return 2
    print(f"revoked admin {gone.name!r}", file=sys.stderr)
    return 0
