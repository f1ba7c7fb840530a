"""`crate-mirror tuf-client` (conformance protocol) and the `tuf` / `import` commands."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from mirror.cli import main
from mirror.index import index_path
from mirror.store import FilesystemStore
from mirror.trust._tuf import (
    CryptoSigner,
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from mirror.trust.repository import MirrorRepository
from tests.fixtures.tuf_repo import TOP_ROLES, SignedUpstream, in_days, static_app
from tests.unit.trust.test_bundle import make_crate
from tests.unit.trust.test_upstream import index_body

Served = tuple[SignedUpstream, str]
AiohttpServer = Callable[[web.Application], Awaitable[object]]


@pytest.fixture
async def served(tmp_path: Path, aiohttp_server: AiohttpServer) -> Served:
    upstream = SignedUpstream(
        tmp_path / "up", {index_path(n): index_body(n) for n in ("serde", "rand")}
    )
    server = await aiohttp_server(static_app(upstream.dir))
    return upstream, str(server.make_url("/"))  # type: ignore[attr-defined]


async def client(tmp_path: Path, base: str, command: str, *extra: str) -> int:
    """Run the CLI off the event loop (it does blocking HTTP to the test server)."""
    argv = ["tuf-client", "--metadata-dir", str(tmp_path / "md")]
    if command != "init":
        argv += ["--metadata-url", base + "metadata/"]
    if command == "download":
        argv += ["--target-base-url", base + "targets/", "--target-dir", str(tmp_path / "out")]
    return await asyncio.to_thread(main, [*argv, *extra, command])


async def init(tmp_path: Path, upstream: SignedUpstream) -> None:
    root = tmp_path / "root.json"
    root.write_bytes(upstream.root_versions[1])
    assert (
        await asyncio.to_thread(
            main, ["tuf-client", "--metadata-dir", str(tmp_path / "md"), "init", str(root)]
        )
        == 0
    )


async def test_refresh_and_download(served: Served, tmp_path: Path) -> None:
    """The conformance flow stores top-level metadata under plain names and the artifact."""
    upstream, base = served
    await init(tmp_path, upstream)
    assert await client(tmp_path, base, "refresh") == 0
    for name in ("root.json", "timestamp.json", "snapshot.json", "targets.json"):
        assert (tmp_path / "md" / name).is_file()
    target = index_path("serde")
    assert await client(tmp_path, base, "download", "--target-name", target) == 0
    files = list((tmp_path / "out").iterdir())
    assert [f.read_bytes() for f in files] == [index_body("serde")]


async def test_tampered_target_fails_download(served: Served, tmp_path: Path) -> None:
    """A tampered artifact exits 1 and nothing lands in the target directory."""
    upstream, base = served
    await init(tmp_path, upstream)
    body = index_body("rand")
    digest = hashlib.sha256(body).hexdigest()
    (upstream.dir / "targets" / "ra" / "nd" / f"{digest}.rand").write_bytes(b"evil" * 30)
    code = await client(tmp_path, base, "download", "--target-name", index_path("rand"))
    assert code == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


async def test_refresh_with_wrong_timestamp_key_fails(served: Served, tmp_path: Path) -> None:
    """Wrong key: exit code 1 and the bad timestamp is not stored as trusted."""
    upstream, base = served
    await init(tmp_path, upstream)
    assert await client(tmp_path, base, "refresh") == 0
    trusted = (tmp_path / "md" / "timestamp.json").read_bytes()
    upstream.resign_timestamp_with_wrong_key()
    assert await client(tmp_path, base, "refresh") == 1
    assert (tmp_path / "md" / "timestamp.json").read_bytes() == trusted


async def test_unknown_target_fails(served: Served, tmp_path: Path) -> None:
    """An artifact the repository never signed cannot be downloaded."""
    upstream, base = served
    await init(tmp_path, upstream)
    assert await client(tmp_path, base, "download", "--target-name", "no/su/nosuch") == 1


async def test_several_target_names_are_downloaded_in_order(served: Served, tmp_path: Path) -> None:
    """Every --target-name is processed, in argument order, by one invocation."""
    upstream, base = served
    await init(tmp_path, upstream)
    names = ["--target-name", index_path("serde"), "--target-name", index_path("rand")]
    assert await client(tmp_path, base, "download", *names) == 0
    out = tmp_path / "out"
    files = sorted(out.iterdir(), key=lambda f: f.stat().st_mtime_ns)
    assert [f.read_bytes() for f in files] == [index_body("serde"), index_body("rand")]
    assert [f.name for f in files] == [
        quote(index_path("serde"), ""),
        quote(index_path("rand"), ""),
    ]


async def test_first_failing_target_stops_the_rest(served: Served, tmp_path: Path) -> None:
    """A failing target exits 1 and the targets after it are not downloaded."""
    upstream, base = served
    await init(tmp_path, upstream)
    names = [index_path("serde"), "no/su/nosuch", index_path("rand")]
    code = await client(
        tmp_path, base, "download", *(a for n in names for a in ("--target-name", n))
    )
    assert code == 1
    assert [f.read_bytes() for f in (tmp_path / "out").iterdir()] == [index_body("serde")]


async def test_metadata_dir_holds_plain_role_names_only(served: Served, tmp_path: Path) -> None:
    """The protocol's layout: `<role>.json` for every trusted role, never `N.<role>.json`."""
    upstream, base = served
    await init(tmp_path, upstream)
    target = index_path("serde")
    assert await client(tmp_path, base, "download", "--target-name", target) == 0
    bin_role = upstream.succinct.get_role_for_target(target)
    names = {f.name for f in (tmp_path / "md").iterdir() if f.suffix == ".json"}
    assert names == {
        "root.json",
        "timestamp.json",
        "snapshot.json",
        "targets.json",
        f"{bin_role}.json",
    }
    stored: Metadata[Targets] = Metadata.from_file(str(tmp_path / "md" / f"{bin_role}.json"))
    assert target in stored.signed.targets


