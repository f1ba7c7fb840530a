"""`crate-mirror token add|list|revoke`: manage the client tokens in the token file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mirror.cli.args import path_arg
from mirror.errors import BadRequest, ConfigError, NotFound
from mirror.sources.tokens import KNOWN_SCOPES, TokenStore

DEFAULT_TOKEN_FILE = Path("mirror-data/tokens.json")


def register(subparsers: Any) -> None:
    token = subparsers.add_parser(
        "token",
        help="add, list and revoke client tokens (for auth-required mirrors)",
        description="Manage the tokens cargo clients present when the mirror requires "
        "authentication. The file stores only sha256 hashes; a new token is printed once.",
    )
    sub = token.add_subparsers(dest="token_command", metavar="SUBCOMMAND", required=True)

    def with_file(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--file",
            type=path_arg,
            default=DEFAULT_TOKEN_FILE,
            help=f"token file (default {DEFAULT_TOKEN_FILE})",
        )
        return p

    add = with_file(
        sub.add_parser(
            "add",
            help="create a token and print it once",
            description="Create a token for NAME and print it on stdout (only this once). "
            "Give it to cargo as CARGO_REGISTRIES_<NAME>_TOKEN or in credentials.toml.",
        )
    )
    add.add_argument("name", help="who the token is for; recorded in the audit log")
    add.add_argument(
        "--scope",
        action="append",
        choices=KNOWN_SCOPES,
        help="what the token allows (default read: index and downloads)",
    )
    add.set_defaults(func=run_add)

    ls = with_file(
        sub.add_parser(
            "list", help="show token names, scopes and dates", description="List tokens."
        )
    )
    ls.set_defaults(func=run_list)

    revoke = with_file(
        sub.add_parser(
            "revoke",
            help="delete a token (a running mirror notices within a second)",
            description="Delete the token named NAME. A running mirror re-reads the file "
            "when it changes, so the token stops working without a restart.",
        )
    )
    revoke.add_argument("name")
    revoke.set_defaults(func=run_revoke)


def run_add(args: argparse.Namespace) -> int:
    try:
        token = TokenStore(args.file).add(args.name, args.scope or ["read"])
    except (BadRequest, ConfigError) as e:
        print(f"crate-mirror: {e}", file=sys.stderr)
        return 2
    print(token)
    print(f"token {args.name!r} added to {args.file}; it is shown only now", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    try:
        records = TokenStore(args.file).records()
    except ConfigError as e:
        print(f"crate-mirror: {e}", file=sys.stderr)
        return 2
    if not records:
        if not Path(args.file).exists():  # a typo, not an empty list
            print(f"crate-mirror: no file {args.file}", file=sys.stderr)
            return 2
        print(f"no tokens in {args.file}", file=sys.stderr)
        return 0
    width = max(len(r.name) for r in records)
    for r in records:
        print(f"{r.name:<{width}}  {','.join(r.scopes):<6}  {r.created}  sha256:{r.sha256[:12]}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    try:
        gone = TokenStore(args.file).revoke(args.name)
    except NotFound as e:  # nothing to revoke: 1, as for `revoke` of capabilities
        print(f"crate-mirror: {e}", file=sys.stderr)
        return 1
    except ConfigError as e:  # a malformed file: 2, as `list` and `add` say
        print(f"crate-mirror: {e}", file=sys.stderr)
        return 2
    print(f"revoked token {gone.name!r}", file=sys.stderr)
    return 0
