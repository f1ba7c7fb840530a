"""`crate-mirror tuf-client`: the tuf-conformance client protocol (its CLIENT-CLI.md).

It runs the proxy's own verification steps (mirror.trust.upstream), so the conformance suite
tests the code that guards every index file the mirror serves:

    tuf-client --metadata-dir D init TRUSTED_ROOT
    tuf-client --metadata-dir D --metadata-url U refresh
    tuf-client --metadata-dir D --metadata-url U --target-name P [--target-name P2 ...]
               --target-base-url T --target-dir O download

Exit 0 on success, 1 on any failure (2 for a command line argparse cannot read). Trusted
metadata is stored under plain role names (`root.json`, `timestamp.json`, `snapshot.json`,
`targets.json`, `<delegated role>.json`); downloaded targets under their URL-quoted path.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirror.cli.args import path_arg
from mirror.errors import MirrorError, TrustError

if TYPE_CHECKING:
    from mirror.trust._tuf import Updater


def register(sub: Any) -> None:
    client = sub.add_parser(
        "tuf-client",
        help="TUF client speaking the tuf-conformance CLI protocol",
        description="A TUF client over the proxy's verification code (python-tuf ngclient). "
        "Exit 0 on success, 1 on any failure.",
    )
    client.add_argument(
        "--metadata-dir",
        type=path_arg,
        required=True,
        help="trusted metadata, stored as root.json, timestamp.json, snapshot.json, ...",
    )
    client.add_argument("--metadata-url", help="base URL of the repository's metadata")
    client.add_argument(
        "--target-name",
        action="append",
        default=[],
        metavar="TARGET_PATH",
        help="target to download; repeatable: processed in order by one updater, stopping "
        "at the first failure",
    )
    client.add_argument("--target-base-url", help="base URL of the repository's targets")
    client.add_argument("--target-dir", type=path_arg, help="where verified targets are written")
    client.add_argument(
        "--max-metadata-bytes",
        type=int,
        default=5_000_000,
        help="cap per metadata file, enforced while downloading (bytes, default 5000000)",
    )
    client.add_argument("command", choices=("init", "refresh", "download"))
    client.add_argument("trusted_root", nargs="?", type=path_arg, help="root.json (init only)")
    client.set_defaults(func=run_client)


def run_client(args: argparse.Namespace) -> int:
    try:
        if args.command == "init":
            init(args.metadata_dir, args.trusted_root)
        elif args.command == "refresh":
            refresh(args)
        else:
            download(args)
    except (MirrorError, OSError) as e:
        print(f"crate-mirror tuf-client: {args.command} failed: {e}", file=sys.stderr)
        return 1
    return 0


def init(metadata_dir: Path, trusted_root: Path | None) -> None:
    """Trust `trusted_root` as is (the protocol asks for no checks and no requests)."""
    if trusted_root is None:
        raise TrustError("init needs TRUSTED_ROOT")
    metadata_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(trusted_root, metadata_dir / "root.json")
    _say(f"trusting {trusted_root} as root.json in {metadata_dir}")


def refresh(args: argparse.Namespace) -> None:
    _updater(args)


def download(args: argparse.Namespace) -> None:
    """Each --target-name in order with one refreshed updater; the first failure stops."""
    from mirror.trust.upstream import check_target, find_target, trust_errors

    if not (args.target_name and args.target_base_url and args.target_dir):
        raise TrustError("download needs --target-name, --target-base-url and --target-dir")
    updater = _updater(args)
    args.target_dir.mkdir(parents=True, exist_ok=True)
    for name in args.target_name:
        info = find_target(updater, name)
        if info is None:
            raise TrustError(f"{name} is not a signed target")
        with trust_errors(f"downloading {name}"):
            cached = updater.find_cached_target(info)
            path = cached or updater.download_target(info)
        # ngclient verified the bytes as it wrote them; check the file we leave behind.
        check_target(info, Path(path).read_bytes())
        _say(f"{name}: {'already downloaded' if cached else 'downloaded'}, verified: {path}")


def _updater(args: argparse.Namespace) -> Updater:
    from mirror.trust.upstream import open_updater, refresh_updater, updater_config

    if not args.metadata_url:
        raise TrustError(f"{args.command} needs --metadata-url")
    # The stored root.json is the trust anchor (python-tuf verifies it before use).
    bootstrap = (args.metadata_dir / "root.json").read_bytes()
    updater = open_updater(
        args.metadata_dir,
        args.metadata_url,
        bootstrap,
        updater_config(args.max_metadata_bytes),
        target_dir=args.target_dir,
        target_base_url=args.target_base_url,
    )
    refresh_updater(updater)
    _say(f"refreshed from {args.metadata_url}")
    return updater


def _say(message: str) -> None:
    # The protocol asks for output useful for debugging; stdout stays free for the suite.
    print(f"crate-mirror tuf-client: {message}", file=sys.stderr)
