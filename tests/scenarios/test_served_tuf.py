"""The running mirror signs what it serves: a downstream TUF client verifies served index files."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from mirror.config import Settings
from mirror.index import index_path
from mirror.trust.repository import init_repository
from mirror.trust.settings import TufSettings
from mirror.trust.upstream import open_updater, updater_config
from tests.fixtures.upstream import FakeUpstream


async def test_downstream_client_verifies_what_the_mirror_served(
    aiohttp_client: Any,
    mirror_app: Callable[[Settings], web.Application],
    mirror_settings: Callable[..., Settings],
    small_upstream: FakeUpstream,
    tmp_path: Path,
) -> None:
    tuf = {"repository": {"dir": str(tmp_path / "repo"), "bins": 4}}
    repo_settings = TufSettings.from_mapping(tuf, "test").repository
    assert repo_settings is not None
    init_repository(repo_settings, tmp_path / "offline", root_keys=1, root_threshold=1)
    client = await aiohttp_client(mirror_app(mirror_settings(small_upstream, tuf=tuf)))
    served = {}
    for name in ("itoa", "serde"):
        resp = await client.get("/index/" + index_path(name))
        served[index_path(name)] = await resp.read()

    root = (tmp_path / "repo" / "metadata" / "1.root.json").read_bytes()
    base = str(client.make_url("/tuf/"))

    def verify() -> dict[str, str]:
        updater = open_updater(tmp_path / "downstream", base, root, updater_config(5_000_000))
        updater.refresh()
        found = {}
        for path in served:
            info = updater.get_targetinfo(path)
            found[path] = info.hashes["sha256"] if info is not None else ""
        return found

    deadline = asyncio.get_running_loop().time() + 15
    while True:  # the mirror signs in batches every couple of seconds
        found = await asyncio.to_thread(verify)
        expected = {p: hashlib.sha256(b).hexdigest() for p, b in served.items()}
        if found == expected or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert found == expected
