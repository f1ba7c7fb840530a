"""The capability lock while serving: held-back versions never appear, not even briefly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from mirror.config import Settings
from mirror.index import index_path
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream

LOCK = """\
version: 1
crates:
  gizmo:
    - capabilities: []
      approved_by: reviewer
      approved_at: "2026-01-01T00:00:00Z"
      reason: plain library
"""
POLICY = "version: 2\nrules:\n  capabilities: {mode: block, first_seen: require-approval}\n"


async def test_concurrent_index_requests_wait_for_the_scan_of_a_new_version(
    aiohttp_client: Any,
    mirror_app: Callable[[Settings], web.Application],
    mirror_settings: Callable[..., Settings],
    small_upstream: FakeUpstream,
    small_registry: Registry,
    tmp_path: Path,
) -> None:
    small_registry.add_crate("gizmo", "1.0.0", {"src/lib.rs": b"pub fn f() {}\n"})
    small_registry.add_crate(
        "gizmo",
        "1.1.0",
        {"build.rs": b'fn main() { std::process::Command::new("sh").status().ok(); }\n'},
    )
    (tmp_path / "capabilities.lock.yaml").write_text(LOCK)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    client = await aiohttp_client(mirror_app(mirror_settings(small_upstream, policy=policy)))
    # A slow upstream download keeps the scan of 1.1.0 running while requests pile up.
    small_upstream.faults.add("delay", match="/gizmo/", seconds=0.5)
    path = "/index/" + index_path("gizmo")
    responses = await asyncio.gather(*(client.get(path) for _ in range(10)))
    for resp in responses:
        assert resp.status == 200
        versions = [json.loads(line)["vers"] for line in (await resp.read()).splitlines()]
        assert versions == ["1.0.0"]  # 1.1.0 adds build_script + process: held back
    blocked = await client.get("/api/v1/crates/gizmo/1.1.0/download")
    assert blocked.status == 403
    body = await blocked.text()
    assert "adds: build_script" in body and "crate-mirror approve gizmo@1.1.0" in body
