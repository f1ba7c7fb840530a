"""`/readyz`: ready only when upstream answers, the cache takes writes and a policy is
enforced; 503 with the reasons otherwise. `/healthz` stays a liveness check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from mirror.http.routes import HANDLERS
from mirror.policy.schema import SCHEMA_VERSION
from mirror.serving import readiness
from mirror.sources import tokens as token_file
from mirror.sources.policy_files import PolicyFiles
from mirror.sources.tokens import TokenStore
from tests import REPO
from tests.fixtures.pytest_plugin import MirrorClient
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import free_port


@pytest.fixture(autouse=True)
def fresh_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every /readyz probes again (the 5 s reuse is tested on its own below)."""
    monkeypatch.setattr(readiness, "RECHECK_SECONDS", 0.0)


async def _ready(client: TestClient[Any, Any]) -> tuple[int, dict[str, Any]]:
    resp = await client.get("/readyz")
    return resp.status, json.loads(await resp.read())


async def test_a_working_mirror_is_ready(
    small_upstream: FakeUpstream, mirror_client: MirrorClient, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"version: {SCHEMA_VERSION}\n")
    client = await mirror_client(small_upstream, policy=policy)
    status, body = await _ready(client)
    assert status == 200, body
    assert body["ready"] is True and body["reasons"] == []
    checks = body["checks"]
    assert checks["upstream"]["ok"] and checks["cache"]["ok"]
    assert checks["policy"] == {
        "ok": True,
        "configured": True,
        "digest": PolicyFiles(policy).load().policy.digest,
    }


async def test_an_unreachable_upstream_is_not_ready_though_alive(
    mirror_client: MirrorClient,
) -> None:
    """The case the issue names: /healthz said ok while nothing could be fetched."""
    client = await mirror_client(None, upstream_index=f"http://127.0.0.1:{free_port()}/")
    status, body = await _ready(client)
    assert status == 503
    assert body["ready"] is False
    assert body["checks"]["upstream"]["ok"] is False
    assert [r.split(":")[0] for r in body["reasons"]] == ["upstream"]
    assert "upstream unreachable" in body["reasons"][0]
    assert (await client.get("/healthz")).status == 200


async def test_a_silent_upstream_is_not_ready_within_the_probe_timeout(
    small_upstream: FakeUpstream, mirror_client: MirrorClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readiness, "PROBE_TIMEOUT", 0.5)
    client = await mirror_client(small_upstream)
    small_upstream.faults.add("delay", match="config.json", seconds=5)
    status, body = await _ready(client)
    assert status == 503
    assert body["reasons"] == ["upstream: upstream did not answer within 0.5 s"]
    small_upstream.faults.clear()
    assert (await _ready(client))[0] == 200  # back as soon as upstream answers


async def test_offline_needs_no_upstream(mirror_client: MirrorClient) -> None:
    client = await mirror_client(None, offline=True)
    status, body = await _ready(client)
    assert status == 200
    assert body["checks"]["upstream"] == {"ok": True, "offline": True}


async def test_a_cache_that_takes_no_writes_is_not_ready(
    small_upstream: FakeUpstream, mirror_client: MirrorClient, tmp_path: Path
) -> None:
    """Where the cache writes first (tmp/) is no directory any more: writes fail, whoever we
    run as (a read-only mount or a full disk fail the same way; tests/scenarios/
    test_disk_full.py fills a real one)."""
    client = await mirror_client(small_upstream)
    tmp_dir = tmp_path / "cache" / "tmp"
    tmp_dir.rmdir()
    tmp_dir.write_text("not a directory")
    status, body = await _ready(client)
    assert status == 503
    assert body["checks"]["cache"]["ok"] is False
    assert body["reasons"] == [
        "cache: cache write failed while checking that the cache is writable: Not a directory"
    ]
    assert str(tmp_path) not in json.dumps(body)  # no paths on a public route
    tmp_dir.unlink()
    tmp_dir.mkdir()
    assert (await _ready(client))[0] == 200


async def test_a_rejected_policy_reload_is_reported_but_stays_ready(
    small_upstream: FakeUpstream, mirror_client: MirrorClient, tmp_path: Path
) -> None:
    """The previous policy is still enforced, and every replica reads the same broken file."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"version: {SCHEMA_VERSION}\n")
    client = await mirror_client(small_upstream, policy=policy)
    policy.write_text(f"version: {SCHEMA_VERSION}\nrules:\n  typosquatting: {{mode: block}}\n")
    reloader = client.app[HANDLERS].core.reloader
    assert reloader is not None
    reloader.now()
    status, body = await _ready(client)
    assert status == 200
    assert "1 problem(s)" in body["checks"]["policy"]["reload_rejected"]
    assert "typosquatting" not in json.dumps(body)  # the problems are in the log
    policy.write_text(f"version: {SCHEMA_VERSION}\n")
    reloader.now()
    assert "reload_rejected" not in (await _ready(client))[1]["checks"]["policy"]


async def test_an_invalid_token_file_is_not_ready_and_readyz_needs_no_token(
    small_upstream: FakeUpstream,
    mirror_client: MirrorClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(token_file, "RELOAD_CHECK_SECONDS", 0.0)
    store = TokenStore(tmp_path / "tokens.json")
    store.add("ci")
    client = await mirror_client(small_upstream, auth_tokens=store.path)
    assert (await _ready(client))[0] == 200  # probes carry no token
    store.path.write_text("{")
    status, body = await _ready(client)
    assert status == 503
    assert body["reasons"] == ["tokens: the token file is invalid; no token is accepted"]


async def test_probe_results_are_reused_for_a_few_seconds(
    small_upstream: FakeUpstream, mirror_client: MirrorClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load balancer probing every second is not a request a second to upstream."""
    monkeypatch.setattr(readiness, "RECHECK_SECONDS", 60.0)
    client = await mirror_client(small_upstream)
    before = small_upstream.requests.count("config.json")
    for _ in range(5):
        status, body = await _ready(client)
        assert status == 200
    assert small_upstream.requests.count("config.json") == before + 1
    assert "checked_seconds_ago" in body["checks"]["upstream"]


def test_the_container_waits_for_readiness_where_it_matters() -> None:
    """The image's health check stays on liveness (an upstream outage must not restart a
    mirror that serves its cache), and says why; the docs point orchestrators at /readyz."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "/healthz" in dockerfile.split("HEALTHCHECK", 1)[1].split("\n\n", 1)[0]
    assert "/readyz" in dockerfile
    assert "/readyz" in (REPO / "docs" / "serving.md").read_text()
