"""Only mirror/store/ writes the cache: every file created, written, renamed or removed under
the cache directory while serving index files and crates (with capability scans, so scan
reports are stored too) has the store on its call stack.

A Python audit hook (events `open` for writing, `os.rename`, `os.mkdir`, `os.remove`,
`os.truncate`) sees every such call, whichever module makes it. The audit log and the server's
state (trust-on-first-use records, the lock epoch: `settings.state_directory`) have their own
directories (mirror.files helpers); they are not the cache and are not checked here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mirror.store
from mirror.config import Settings
from mirror.request_ids import next_request_id
from mirror.serving.core import Client
from mirror.serving.open import open_mirror
from mirror.store import FilesystemStore
from tests.fixtures.audit_hooks import Writes, watching
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream

STORE_DIR = str(Path(mirror.store.__file__).resolve().parent) + "/"
POLICY = "version: 2\nrules:\n  capabilities: {mode: block, first_seen: trust}\n"


@pytest.mark.parametrize("shared", [False, True], ids=["filesystem", "bucket"])
async def test_every_cache_write_goes_through_the_store(
    shared: bool,
    small_registry: Registry,
    mirror_settings: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Also with a shared bucket behind the local cache (S3Store keeps its hot set through the
    same FilesystemStore)."""
    policy = tmp_path / "policy" / "policy.yaml"
    policy.parent.mkdir()
    policy.write_text(POLICY)
    cache = (tmp_path / "cache").resolve()
    writes = Writes(str(cache) + "/", skip=(str(cache / "audit"), str(cache / "state")))
    async with FakeUpstream(small_registry) as upstream:
        bucket = request.getfixturevalue("s3_bucket").settings() if shared else {}
        settings: Settings = mirror_settings(upstream, cache_dir=cache, policy=policy, **bucket)
        with watching(writes):
            core, close = open_mirror(settings)
            try:
                await core.start()  # upstream's config.json is kept for offline starts
                for name in ("itoa", "ryu"):
                    await core.serve_index(name, Client(next_request_id(), "test"))
                    version = small_registry.versions(name)[0]
                    await core.fetch_crate(name, version, Client(next_request_id(), "test"))
            finally:
                await close()
    store = FilesystemStore(cache)
    assert len(list(store.iter_crates())) == 2 and len(list(store.iter_scans())) == 2
    assert store.read_index("ryu") is not None and store.read_upstream_config() is not None
    written = [s for s in writes.seen if s.what.startswith(("open", "os.rename"))]
    kinds = {Path(s.what.split()[-1]).relative_to(cache).parts[0] for s in written}
    assert {"crates", "index", "scans", "config", "tmp"} <= kinds  # every kind was watched
    outside = [s for s in writes.seen if not s.through(STORE_DIR)]
    assert not outside, "cache writes outside mirror/store/:\n" + "\n\n".join(
        f"{s.what}\n  " + "\n  ".join(s.stack[:12]) for s in outside
    )
    # The check itself: a write that bypasses the store is caught.
    with watching(writes):
        (cache / "stray").write_bytes(b"x")
    assert not writes.seen[-1].through(STORE_DIR)
