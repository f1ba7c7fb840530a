"""`crate-mirror tuf ...`: the TUF repository that signs what this mirror serves."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mirror.errors import ConfigError, MirrorError, TrustError
from mirror.trust.settings import TufRepositorySettings, TufSettings

ROLES = ("root", "targets", "snapshot", "timestamp")


def register(sub: Any) -> None:
    tuf = sub.add_parser(
        "tuf",
        help="manage the TUF repository that signs what this mirror serves",
        description="The mirror signs the index files it serves (RFC 3724 layout, hashed "
        "bins). Root and targets keys are offline; timestamp, snapshot and bins keys online.",
    )
    tsub = tuf.add_subparsers(dest="tuf_command", metavar="ACTION", required=True)

    p = tsub.add_parser(
        "init",
        help="create keys and version-1 metadata",
        description="Create root keys (offline, N of M), the targets key "
        "(offline) and online timestamp/snapshot/bins keys, all 0600.",
    )
    _common(p)
    p.add_argument(
        "--offline-dir",
        type=Path,
        required=True,
        help="where root and targets keys are written; move them off the server",
    )
    p.add_argument("--root-keys", type=int, default=2, help="number of root keys (default 2)")
    p.add_argument(
        "--root-threshold", type=int, default=2, help="signatures needed to change root (default 2)"
    )
    p.add_argument("--bins", type=int, help="hashed bins, a power of two (default 256)")
    p.set_defaults(func=run_init)

    p = tsub.add_parser(
        "sign",
        help="add one party's signature (root) or re-sign targets",
        description="root: sign the staged root (each party runs this with "
        "their key; `tuf publish` then promotes it). targets: re-sign "
        "targets with offline key(s), e.g. after rotating the targets key.",
    )
    _common(p)
    p.add_argument("role", choices=("root", "targets"))
    p.add_argument(
        "--key",
        action="append",
        required=True,
        metavar="URI_OR_PEM",
        help="signer URI (file2:/path.pem, gcpkms:..., hsm:...) or PEM path",
    )
    p.set_defaults(func=run_sign)

    p = tsub.add_parser(
        "rotate",
        help="replace a role's key (stages a new root, or re-delegates bins)",
        description="Generate a new key for ROLE and stage root vN+1 trusting "
        "it. Online roles drop their old key. Then: `tuf sign root` by enough "
        "old and new root key holders, and `tuf publish`. For `bins` (delegated by "
        "targets, not root) give --targets-key: the change is published at once.",
    )
    _common(p)
    p.add_argument("role", choices=(*ROLES, "bins"))
    p.add_argument(
        "--targets-key",
        action="append",
        default=[],
        metavar="URI_OR_PEM",
        help="bins only: offline targets key(s) to re-sign the delegation",
    )
    p.add_argument(
        "--key-out",
        type=Path,
        help="new key file (required for root/targets; default for online roles: "
        "<dir>/keys/ROLE.pem.next, activated on publish)",
    )
    p.add_argument("--remove-keyid", action="append", default=[], help="revoke this key")
    p.add_argument("--threshold", type=int, help="new signature threshold for ROLE")
    p.set_defaults(func=run_rotate)

    p = tsub.add_parser("status", help="versions, expiry, keys and any staged root")
    _common(p)
    p.set_defaults(func=run_status)

    p = tsub.add_parser("publish", help="promote a fully signed staged root; re-sign online roles")
    _common(p)
    p.set_defaults(func=run_publish)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="settings YAML with a tuf.repository section")
    p.add_argument("--repo", type=Path, help="repository directory (overrides the config)")


def _settings(args: argparse.Namespace) -> TufRepositorySettings:
    from mirror.config import load_settings

    repo: TufRepositorySettings | None = None
    if args.config is not None:
        settings = load_settings(args.config)
        repo = TufSettings.from_mapping(settings.tuf, str(args.config)).repository
    if args.repo is not None:
        repo = (
            TufRepositorySettings(dir=args.repo)
            if repo is None
            else TufRepositorySettings(args.repo, repo.bins, repo.expiry, repo.signers)
        )
    if repo is None:
        raise TrustError("give --repo DIR or a --config with a tuf.repository section")
    if getattr(args, "bins", None):
        if args.bins < 2 or args.bins & (args.bins - 1):
            raise TrustError("--bins must be a power of two >= 2")
        repo = TufRepositorySettings(repo.dir, args.bins, repo.expiry, repo.signers)
    return repo


def _uri(value: str) -> str:
    """A signer URI as given, or `file2:` + absolute path for a plain PEM path."""
    if ":" in value and not Path(value).exists():
        return value
    return f"file2:{Path(value).resolve()}"


def _guard(name: str, func: Any, args: argparse.Namespace) -> int:
    try:
        return int(func(args))
    except ConfigError as e:
        print(f"crate-mirror {name}: invalid configuration:\n{e}", file=sys.stderr)
        return 2
    except (MirrorError, OSError, ValueError) as e:
        print(f"crate-mirror {name}: {e}", file=sys.stderr)
        return 1


def run_init(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        from mirror.trust.repository import init_repository

        s = _settings(args)
        written = init_repository(s, args.offline_dir, args.root_keys, args.root_threshold)
        print(f"created TUF repository in {s.dir} ({s.bins} bins)")
        print(f"online keys (keep on the server, mode 0600): {s.keys_dir}")
        print("offline keys - move these off the server now:")
        for path in written:
            print(f"  {path}")
        print(f"pin this root on downstream mirrors: {s.metadata_dir / '1.root.json'}")
        return 0

    return _guard("tuf init", go, args)


def run_sign(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        from mirror.trust.rootstage import resign_targets, sign_staged_root

        s = _settings(args)
        uris = [_uri(k) for k in args.key]
        if args.role == "targets":
            print(f"published targets version {resign_targets(s, uris)}")
            return 0
        for uri in uris:
            status = sign_staged_root(s, uri)
        state = (
            "fully signed: run `crate-mirror tuf publish`"
            if status.verified
            else (f"still unsigned by {len(status.missing)} key(s)")
        )
        print(f"staged root v{status.version}: {len(status.signed)} signature(s), {state}")
        return 0

    return _guard("tuf sign", go, args)


def run_rotate(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        from mirror.trust.rootstage import rotate_bins_key, rotate_key

        s = _settings(args)
        if args.role == "bins":
            if not args.targets_key:
                raise TrustError("rotating bins needs --targets-key (the offline targets key)")
            keyid = rotate_bins_key(s, [_uri(k) for k in args.targets_key])
            print(f"new bins key {keyid[:16]}... in {s.keys_dir / 'bins.pem'}; all bins re-signed")
            return 0
        path, keyid = rotate_key(
            s, args.role, args.key_out, tuple(args.remove_keyid), args.threshold
        )
        print(f"new {args.role} key {keyid[:16]}... written to {path} (mode 0600)")
        print(
            "staged a new root; now each root key holder runs `crate-mirror tuf sign root "
            "--key ...`, then `crate-mirror tuf publish`"
        )
        if args.role == "targets":
            print("after publishing, re-sign targets: `crate-mirror tuf sign targets --key NEW`")
        return 0

    return _guard("tuf rotate", go, args)


def run_status(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        from mirror.trust.repository import MirrorRepository
        from mirror.trust.rootstage import staged_status

        s = _settings(args)
        st = MirrorRepository(s).status()
        for role in (*ROLES, "bins"):
            version = f"v{st.versions[role]}" if role in st.versions else f"x{st.bins}"
            keys = ", ".join(k[:12] for k in st.keyids.get(role, ())) or "(delegated)"
            threshold = st.thresholds.get(role, 1)
            print(
                f"{role:<10} {version:<7} expires {st.expires[role].isoformat()}  "
                f"threshold {threshold} keys {keys}"
            )
        print(f"targets: {st.targets_count} index files")
        staged = staged_status(s)
        if staged is not None:
            print(
                f"staged root v{staged.version}: verified={staged.verified} "
                f"signed={len(staged.signed)} missing={len(staged.missing)}"
            )
        return 0

    return _guard("tuf status", go, args)


def run_publish(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        from mirror.trust.repository import MirrorRepository
        from mirror.trust.rootstage import promote_staged_root, staged_status

        s = _settings(args)
        if staged_status(s) is not None:
            print(f"published root version {promote_staged_root(s)}")
        else:
            MirrorRepository(s).publish({}, force=True)
        print(f"re-signed snapshot and timestamp in {s.metadata_dir}")
        return 0

    return _guard("tuf publish", go, args)
