"""Only mirror/upstream/ opens connections: every outbound connect of an index fetch, a crate
download, a TUF refresh, a corpus update, a webhook alert and (replicas) every object store
request has the upstream package on its call stack (the upstream client, the webhook client
mirror/upstream/webhooks.py, the object store client mirror/upstream/s3.py).

A Python audit hook (event `socket.connect`) sees every connect the process makes, whichever
library makes it (aiohttp, urllib3 under python-tuf, a raw socket); connects to the local
fixture servers are checked, connects to anything else (none here) are ignored.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

import mirror.upstream
from mirror.config import Settings
from mirror.index import index_path
from mirror.request_ids import next_request_id
from mirror.serving.core import Client
from mirror.serving.open import open_mirror
from mirror.sources.corpus import CorpusUpdateSettings, load_corpus, update_corpus
from tests.fixtures.audit_hooks import Connects, watching
from tests.fixtures.object_store import TestBucket
from tests.fixtures.registry import Registry
from tests.fixtures.tuf_repo import SignedUpstream, static_app
from tests.fixtures.upstream import FakeUpstream

UPSTREAM_DIR = str(Path(mirror.upstream.__file__).resolve().parent) + "/"


async def test_index_download_tuf_and_corpus_all_go_through_the_upstream_client(
    small_registry: Registry, mirror_settings: Any, tmp_path: Path
) -> None:
    names = ("itoa", "ryu")
    signed = SignedUpstream(
        tmp_path / "signed", {index_path(n): small_registry.read_index(n) for n in names}
    )
    root = tmp_path / "pinned-root.json"
    root.write_bytes((signed.metadata_dir / "1.root.json").read_bytes())
    connects = Connects()
    async with (
        FakeUpstream(small_registry) as upstream,
        TestServer(static_app(signed.metadata_dir), host="127.0.0.1") as metadata,
    ):
        assert upstream.port is not None and metadata.port is not None  # both are listening
        connects.ports |= {upstream.port, metadata.port}
        tuf = {
            "upstream": {
                "metadata_url": str(metadata.make_url("/")),
                "trusted_root": str(root),
                "metadata_dir": str(tmp_path / "tuf-client"),
            }
        }
        settings: Settings = mirror_settings(upstream, tuf=tuf)
        with watching(connects):
            core, close = open_mirror(settings)
            try:
                await core.start()  # upstream's config.json
                for name in names:  # index files, each verified against upstream's TUF
                    answer = await core.serve_index(name, Client(next_request_id(), "test"))
                    assert answer.body == small_registry.read_index(name)
                version = small_registry.versions("itoa")[0]
                client = Client(next_request_id(), "test")
                crate = await core.fetch_crate("itoa", version, client)
                assert crate.crate.read() == small_registry.crate_bytes("itoa", version)
            finally:
                await close()
            out = tmp_path / "popular-crates.txt"
            corpus = CorpusUpdateSettings(api=upstream.url, count=3, min_interval=0)
            await update_corpus(out, corpus)
            assert len(load_corpus(out)) == 3

            ports = {c.what.rsplit(":", 1)[1] for c in connects.seen}
            assert ports == {str(upstream.port), str(metadata.port)}  # both really used
            assert upstream.requests.count("download") == 1
            assert upstream.requests.count("/api/v1/crates") >= 1  # the corpus pages
            outside = [c for c in connects.seen if not c.through(UPSTREAM_DIR)]
            assert not outside, "connects outside mirror/upstream/:\n" + "\n\n".join(
                f"{c.what}\n  " + "\n  ".join(c.stack[:12]) for c in outside
            )

            # The check itself: a connect that bypasses the client is caught.
            with socket.create_connection(("127.0.0.1", upstream.port), timeout=5):
                pass
            assert [c.through(UPSTREAM_DIR) for c in connects.seen][-1] is False


async def test_webhook_alerts_go_out_through_the_upstream_package(
    mirror_settings: Any, tmp_path: Path
) -> None:
    """Alerts are outbound HTTP too: their connects come from mirror/upstream/webhooks.py."""
    import asyncio

    from aiohttp import web

    from mirror.audit import AuditEvent, AuditLog
    from mirror.audit.index import AuditIndex
    from mirror.serving.alert_queue import AlertDispatcher
    from mirror.serving.alerts import AlertSettings, Hook
    from mirror.upstream.webhooks import WebhookClient

    got: list[bytes] = []

    async def receive(request: web.Request) -> web.Response:
        got.append(await request.read())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", receive)
    connects = Connects()
    audit = AuditLog(tmp_path / "audit")
    async with TestServer(app, host="127.0.0.1") as receiver:
        assert receiver.port is not None  # listening
        connects.ports.add(receiver.port)
        hook = Hook("r", str(receiver.make_url("/hook")), "json", frozenset({"block"}))
        dispatcher = AlertDispatcher(
            AlertSettings(hooks=(hook,)), AuditIndex(tmp_path / "audit"), audit,
            WebhookClient(timeout=5), "http://mirror",
        )  # fmt: skip
        with watching(connects):
            dispatcher._queue = asyncio.Queue()
            dispatcher._spawn(dispatcher._send_loop())
            await dispatcher.look()
            audit.record(AuditEvent("block", "deny", "denied", crate="x", route="index"))
            audit.flush()
            await dispatcher.look()
            for _ in range(200):
                if got:
                    break
                await asyncio.sleep(0.01)
            await dispatcher.close()
    audit.close()
    assert got and connects.seen
    outside = [c for c in connects.seen if not c.through(UPSTREAM_DIR)]
    assert not outside, "\n\n".join(f"{c.what}\n  " + "\n  ".join(c.stack[:12]) for c in outside)


async def test_object_store_traffic_goes_through_mirror_upstream(
    small_registry: Registry, mirror_settings: Any, s3_bucket: TestBucket, tmp_path: Path
) -> None:
    """Replicas: the bucket is outside too. Uploads (crates, index files, scan reports),
    read-through on a second replica and the capability-lock sync all connect from
    mirror/upstream/ (the object store client, mirror/upstream/s3.py)."""
    policy = tmp_path / "policy" / "policy.yaml"
    policy.parent.mkdir()
    policy.write_text("version: 2\nrules:\n  capabilities: {mode: block, first_seen: trust}\n")
    connects = Connects()
    connects.ports.add(int(s3_bucket.endpoint.rsplit(":", 1)[1]))
    async with FakeUpstream(small_registry) as upstream:
        connects.ports.add(upstream.port)
        version = small_registry.versions("itoa")[0]
        with watching(connects):
            for replica in ("a", "b"):
                settings: Settings = mirror_settings(
                    upstream,
                    cache_dir=tmp_path / replica,
                    policy=policy,
                    replica_id=replica,
                    **s3_bucket.settings(),
                )
                core, close = open_mirror(settings)
                try:
                    await core.start()
                    await core.serve_index("itoa", Client(next_request_id(), "test"))
                    await core.fetch_crate("itoa", version, Client(next_request_id(), "test"))
                    assert core.reloader is not None and core.reloader.lock_sync is not None
                    await core.reloader.lock_sync.sync()
                finally:
                    await close()
    assert upstream.requests.count("download") == 1  # b read it through the bucket
    store_port = s3_bucket.endpoint.rsplit(":", 1)[1]
    assert any(c.what.endswith(":" + store_port) for c in connects.seen)
    outside = [c for c in connects.seen if not c.through(UPSTREAM_DIR)]
    assert not outside, "connects outside mirror/upstream/:\n" + "\n\n".join(
        f"{c.what}\n  " + "\n  ".join(c.stack[:12]) for c in outside
    )