async def test_exit_codes(served: Served, tmp_path: Path) -> None:
    """0 for success, 1 for any failure (missing root, missing URL, missing args), 2 for usage."""
    upstream, base = served
    md = ["tuf-client", "--metadata-dir", str(tmp_path / "md")]
    assert await asyncio.to_thread(main, [*md, "init", str(tmp_path / "absent.json")]) == 1
    assert await asyncio.to_thread(main, [*md, "refresh"]) == 1  # no root yet, no URL
    await init(tmp_path, upstream)
    assert await asyncio.to_thread(main, [*md, "refresh"]) == 1  # no --metadata-url
    url = ["--metadata-url", base + "metadata/"]
    assert await asyncio.to_thread(main, [*md, *url, "download"]) == 1  # no target
    assert await asyncio.to_thread(main, [*md, *url, "refresh"]) == 0
    with pytest.raises(SystemExit) as usage:
        main([*md, "upgrade"])
    assert usage.value.code == 2


async def test_cached_role_is_verified_against_each_delegator(
    tmp_path: Path, aiohttp_server: AiohttpServer
) -> None:
    """A role cached through one delegator gains no authority through another (diamond).

    `release` is delegated by parent-a and parent-b with different keys and signed by A's
    key only: the first target (through A) verifies, the second (through B) must not, in
    the same invocation. Before every --target-name was processed, only the last one ran.
    """
    repo = diamond_repository(tmp_path / "diamond")
    server = await aiohttp_server(static_app(repo))
    base = str(server.make_url("/"))  # type: ignore[attr-defined]
    root = tmp_path / "root.json"
    root.write_bytes((repo / "metadata" / "1.root.json").read_bytes())
    md = ["tuf-client", "--metadata-dir", str(tmp_path / "md")]
    assert await asyncio.to_thread(main, [*md, "init", str(root)]) == 0
    names = ["--target-name", "team-a/tool", "--target-name", "team-b/tool"]
    code = await client(tmp_path, base, "download", *names)
    assert code == 1
    assert [f.read_bytes() for f in (tmp_path / "out").iterdir()] == [b"trusted A"]


