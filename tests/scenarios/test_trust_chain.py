"""The chain of trust end to end, through the commands operators run.

signed upstream --(tuf.upstream verifies)--> internet-side mirror A --(export: A signs)-->
bundle --(import: verified against A's pinned root)--> air-gapped mirror B --(B signs what
it serves)--> a downstream python-tuf client with default settings.

Then a root rotation travels along it: A's root holders rotate A's root, the next bundle
carries it and B follows it; B's holders rotate B's root and the downstream client follows.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp.test_utils import TestClient

from mirror.app import create_app
from mirror.cli import main
from mirror.config import load_settings
from mirror.index import index_path
from mirror.trust._tuf import Metadata, Updater
from tests.fixtures.registry import Registry
from tests.fixtures.tuf_repo import SignedUpstream, static_app
from tests.fixtures.upstream import FakeUpstream

NAMES = ("itoa", "ryu", "memchr")


async def cli(*argv: str | Path) -> None:
    """A `crate-mirror` command, off the event loop (it may run its own); paths as they are."""
    assert await asyncio.to_thread(main, [str(a) for a in argv]) == 0, argv


class Holders:
    """Root key holders of one mirror's repository, each with a key file of their own."""

    def __init__(self, tmp: Path, repo: Path, names: tuple[str, ...]) -> None:
        self.tmp, self.repo, self.names = tmp, repo, names

    def key(self, name: str) -> Path:
        return self.tmp / name / "root.pem"

    async def create(self) -> None:
        for name in self.names:
            await cli("tuf", "key", "new", "--out", self.key(name))

    async def sign_and_publish(self, *names: str) -> None:
        """Each holder signs a copy of the staged root; the operator publishes the copies."""
        copies = []
        for name in names:
            copy = self.tmp / name / "staged-root.json"
            shutil.copyfile(self.repo / "staged" / "root.json", copy)
            await cli("tuf", "sign", "root", "--file", copy, "--key", self.key(name))
            copies.append(copy)
        await cli(
            "tuf", "publish", "--repo", self.repo, *(a for c in copies for a in ("--signed", c))
        )

    def root_version(self) -> int:
        return int(
            Metadata.from_bytes((self.repo / "metadata" / "root.json").read_bytes()).signed.version
        )


def lockfile(path: Path, registry: Registry) -> Path:
    """A Cargo.lock of each crate's first version."""
    packages = []
    for name in NAMES:
        line = json.loads(registry.read_index(name).splitlines()[0])
        packages.append(
            f'[[package]]\nname = "{name}"\nversion = "{line["vers"]}"\n'
            'source = "registry+https://github.com/rust-lang/crates.io-index"\n'
            f'checksum = "{line["cksum"]}"\n'
        )
    path.write_text("version = 4\n" + "".join(packages))
    return path


def downstream(metadata_dir: Path, base: str, out: Path, paths: list[str]) -> dict[str, bytes]:
    """python-tuf's Updater with default settings: refresh, then download and verify each."""
    updater = Updater(str(metadata_dir), base + "tuf/", str(out), base + "index/", bootstrap=None)
    updater.refresh()
    got = {}
    for path in paths:
        info = updater.get_targetinfo(path)
        if info is not None:
            got[path] = Path(updater.download_target(info)).read_bytes()
    return got


