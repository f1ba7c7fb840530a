"""`crate-mirror tuf-client` (conformance protocol) and the `tuf` / `import` commands."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from mirror.cli import main
from mirror.index import index_path
from mirror.store import FilesystemStore
from mirror.trust.repository import MirrorRepository
from tests.fixtures.tuf_repo import SignedUpstream, static_app
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


def test_tuf_commands_two_party_root_rotation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """init, rotate, sign by two parties, publish, status: the documented workflow."""
    repo, offline = tmp_path / "repo", tmp_path / "offline"
    base = ["--repo", str(repo)]
    assert main(["tuf", "init", *base, "--offline-dir", str(offline), "--bins", "4"]) == 0
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
    export = ["export", "--config", str(config), "--lockfile", str(lock), "--out", str(bundle)]
    assert main([*export, "--no-progress"]) == 0, capsys.readouterr().err
    assert "2 index files, 2 crates" in capsys.readouterr().out

    root = tmp_path / "repo" / "metadata" / "1.root.json"
    target = tmp_path / "airgapped"
    imp = ["import", str(bundle), "--cache-dir", str(target), "--trusted-root", str(root)]
    assert main([*imp, "--no-progress"]) == 0
    for name, cksum in locked.items():
        assert FilesystemStore(target).has_crate(cksum)
        assert FilesystemStore(target).read_index(name) is not None
