"""`crate-mirror tuf ...`: the TUF repository that signs what this mirror serves."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mirror.cli.args import path_arg, positive_int
from mirror.errors import ConfigError, MirrorError, TrustError
from mirror.trust.settings import TufRepositorySettings, TufSettings

ROLES = ("root", "targets", "snapshot", "timestamp")


def register(sub: Any) -> None:
    tuf = sub.add_parser(
        "tuf",
        help="manage the TUF repository that signs what this mirror serves",
        description="The mirror signs the index files it serves (RFC 3724 layout, hashed "
        "bins). Root and targets keys are offline and may belong to different holders "
        "(files or PKCS#11 tokens); timestamp, snapshot and bins keys are online. "
        "Changes to root and targets are staged, signed by each holder where they are, "
        "and published once the thresholds are met.",
    )
    tsub = tuf.add_subparsers(dest="tuf_command", metavar="ACTION", required=True)

    key = tsub.add_parser("key", help="create a key where its holder is")
    ksub = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    p = ksub.add_parser(
        "new",
        help="create a key (a 0600 file, or inside a PKCS#11 token) and print its public part",
        description="Run by each key holder on their own machine. Prints the public key "
        "(JSON, to enroll with `tuf init --root-key` or `tuf rotate --add-key`) and the "
        "signer URI to sign with. A token key is generated inside the token and cannot "
        "be read out. The token PIN comes from CRATE_MIRROR_PKCS11_PIN or a prompt.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=path_arg, help="private key file to create (ed25519, 0600)")
    where.add_argument("--pkcs11", action="store_true", help="create the key in a PKCS#11 token")
    p.add_argument("--token-label", help="--pkcs11: label of the token")
    p.add_argument("--key-id", type=int, default=2, help="--pkcs11: key id on the token (2)")
    _pkcs11_module(p)
    p.add_argument(
        "--pub-out",
        type=path_arg,
        help="public key file to write (default for --out: FILE with .pub)",
    )
    p.set_defaults(func=run_key_new)

    p = tsub.add_parser(
        "init",
        help="create online keys and version-1 metadata, enrolling offline keys",
        description="With --root-key (and --targets-key): enroll keys their holders "
        "created (`tuf key new`) and stage version 1 for them to sign; `tuf publish` "
        "then creates the repository. Without: create every key here, root and targets "
        "keys into --offline-dir, and publish at once. Online keys go to DIR/keys (0600).",
    )
    _common(p)
    p.add_argument(
        "--root-key",
        type=path_arg,
        action="append",
        default=[],
        metavar="PUB",
        help="public key file of a root key holder (repeatable)",
    )
    p.add_argument(
        "--targets-key",
        type=path_arg,
        action="append",
        default=[],
        metavar="PUB",
        help="public key file of the targets key holder (default: create one in --offline-dir)",
    )
    p.add_argument(
        "--offline-dir",
        type=path_arg,
        help="where created root/targets keys are written; move them off the server",
    )
    p.add_argument(
        "--root-keys", type=positive_int, help="number of root keys to create (default 2)"
    )
    p.add_argument(
        "--root-threshold",
        type=positive_int,
        default=2,
        help="signatures needed to change root (default 2)",
    )
    p.add_argument("--bins", type=positive_int, help="hashed bins, a power of two (default 256)")
    p.set_defaults(func=run_init)

    p = tsub.add_parser(
        "sign",
        help="add one holder's signature to a staged root or targets",
        description="Each holder signs where they are: with --file, a copy of the staged "
        "file (DIR/staged/ROLE.json) carried to them, no repository needed; else the "
        "repository's staged file. Prints what is signed. `tuf publish` (with --signed "
        "for returned copies) publishes once the thresholds are met. `sign targets` with "
        "nothing staged stages a re-signed targets first.",
    )
    _common(p)
    p.add_argument("role", choices=("root", "targets"))
    p.add_argument("--file", type=path_arg, help="sign this copy of a staged file (offline)")
    p.add_argument(
        "--key",
        action="append",
        required=True,
        metavar="URI_OR_PEM",
        help="signer URI (file2:/path.pem, hsm:2?label=TOKEN, gcpkms:...) or PEM path",
    )
    p.add_argument(
        "--trusted-root",
        type=path_arg,
        help="with --file: the root clients trust now (/tuf/root.json); shows what changes, "
        "refuses anything but the next version, lets an outgoing root key sign",
    )
    _pkcs11_module(p)
    p.set_defaults(func=run_sign)

    p = tsub.add_parser(
        "rotate",
        help="replace a role's key (stages a new root, or a new targets for bins)",
        description="Stage root vN+1 trusting a new key for ROLE: created here (--key-out; "
        "timestamp/snapshot default to DIR/keys/ROLE.pem.next, activated on publish) or "
        "enrolled by its holder's public key (--add-key). Online roles drop their old key. "
        "Then the root holders sign (`tuf sign root`) and `tuf publish`. `bins` is "
        "delegated by targets, not root: it stages targets for the targets key holder(s) "
        "only (or, with --targets-key, signs and publishes at once). timestamp/snapshot "
        "--standby: switch to the standby key root already trusts, at once and without the "
        "root holders; the root that retires the old key is staged for them.",
    )
    _common(p)
    p.add_argument("role", choices=(*ROLES, "bins"))
    p.add_argument("--add-key", type=path_arg, metavar="PUB", help="enroll this public key")
    p.add_argument("--key-out", type=path_arg, help="create the new key in this file")
    p.add_argument("--remove-keyid", action="append", default=[], help="revoke this key")
    p.add_argument("--threshold", type=positive_int, help="new signature threshold for ROLE")
    p.add_argument(
        "--standby",
        action="store_true",
        help="timestamp/snapshot: sign with the standby key from now on (no root holders)",
    )
    p.add_argument(
        "--standby-key",
        type=path_arg,
        metavar="PEM",
        help="with --standby: the standby key file, if kept away from DIR/keys",
    )
    p.add_argument(
        "--targets-key",
        action="append",
        default=[],
        metavar="URI_OR_PEM",
        help="bins only: sign the new delegation with these targets key(s) and publish now",
    )
    _pkcs11_module(p)
    p.set_defaults(func=run_rotate)

    p = tsub.add_parser(
        "status",
        help="versions, expiry, keys and staged changes",
        description="Show the TUF repository this mirror signs with: each role's version and "
        "expiry, its keys, and what is staged and waiting for signatures.",
    )
    _common(p)
    p.set_defaults(func=run_status)

    p = tsub.add_parser(
        "publish",
        help="merge returned signatures; publish staged changes that meet their thresholds",
        description="Merges the signatures of each --signed copy (refusing a copy whose "
        "content differs from the staged file, or a signature that does not verify or "
        "is not from a key of the role), then publishes the staged root and targets if "
        "every threshold is met (exit 1 saying what is missing otherwise), and re-signs "
        "snapshot and timestamp.",
    )
    _common(p)
    p.add_argument(
        "--signed",
        type=path_arg,
        action="append",
        default=[],
        metavar="FILE",
        help="a signed copy of a staged root or targets (repeatable)",
    )
    p.set_defaults(func=run_publish)


def _pkcs11_module(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pkcs11-module",
        metavar="SO",
        help="PKCS#11 library of the token (default: $PYKCS11LIB), "
        "e.g. /usr/lib/softhsm/libsofthsm2.so",
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=path_arg, help="settings YAML with a tuf.repository section")
    p.add_argument("--repo", type=path_arg, help="repository directory (overrides the config)")


def _settings(args: argparse.Namespace) -> TufRepositorySettings:
    from mirror.config import load_settings

    repo: TufRepositorySettings | None = None
    if args.config is not None:
        settings = load_settings(args.config)
        tuf = TufSettings.from_mapping(settings.tuf, str(args.config), offline=settings.offline)
        repo = tuf.repository
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


def _guard(name: str, func: Any, args: argparse.Namespace) -> int:
    try:
        return int(func(args))
    except ConfigError as e:
        print(f"crate-mirror {name}: invalid configuration:\n{e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # the reader went away (`| head`): `main` ends quietly
    except (MirrorError, OSError, ValueError) as e:
        print(f"crate-mirror {name}: {e}", file=sys.stderr)
        return 1


def run_key_new(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        from mirror.trust.keys import file_uri, generate_key_file, public_key_json, write_public_key

        if args.pkcs11:
            from mirror.trust.pkcs11 import create_token_key, set_module

            if not args.token_label:
                raise TrustError("--pkcs11 needs --token-label")
            set_module(args.pkcs11_module)
            uri, key = create_token_key(args.token_label, args.key_id)
            where = f"inside token {args.token_label!r} (id {args.key_id}, not extractable)"
            pub_out = args.pub_out
        else:
            key = generate_key_file(args.out).public_key
            uri, where = file_uri(args.out), f"{args.out} (mode 0600)"
            pub_out = args.pub_out or args.out.with_suffix(".pub")
        if pub_out is not None:
            write_public_key(pub_out, key)
        sys.stdout.write(public_key_json(key).decode() + "\n")
        print(f"private key: {where}", file=sys.stderr)
        print(f"sign with:   --key '{uri}'", file=sys.stderr)
        if pub_out is not None:
            print(f"public key:  {pub_out} (give it to the repository operator)", file=sys.stderr)
        return 0

    return _guard("tuf key new", go, args)


def run_init(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        from mirror.trust.keys import generate_key_file, read_public_key
        from mirror.trust.repository import init_repository
        from mirror.trust.staging import check_initial, sign_staged, stage_initial

        s = _settings(args)
        if not (args.root_key or args.targets_key):
            if args.offline_dir is None:
                raise TrustError("give --root-key PUB ... (keys held apart) or --offline-dir")
            count = args.root_keys or 2
            written = init_repository(s, args.offline_dir, count, args.root_threshold)
            print(f"created TUF repository in {s.dir} ({s.bins} bins)")
            print(f"online keys (keep on the server, mode 0600): {s.keys_dir}")
            print("offline keys - move these off the server now:")
            for path in written:
                print(f"  {path}")
            print(f"pin this root on downstream mirrors: {s.metadata_dir / '1.root.json'}")
            return 0
        if not args.root_key or args.root_keys is not None:
            raise TrustError("with enrolled keys, give every root key as --root-key PUB")
        root_keys = [read_public_key(path) for path in args.root_key]
        targets_keys = [read_public_key(path) for path in args.targets_key]
        check_initial(s, root_keys, args.root_threshold)
        created = None
        if not targets_keys:
            if args.offline_dir is None:
                raise TrustError("give --targets-key PUB, or --offline-dir to create it here")
            created = args.offline_dir / "targets.pem"
            targets_keys = [generate_key_file(created).public_key]
        stage_initial(s, root_keys, args.root_threshold, targets_keys)
        if created is not None:
            sign_staged(s, "targets", f"file2:{created.resolve()}")
        staged = s.dir / "staged"
        print(f"staged version 1 in {staged} ({s.bins} bins); online keys in {s.keys_dir}")
        if created is not None:
            print(f"targets key created and signed with: {created} - move it off the server")
        print(
            f"next: each root key holder ({args.root_threshold} of {len(root_keys)}) signs a copy "
            f"of {staged / 'root.json'}"
            + ("" if created else f" and the targets holder {staged / 'targets.json'}")
            + ": `crate-mirror tuf sign ROLE --file COPY --key ...`; then "
            "`crate-mirror tuf publish --repo DIR --signed COPY ...`"
        )
        return 0

    return _guard("tuf init", go, args)


def run_sign(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        from mirror.trust.keys import signer_uri
        from mirror.trust.pkcs11 import set_module

        set_module(args.pkcs11_module)
        uris = [signer_uri(k) for k in args.key]
        if args.file is not None:
            return _sign_file(args, uris)
        from mirror.trust.staging import sign_staged, stage_targets_change, staged_path

        s = _settings(args)
        staged = None
        if args.role == "targets" and not staged_path(s, "targets").is_file():
            staged = stage_targets_change(s).signed.version
        try:
            for uri in uris:
                status = sign_staged(s, args.role, uri)
        except BaseException:
            # A key that cannot sign leaves nothing staged by this command behind.
            if staged is not None:
                staged_path(s, "targets").unlink(missing_ok=True)
            raise
        if staged is not None:
            print(f"staged targets v{staged} (re-signed, new expiry)")
        print(_status_line(status))
        return 0

    return _guard("tuf sign", go, args)


def _sign_file(args: argparse.Namespace, uris: list[str]) -> int:
    from mirror.trust.staging import read_metadata, sign_file

    trusted = read_metadata(args.trusted_root, "root").signed if args.trusted_root else None
    for uri in uris:
        signed = sign_file(args.file, uri, trusted)
        if signed.role != args.role:
            raise TrustError(f"{args.file} holds {signed.role}, not {args.role}")
    print("signed:")
    for line in signed.summary:
        print(f"  {line}")
    print(f"with key {signed.keyid[:16]}...; return {args.file} to the repository operator")
    print(f"(`crate-mirror tuf publish --repo DIR --signed {args.file.name}`)")
    return 0


def _status_line(status: Any) -> str:
    state = (
        "every threshold met: run `crate-mirror tuf publish`"
        if status.verified
        else f"needs {status.needs}; still unsigned by {len(status.missing)} key(s)"
    )
    return f"staged {status.role} v{status.version}: {len(status.signed)} signature(s), {state}"


def run_rotate(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        from mirror.trust.keys import read_public_key, signer_uri
        from mirror.trust.pkcs11 import set_module
        from mirror.trust.staging import (
            publish_staged,
            rotate_bins_key,
            rotate_key,
            sign_staged,
            switch_to_standby,
        )

        s = _settings(args)
        set_module(args.pkcs11_module)
        if args.role == "bins":
            keyid = rotate_bins_key(s)
            print(f"new bins key {keyid[:16]}... in {s.keys_dir / 'bins.pem.next'}")
            if not args.targets_key:
                print(
                    "staged targets re-delegating the bins; the targets key holder signs it "
                    "(`crate-mirror tuf sign targets ...`), then `crate-mirror tuf publish`"
                )
                return 0
            for key in args.targets_key:
                sign_staged(s, "targets", signer_uri(key))
            print(f"published {', '.join(publish_staged(s))}; every bin re-signed")
            return 0
        if args.standby:
            retired, active, version = switch_to_standby(s, args.role, args.standby_key)
            print(
                f"{args.role} now signs with the standby key {active[:16]}... (root already "
                "trusts it: clients accept it now, no root holder needed)"
            )
            print(
                f"the retired key {retired[:16]}... stays trusted until the root holders "
                f"publish the staged root v{version}, which revokes it and enrolls a new "
                "standby: `crate-mirror tuf sign root ...`, then `crate-mirror tuf publish`"
            )
            return 0
        if args.add_key is not None and args.key_out is not None:
            raise TrustError("give either --add-key or --key-out")
        new_key = read_public_key(args.add_key) if args.add_key is not None else None
        path, keyid = rotate_key(
            s, args.role, args.key_out, tuple(args.remove_keyid), args.threshold, new_key
        )
        where = f"written to {path} (mode 0600)" if path is not None else "enrolled"
        print(f"new {args.role} key {keyid[:16]}... {where}")
        print(
            "staged a new root; each root key holder signs it (`crate-mirror tuf sign root "
            "...`), then `crate-mirror tuf publish`"
        )
        if args.role == "targets":
            print("also staged targets for the new targets key to sign (`tuf sign targets`)")
        return 0

    return _guard("tuf rotate", go, args)


def run_status(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        from mirror.trust.repository import MirrorRepository
        from mirror.trust.settings import STANDBY_ROLES
        from mirror.trust.staging import STAGED_ROLES, staged_status

        s = _settings(args)
        if (s.metadata_dir / "root.json").is_file():
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
            for role in STANDBY_ROLES:
                ready = "ready" if s.standby_path(role).is_file() else "none here"
                print(f"standby {role} key: {ready} ({s.standby_path(role)})")
        else:
            print(f"no published repository in {s.dir} yet")
        for role in STAGED_ROLES:
            staged = staged_status(s, role)
            if staged is not None:
                print(_status_line(staged))
        return 0

    return _guard("tuf status", go, args)


def run_publish(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        from mirror.trust.repository import MirrorRepository
        from mirror.trust.staging import STAGED_ROLES, add_signatures, publish_staged, staged_path

        s = _settings(args)
        for copy in args.signed:
            print(f"{copy}: " + _status_line(add_signatures(s, copy)))
        if any(staged_path(s, role).is_file() for role in STAGED_ROLES):
            print(f"published {', '.join(publish_staged(s))}")
        else:
            MirrorRepository(s).publish({}, force=True)
        print(f"re-signed snapshot and timestamp in {s.metadata_dir}")
        return 0

    return _guard("tuf publish", go, args)