async def test_chain_from_signed_upstream_to_downstream_client(
    aiohttp_server: Callable[..., Awaitable[Any]],
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    small_upstream: FakeUpstream,
    small_registry: Registry,
    tmp_path: Path,
) -> None:
    # -- a signed upstream and the internet-side mirror A that verifies it ----------------------
    # A newer itoa that no lockfile asks for: B will lack its crate, so B's offline view of
    # the index (only what it can serve) differs from the full one.
    small_registry.add_crate("itoa", "99.0.0", {})
    signed = SignedUpstream(
        tmp_path / "upstream-tuf", {index_path(n): small_registry.read_index(n) for n in NAMES}
    )
    upstream_metadata = await aiohttp_server(static_app(signed.metadata_dir))
    (tmp_path / "upstream-root.json").write_bytes(signed.root_versions[1])
    a_repo = tmp_path / "a-repo"
    a_yaml = tmp_path / "a.yaml"
    a_config = {
        "cache_dir": str(tmp_path / "a-cache"),
        "upstream_index": small_upstream.url + "/",
        "tuf": {
            "upstream": {
                "metadata_url": str(upstream_metadata.make_url("/")),
                "trusted_root": str(tmp_path / "upstream-root.json"),
                "metadata_dir": str(tmp_path / "a-upstream-metadata"),
            },
            "repository": {"dir": str(a_repo), "bins": 4},
        },
    }
    a_yaml.write_text(yaml.safe_dump(a_config))
    a_holders = Holders(tmp_path / "a-holders", a_repo, ("alice", "bob", "carol"))
    await a_holders.create()
    a_pubs = [
        a for n in ("alice", "bob") for a in ("--root-key", a_holders.key(n).with_suffix(".pub"))
    ]
    await cli(
        "tuf", "init", "--config", a_yaml, *a_pubs, "--root-threshold", "2",
        "--offline-dir", tmp_path / "a-targets-holder",
    )  # fmt: skip
    await a_holders.sign_and_publish("alice", "bob")
    (tmp_path / "a-root-v1.json").write_bytes((a_repo / "metadata" / "1.root.json").read_bytes())

    lock = lockfile(tmp_path / "Cargo.lock", small_registry)
    export: list[str | Path] = ["export", "--config", a_yaml, "--lockfile", lock, "--no-progress"]
    await cli(*export, "--out", tmp_path / "bundle-1.tar")
    # A verified every index file against the signed upstream before serving or exporting it.
    assert (tmp_path / "a-upstream-metadata" / "timestamp.json").is_file()

    # -- the air-gapped mirror B: only A's pinned root, and its own repository ----------------
    b_repo = tmp_path / "b-repo"
    b_yaml = tmp_path / "b.yaml"
    b_config = {
        "cache_dir": str(tmp_path / "b-cache"),
        "offline": True,
        "tuf": {
            "upstream": {"trusted_root": str(tmp_path / "a-root-v1.json")},
            "repository": {"dir": str(b_repo), "bins": 4},
        },
    }
    b_yaml.write_text(yaml.safe_dump(b_config))
    b_holders = Holders(tmp_path / "b-holders", b_repo, ("dora", "eve"))
    await b_holders.create()
    b_pubs = [
        a for n in b_holders.names for a in ("--root-key", b_holders.key(n).with_suffix(".pub"))
    ]
    await cli(
        "tuf", "init", "--config", b_yaml, *b_pubs, "--root-threshold", "2",
        "--offline-dir", tmp_path / "b-targets-holder",
    )  # fmt: skip
    await b_holders.sign_and_publish("dora", "eve")
    await cli("import", tmp_path / "bundle-1.tar", "--config", b_yaml, "--no-progress")

    # -- B serves; a downstream client pinned to B's root verifies what it downloads ----------
    b = await aiohttp_client(create_app(load_settings(b_yaml)))
    paths = [index_path(n) for n in NAMES]
    served = {}
    for name in NAMES:
        resp = await b.get("/index/" + index_path(name))
        assert resp.status == 200
        served[index_path(name)] = await resp.read()
        line = json.loads(served[index_path(name)].splitlines()[-1])
        crate = await b.get(f"/api/v1/crates/{name}/{line['vers']}/download")
        assert crate.status == 200  # cargo downloads what it resolved
    client_md = tmp_path / "downstream"
    client_md.mkdir()
    (client_md / "root.json").write_bytes((b_repo / "metadata" / "1.root.json").read_bytes())
    base = str(b.make_url("/"))

    async def downstream_gets_everything() -> None:
        deadline = asyncio.get_running_loop().time() + 20
        while True:  # B signs what it served every couple of seconds
            got = await asyncio.to_thread(downstream, client_md, base, tmp_path / "out", paths)
            if got == served:
                return
            assert asyncio.get_running_loop().time() < deadline, f"verified only {sorted(got)}"
            await asyncio.sleep(0.5)

    await downstream_gets_everything()

    # -- a root rotation along the chain ------------------------------------------------------
    # A's holders replace bob by carol (old threshold and new threshold both sign).
    bob = json.loads(a_holders.key("bob").with_suffix(".pub").read_text())["keyid"]
    carol_pub = a_holders.key("carol").with_suffix(".pub")
    await cli(
        "tuf", "rotate", "root", "--repo", a_repo, "--add-key", carol_pub, "--remove-keyid", bob
    )
    trusted = tmp_path / "a-trusted-root.json"
    trusted.write_bytes((a_repo / "metadata" / "root.json").read_bytes())
    copy = a_holders.tmp / "bob" / "outgoing.json"
    shutil.copyfile(a_repo / "staged" / "root.json", copy)
    await cli(
        "tuf",
        "sign",
        "root",
        "--file",
        copy,
        "--key",
        a_holders.key("bob"),
        "--trusted-root",
        trusted,
    )
    merge = ["tuf", "publish", "--repo", str(a_repo), "--signed", str(copy)]
    assert await asyncio.to_thread(main, merge) == 1  # bob's signature merged; not enough yet
    await a_holders.sign_and_publish("alice", "carol")
    assert a_holders.root_version() == 2
    await cli(*export, "--out", tmp_path / "bundle-2.tar")
    await cli("import", tmp_path / "bundle-2.tar", "--config", b_yaml, "--no-progress")
    (slot,) = (tmp_path / "b-cache" / "trust" / "import").iterdir()  # one pinned root
    imported = Metadata.from_bytes((slot / "root.json").read_bytes())
    assert imported.signed.version == 2  # B, still pinning A's v1, followed A's rotation

    # B's holders rotate B's timestamp key; the downstream client follows B's root v2.
    await cli("tuf", "rotate", "timestamp", "--repo", b_repo)
    await b_holders.sign_and_publish("dora", "eve")
    assert b_holders.root_version() == 2
    await downstream_gets_everything()
    trusted_downstream = Metadata.from_bytes((client_md / "root.json").read_bytes())
    assert trusted_downstream.signed.version == 2