def diamond_repository(directory: Path) -> Path:
    """targets -> parent-a, parent-b -> release (one role, two delegators, A's key signs)."""
    signers = {name: CryptoSigner.generate_ed25519() for name in TOP_ROLES}
    keys = {name: CryptoSigner.generate_ed25519() for name in ("a", "b", "release-a", "release-b")}
    root = Root(expires=in_days(1), consistent_snapshot=True)
    for role, signer in signers.items():
        root.add_key(signer.public_key, role)
    targets = Targets(expires=in_days(1))
    parents = {team: Targets(expires=in_days(1)) for team in ("a", "b")}
    targets.delegations = Delegations(
        {keys[t].public_key.keyid: keys[t].public_key for t in ("a", "b")},
        roles={
            f"parent-{t}": DelegatedRole(
                f"parent-{t}", [keys[t].public_key.keyid], 1, False, [f"team-{t}/*"]
            )
            for t in ("a", "b")
        },
    )
    for team, parent in parents.items():
        release_key = keys[f"release-{team}"].public_key
        parent.delegations = Delegations(
            {release_key.keyid: release_key},
            roles={
                "release": DelegatedRole(
                    "release", [release_key.keyid], 1, False, [f"team-{team}/*"]
                )
            },
        )
    release = Targets(expires=in_days(1))
    artifacts = {"team-a/tool": b"trusted A", "team-b/tool": b"malicious B"}
    for path, body in artifacts.items():
        release.targets[path] = TargetFile.from_data(path, body)
        digest = hashlib.sha256(body).hexdigest()
        head, _, name = path.rpartition("/")
        (directory / "targets" / head).mkdir(parents=True, exist_ok=True)
        (directory / "targets" / head / f"{digest}.{name}").write_bytes(body)
    files: dict[str, tuple[Metadata[Any], list[CryptoSigner]]] = {
        "1.root.json": (Metadata(root), [signers["root"]]),
        "1.targets.json": (Metadata(targets), [signers["targets"]]),
        "1.parent-a.json": (Metadata(parents["a"]), [keys["a"]]),
        "1.parent-b.json": (Metadata(parents["b"]), [keys["b"]]),
        "1.release.json": (Metadata(release), [keys["release-a"]]),  # valid through A only
    }
    snapshot = Snapshot(expires=in_days(1))
    for filename in files:
        if filename != "1.root.json":
            snapshot.meta[filename.removeprefix("1.")] = MetaFile(1)
    files["1.snapshot.json"] = (Metadata(snapshot), [signers["snapshot"]])
    files["timestamp.json"] = (Metadata(Timestamp(expires=in_days(1))), [signers["timestamp"]])
    (directory / "metadata").mkdir(parents=True)
    for filename, (md, sign_with) in files.items():
        for signer in sign_with:
            md.sign(signer, append=True)
        (directory / "metadata" / filename).write_bytes(md.to_bytes())
    return directory


