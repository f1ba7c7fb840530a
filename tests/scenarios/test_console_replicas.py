"""The review console with replicas sharing an audit directory: whichever replica answers,
its pages show what every replica held back and decided, and an approval made through one
replica's console closes the review on all of them."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from mirror.sources.tokens import admin_tokens
from tests.fixtures.pytest_plugin import MirrorClient
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.scenarios.test_console import EVIL_BUILD_RS, POLICY, csrf_of, hold, log_in


async def _replica(
    mirror_client: MirrorClient, upstream: FakeUpstream, tmp_path: Path, name: str, token: Path
) -> TestClient[Any, Any]:
    policies = tmp_path / name / "policies"
    policies.mkdir(parents=True)
    (policies / "policy.yaml").write_text(POLICY)
    return await mirror_client(
        upstream, policy=policies / "policy.yaml", admin_tokens=token, replica_id=name,
        cache_dir=tmp_path / name / "cache", audit_dir=tmp_path / "audit",
    )  # fmt: skip


async def _page_until(client: TestClient[Any, Any], path: str, wanted: str, present: bool) -> str:
    """The page once `wanted` is (or is no longer) on it: the other replica's writer appends
    its events to its chain within a fraction of a second."""
    started = time.monotonic()
    while True:
        text = await (await client.get(path)).text()
        if (wanted in text) == present or time.monotonic() - started > 10:
            return text
        await asyncio.sleep(0.1)


async def test_every_replicas_console_sees_every_chain_and_one_approval_closes_the_review(
    mirror_client: MirrorClient, small_upstream: FakeUpstream, small_registry: Registry,
    tmp_path: Path,
) -> None:  # fmt: skip
    admins = tmp_path / "admins.json"
    token = admin_tokens(admins).add("alice")
    a = await _replica(mirror_client, small_upstream, tmp_path, "replica-a", admins)
    b = await _replica(mirror_client, small_upstream, tmp_path, "replica-b", admins)
    small_registry.add_crate("evil-build", "1.0.0", {"build.rs": EVIL_BUILD_RS})
    await hold(b, "evil-build", "1.0.0")  # the load balancer sent cargo to B
    for client in (a, b):
        await log_in(client, token)

    pending = await _page_until(a, "/-/pending", "evil-build", present=True)
    assert "evil-build" in pending  # A's console shows B's hold
    decisions = await (await a.get("/-/decisions?crate=evil-build")).text()
    assert "replica replica-b" in decisions
    seq = re.search(r'href="/-/events/(\d+)"', decisions)
    assert seq is not None
    event = await (await a.get(f"/-/events/{seq.group(1)}")).text()
    assert "of replica replica-b" in event and "evil-build" in event
    status = await (await a.get("/-/status")).text()
    assert "Replica replica-b" in status and "Intact" in status

    await hold(a, "evil-build", "1.0.0")  # A holds it too (and has the crate's scan)
    resp = await a.post("/-/decide", data={
        "_csrf": await csrf_of(a), "decision": "approve", "target": "evil-build@1.0.0",
        "reason": "reviewed: telemetry opt-in"})  # fmt: skip
    assert "1 approved" in await resp.text()
    # Recorded in A's chain; the review is closed on B's console as well.
    for client in (a, b):
        pending = await _page_until(client, "/-/pending", "evil-build", present=False)
        assert "evil-build" not in pending
    approvals = await (await b.get("/-/decisions?action=approve")).text()
    assert "alice approved" in approvals and "replica replica-a" in approvals
    assert (tmp_path / "replica-a" / "cache" / "state" / "audit-index.sqlite").is_file()
    assert not list((tmp_path / "audit").rglob("*.sqlite"))  # indexes stay on local disks
