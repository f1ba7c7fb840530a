"""Index files under TUF consistent-snapshot names (`<dirs>/<sha256>.<name>`) as well as plain ones.

python-tuf's `ngclient.Updater` with default settings downloads a target from
`<target base>/<dirs>/<sha256>.<name>` when root sets `consistent_snapshot`; the mirror's
root does, so its `/index/` route must answer those names with exactly the named bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mirror.config import Settings
from mirror.errors import BadRequest
from mirror.index import index_path, parse_target_path
from mirror.trust._tuf import Updater
from mirror.trust.repository import init_repository
from mirror.trust.settings import TufSettings
from tests.fixtures.upstream import FakeUpstream

DIGEST = "0123456789abcdef" * 4


def test_plain_and_hash_prefixed_paths_name_the_same_crate() -> None:
    """Both shapes parse to the crate name; only the hash-prefixed one carries a digest."""
    assert parse_target_path("cf/g-/cfg-if") == ("cfg-if", None)
    assert parse_target_path(f"cf/g-/{DIGEST}.cfg-if") == ("cfg-if", DIGEST)
    assert parse_target_path(f"1/{DIGEST}.a") == ("a", DIGEST)
    assert parse_target_path(f"3/s/{DIGEST}.syn") == ("syn", DIGEST)


@pytest.mark.parametrize(
    "path",
    [
        f"cf/g-/{DIGEST.upper()}.cfg-if",  # digests are lowercase hex only
        f"cf/g-/{DIGEST[:-1]}.cfg-if",  # 63 digits
        f"cf/g-/{DIGEST}0.cfg-if",  # 65 digits
        f"cf/g-/{DIGEST}.",  # no name
        f"cf/g-/{DIGEST}..cfg-if",
        f"cf/g-/{DIGEST}.cfg-if.json",
        f"cf/g-/{DIGEST}.cfg-if/..",
        f"cf/g-/../{DIGEST}.cfg-if",
        f"../../{DIGEST}.cfg-if",
        f"/cf/g-/{DIGEST}.cfg-if",
        f"se/rd/{DIGEST}.cfg-if",  # directories of another crate
        f"{DIGEST}.cfg-if",  # no directories
        f"cf/g-/{DIGEST}.CFG-IF",  # index paths are lowercase
        f"cf/g-/{DIGEST}.cfg%2dif",
        f"cf/g-/{DIGEST}%2ecfg-if",
        f"cf/g-/{DIGEST}.cfg-if\x00",
    ],
)
def test_hash_prefixed_paths_keep_the_strict_shape(path: str) -> None:
    """Path traversal: a digest prefix never loosens the canonical index path shape."""
    with pytest.raises(BadRequest):
        parse_target_path(path)


@pytest.fixture
async def signing_mirror(
    aiohttp_client: Any,
    mirror_app: Callable[[Settings], web.Application],
    mirror_settings: Callable[..., Settings],
    small_upstream: FakeUpstream,
    tmp_path: Path,
) -> tuple[TestClient[Any, Any], bytes]:
    """A mirror that signs what it serves (1-of-1 root), and its version-1 root."""
    tuf = {"repository": {"dir": str(tmp_path / "repo"), "bins": 4}}
    repo_settings = TufSettings.from_mapping(tuf, "test").repository
    assert repo_settings is not None
    init_repository(repo_settings, tmp_path / "offline", root_keys=1, root_threshold=1)
    client = await aiohttp_client(mirror_app(mirror_settings(small_upstream, tuf=tuf)))
    root = (tmp_path / "repo" / "metadata" / "1.root.json").read_bytes()
    return client, root


async def test_hash_prefixed_name_serves_exactly_the_named_bytes(
    signing_mirror: tuple[TestClient[Any, Any], bytes], small_upstream: FakeUpstream
) -> None:
    """The current bytes answer under their sha256 name; any other digest is a clean 404."""
    client, _ = signing_mirror
    plain = await client.get("/index/" + index_path("itoa"))
    body = await plain.read()
    digest = hashlib.sha256(body).hexdigest()
    named = await client.get(f"/index/it/oa/{digest}.itoa")
    assert named.status == 200 and await named.read() == body
    stale = await client.get(f"/index/it/oa/{DIGEST}.itoa")
    assert stale.status == 404
    assert "refresh TUF" in await stale.text()
    traversal = await client.get(f"/index/it/oa/{digest}.itoa%2f..%2f..")
    assert traversal.status == 400


async def test_default_ngclient_downloads_and_verifies_served_index_files(
    signing_mirror: tuple[TestClient[Any, Any], bytes], tmp_path: Path
) -> None:
    """python-tuf's Updater with default settings: refresh from /tuf/, download from /index/."""
    client, root = signing_mirror
    served = {}
    for name in ("itoa", "serde", "cfg-if"):
        resp = await client.get("/index/" + index_path(name))
        assert resp.status == 200
        served[index_path(name)] = await resp.read()
    metadata_url = str(client.make_url("/tuf/"))
    targets_url = str(client.make_url("/index/"))
    downstream = tmp_path / "downstream"
    downstream.mkdir()
    (downstream / "root.json").write_bytes(root)

    def download_all() -> dict[str, bytes]:
        # Defaults everywhere (no fetcher, no config: consistent-snapshot target names);
        # bootstrap=None means "the root.json in the metadata directory".
        updater = Updater(
            str(downstream), metadata_url, str(tmp_path / "out"), targets_url, bootstrap=None
        )
        updater.refresh()
        got: dict[str, bytes] = {}
        for path in served:
            info = updater.get_targetinfo(path)
            if info is None:
                return got  # not signed yet: the mirror signs in batches
            got[path] = Path(updater.download_target(info)).read_bytes()
        return got

    (tmp_path / "out").mkdir()
    deadline = asyncio.get_running_loop().time() + 15
    while (got := await asyncio.to_thread(download_all)) != served:
        assert asyncio.get_running_loop().time() < deadline, f"only verified {sorted(got)}"
        await asyncio.sleep(0.5)
