"""Webhooks from a running mirror to a local receiver: an alert arrives within 2 s of the
block that caused it (JSON and Slack formats); with the receiver hanging, requests are served
as fast as without it, deliveries are retried and then recorded as failed."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from mirror.audit import read_events
from tests.fixtures.pytest_plugin import MirrorClient
from tests.fixtures.upstream import FakeUpstream

POLICY = "version: 2\nrules:\n  capabilities: {mode: block, first_seen: require-approval}\n"


class Receiver:
    def __init__(self, *, hang: float = 0.0) -> None:
        self.hang = hang  # seconds before answering (a receiver that has hung)
        self.got: list[tuple[float, str, dict[str, Any]]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{hook}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((time.monotonic(), request.match_info["hook"], await request.json()))
        if self.hang:
            await asyncio.sleep(self.hang)
        return web.Response(text="ok")


def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policies" / "policy.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(POLICY)
    return path


async def test_a_block_reaches_the_receiver_within_two_seconds(
    mirror_client: MirrorClient, small_upstream: FakeUpstream, tmp_path: Path
) -> None:
    receiver = Receiver()
    async with TestServer(receiver.app(), host="127.0.0.1") as server:
        hooks = [
            {"name": "generic", "url": str(server.make_url("/generic"))},
            {"name": "chat", "url": str(server.make_url("/slack")), "format": "slack",
             "events": ["pending"]},
        ]  # fmt: skip
        client = await mirror_client(small_upstream, policy=policy(tmp_path),
                                     alerts={"hooks": hooks, "poll": 0.2})  # fmt: skip
        await asyncio.sleep(0.5)  # the dispatcher's cursor starts at the end of the chain
        version = small_upstream.registry.versions("itoa")[-1]
        started = time.monotonic()
        resp = await client.get(f"/api/v1/crates/itoa/{version}/download")
        assert resp.status == 403
        while len(receiver.got) < 2 and time.monotonic() - started < 5:
            await asyncio.sleep(0.02)
        by_hook = {hook: (at, data) for at, hook, data in receiver.got}
        assert set(by_hook) == {"generic", "slack"}
        at, data = by_hook["generic"]
        assert at - started <= 2.0
        assert data["kinds"] == ["block", "pending"] and data["event"]["crate"] == "itoa"
        assert data["links"]["review"].endswith(f"/-/review?crate=itoa&version={version}")
        slack = by_hook["slack"][1]
        assert "itoa" in slack["text"] and slack["blocks"][0]["text"]["type"] == "mrkdwn"


async def test_a_hanging_receiver_never_slows_serving_and_failures_are_recorded(
    mirror_client: MirrorClient, small_upstream: FakeUpstream, tmp_path: Path
) -> None:
    receiver = Receiver(hang=30.0)
    async with TestServer(receiver.app(), host="127.0.0.1") as server:
        alerts = {
            "hooks": [{"name": "stuck", "url": str(server.make_url("/stuck"))}],
            "timeout": 0.5, "attempts": 2, "backoff": 0.1, "poll": 0.1, "queue": 3,
        }  # fmt: skip
        client = await mirror_client(small_upstream, policy=policy(tmp_path), alerts=alerts)
        await asyncio.sleep(0.3)
        names = ("itoa", "ryu", "memchr", "serde", "unicode-ident")
        slowest = 0.0
        for round_ in range(4):
            for name in names:
                version = small_upstream.registry.versions(name)[-1]
                started = time.monotonic()
                resp = await client.get(f"/api/v1/crates/{name}/{version}/download")
                assert resp.status == 403
                if round_:  # the first round fetches from upstream and scans
                    slowest = max(slowest, time.monotonic() - started)
            await asyncio.sleep(0.3)
        assert slowest < 0.25  # refusals from memory, while deliveries time out behind them
        audit = tmp_path / "cache" / "audit"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            events = list(read_events(audit))
            if any(e["action"] == "alert.failed" for e in events):
                break
            await asyncio.sleep(0.2)
        failed = [e for e in events if e["action"] == "alert.failed"]
        assert failed and failed[0]["details"]["attempts"] == 2
        assert "timed out" in failed[0]["reason"]
        assert len({json.dumps(d["event"]["seq"]) for _, _, d in receiver.got}) <= 5
        dropped = [e for e in events if e["action"] == "alert.dropped"]
        assert dropped and dropped[0]["details"]["dropped"] >= 1  # 5 alerts, a queue of 3