def init_repo(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """`tuf init` of a small repository: (its directory, the offline keys, `--repo` flags)."""
    repo, offline = tmp_path / "repo", tmp_path / "offline"
    base = ["--repo", str(repo)]
    assert main(["tuf", "init", *base, "--offline-dir", str(offline), "--bins", "4"]) == 0
    return repo, offline, base


def test_tuf_commands_two_party_root_rotation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """init, rotate, sign by two parties, publish, status: the documented workflow."""
    _, offline, base = init_repo(tmp_path)
    assert main(["tuf", "rotate", "snapshot", *base]) == 0
    assert main(["tuf", "sign", "root", *base, "--key", str(offline / "root-1.pem")]) == 0
    assert main(["tuf", "publish", *base]) == 1  # one party is not enough
    assert "lacks signatures" in capsys.readouterr().err
    assert main(["tuf", "sign", "root", *base, "--key", str(offline / "root-2.pem")]) == 0
    assert main(["tuf", "publish", *base]) == 0
    assert main(["tuf", "status", *base]) == 0
    out = capsys.readouterr().out
    assert "root       v2" in out and "targets: 0 index files" in out


def test_import_command_reports_and_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`crate-mirror import` adds a good bundle and exits 1 on a foreign one."""
    from mirror.trust.bundle import export_bundle
    from mirror.trust.repository import init_repository
    from mirror.trust.settings import TufRepositorySettings

    settings = TufRepositorySettings(dir=tmp_path / "repo", bins=2)
    init_repository(settings, tmp_path / "off", root_keys=1, root_threshold=1)
    body, crate = make_crate("ryu", "1.0.0", b"bytes")
    crate_file = tmp_path / "ryu.crate"
    crate_file.write_bytes(crate)
    bundle = tmp_path / "b.tar"
    cksum = hashlib.sha256(crate).hexdigest()
    export_bundle(bundle, {"ryu": body}, {cksum: crate_file}, MirrorRepository(settings))
    cache = tmp_path / "cache"
    root = settings.metadata_dir / "1.root.json"
    args = ["import", str(bundle), "--cache-dir", str(cache), "--no-progress"]
    assert main([*args, "--trusted-root", str(root)]) == 0
    assert "1 new crates" in capsys.readouterr().out
    assert FilesystemStore(cache).has_crate(cksum)
    other = tmp_path / "other.json"
    other.write_bytes(b"{}")
    assert main([*args, "--trusted-root", str(other)]) == 1
    audit = "".join(f.read_text() for f in (cache / "audit").rglob("*") if f.is_file())
    assert '"action":"import"' in audit and '"action":"block"' in audit
    assert audit.count('"rule":"tuf.bundle"') == 2


def test_air_gapped_import_with_a_trusted_root_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`import --config offline.yaml` where tuf.upstream names only the pinned root."""
    from mirror.trust.bundle import export_bundle
    from mirror.trust.repository import init_repository
    from mirror.trust.settings import TufRepositorySettings

    settings = TufRepositorySettings(dir=tmp_path / "repo", bins=2)
    init_repository(settings, tmp_path / "off", root_keys=1, root_threshold=1)
    body, crate = make_crate("ryu", "1.0.0", b"bytes")
    crate_file = tmp_path / "ryu.crate"
    crate_file.write_bytes(crate)
    bundle = tmp_path / "b.tar"
    cksum = hashlib.sha256(crate).hexdigest()
    export_bundle(bundle, {"ryu": body}, {cksum: crate_file}, MirrorRepository(settings))
    pinned = tmp_path / "pinned-root.json"
    pinned.write_bytes((settings.metadata_dir / "1.root.json").read_bytes())
    config = tmp_path / "offline.yaml"
    config.write_text(
        f"cache_dir: {tmp_path / 'cache'}\noffline: true\n"
        f"tuf:\n  upstream:\n    trusted_root: {pinned}\n"
    )
    assert main(["import", str(bundle), "--config", str(config), "--no-progress"]) == 0
    assert "1 new crates" in capsys.readouterr().out
    assert FilesystemStore(tmp_path / "cache").has_crate(cksum)


def test_rejected_import_names_its_reason_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The audit reason and the message say "bundle rejected:" exactly once."""
    bundle = tmp_path / "not-a-bundle.tar"
    bundle.write_bytes(b"garbage")
    root = tmp_path / "root.json"
    root.write_bytes(b"{}")
    cache = tmp_path / "cache"
    args = ["import", str(bundle), "--cache-dir", str(cache), "--trusted-root", str(root)]
    assert main([*args, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("bundle rejected") == 1 and "not a readable tar file" in err
    events = [
        json.loads(line)
        for f in (cache / "audit").rglob("*")
        if f.is_file() and f.suffix != ".db"
        for line in f.read_text().splitlines()
        if line.startswith("{")
    ]
    reasons = [e["reason"] for e in events if e.get("rule") == "tuf.bundle"]
    assert len(reasons) == 1
    assert reasons[0].startswith("bundle rejected: not a readable tar file")
    assert reasons[0].count("bundle rejected") == 1


def test_export_then_import_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`export --lockfile` from a mirror's cache, `import` into a disconnected one."""
    from mirror.store import CachedIndex

    cache = FilesystemStore(tmp_path / "cache")
    locked = {}
    for name in ("itoa", "ryu"):
        body, crate = make_crate(name, "1.0.0", b"payload")
        cache.write_index(name, CachedIndex(body, None, None, 0.0))
        cksum = hashlib.sha256(crate).hexdigest()
        cache.put_crate_bytes(cksum, crate)
        locked[name] = cksum
    lock = tmp_path / "Cargo.lock"
    lock.write_text(
        "version = 4\n"
        + "".join(
            f'[[package]]\nname = "{n}"\nversion = "1.0.0"\n'
            'source = "registry+https://github.com/rust-lang/crates.io-index"\n'
            f'checksum = "{c}"\n'
            for n, c in locked.items()
        )
        + '[[package]]\nname = "app"\nversion = "0.1.0"\n'
    )
    config = tmp_path / "mirror.yaml"
    config.write_text(
        f"cache_dir: {tmp_path / 'cache'}\noffline: true\n"
        f"tuf:\n  repository:\n    dir: {tmp_path / 'repo'}\n    bins: 4\n"
    )
    repo_args = ["--config", str(config), "--offline-dir", str(tmp_path / "off")]
    assert main(["tuf", "init", *repo_args, "--root-keys", "1", "--root-threshold", "1"]) == 0
    bundle = tmp_path / "bundle.tar"
    export = ["export", "--config", str(config), "--lockfile", str(lock), "--no-progress"]
    for bad in (tmp_path, tmp_path / "no-such-dir" / "b.tar"):  # refused before any work
        with pytest.raises(SystemExit) as info:
            main([*export, "--out", str(bad)])
        assert info.value.code == 2 and "--out" in capsys.readouterr().err
    assert not any(p.name.endswith(".part") for p in tmp_path.iterdir())
    assert main([*export, "--out", str(bundle)]) == 0, capsys.readouterr().err
    assert "2 index files, 2 crates" in capsys.readouterr().out

    root = tmp_path / "repo" / "metadata" / "1.root.json"
    target = tmp_path / "airgapped"
    imp = ["import", str(bundle), "--cache-dir", str(target), "--trusted-root", str(root)]
    assert main([*imp, "--no-progress"]) == 0
    for name, cksum in locked.items():
        assert FilesystemStore(target).has_crate(cksum)
        assert FilesystemStore(target).read_index(name) is not None


def test_signing_targets_with_a_key_that_cannot_sign_stages_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tuf sign targets --key gcpkms:bogus` staged targets v2, then refused the key."""
    repo, _, base = init_repo(tmp_path)
    capsys.readouterr()
    assert main(["tuf", "sign", "targets", *base, "--key", "gcpkms:bogus"]) != 0
    assert "staged targets" not in capsys.readouterr().out
    assert not any((repo / "staged").glob("targets*.json"))
