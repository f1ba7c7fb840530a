"""`crate-mirror` command line: one module per command group, each exposing `register`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module defines `register(subparsers)`, which adds its sub-commands and sets
# `func=<callable(args) -> int>` on them. Order here is the order of `--help`.
COMMAND_MODULES: list[str] = [
    "mirror.cli.serve",
    "mirror.cli.prefetch",
    "mirror.cli.policy_cmd",
    "mirror.cli.explain",
    "mirror.cli.audit_cmd",
    "mirror.cli.corpus",
    "mirror.cli.advisories_cmd",
    "mirror.cli.token_cmd",
    "mirror.cli.admin_cmd",
    "mirror.cli.capabilities",
    "mirror.cli.tuf_cmd",
    "mirror.cli.tuf_client",
    "mirror.cli.bundle",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crate-mirror",
        description="A verifying, caching, policy-enforcing mirror of crates.io for cargo.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
