"""Client tokens at the HTTP edge: no token, no answer (a 401 with cargo's challenge); the
audit log names the token holder and never the token; a revoke needs no restart."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from mirror.config import Settings
from mirror.http.routes import HANDLERS
from mirror.index import index_path
from mirror.sources import tokens as token_file
from mirror.sources.tokens import TokenStore
from tests.fixtures.pytest_plugin import MirrorClient
from tests.fixtures.upstream import FakeUpstream

AiohttpClient = Callable[[web.Application], Any]


async def _auth_client(
    aiohttp_client: AiohttpClient,
    mirror_app: Callable[[Settings], web.Application],
    mirror_settings: Callable[..., Settings],
    upstream: FakeUpstream,
    token_file: Path,
) -> Any:
    settings = mirror_settings(upstream, auth_tokens=token_file)
    return await aiohttp_client(mirror_app(settings))


async def test_server_requires_a_token_and_records_who(
    aiohttp_client: AiohttpClient,
    mirror_app: Callable[[Settings], web.Application],
    mirror_settings: Callable[..., Settings],
    small_upstream: FakeUpstream,
    tmp_path: Path,
) -> None:
    """Without a token: 401 + cargo's challenge; with one: served, and the audit names it."""
    store = TokenStore(tmp_path / "tokens.json")
    token = store.add("alice")
    client = await _auth_client(
        aiohttp_client, mirror_app, mirror_settings, small_upstream, store.path
    )
    path = "/index/" + index_path("itoa")

    config = await client.get("/index/config.json", headers={"Authorization": token})
    assert json.loads(await config.read())["auth-required"] is True
    for headers in ({}, {"Authorization": "cmt_wrong"}, {"Authorization": token + "x"}):
        resp = await client.get(path, headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Cargo")
        body = await resp.text()
        assert token not in body and "cmt_wrong" not in body
    anonymous_config = await client.get("/index/config.json")
    assert anonymous_config.status == 401  # cargo retries config.json with its token
    assert (await client.get("/healthz")).status == 200

    ok = await client.get(path, headers={"Authorization": token})
    assert ok.status == 200
    client.app[HANDLERS].core.gate.audit.flush()
    audit_text = "".join(p.read_text() for p in (tmp_path / "cache" / "audit").glob("*.jsonl"))
    assert "alice" in audit_text
    assert token not in audit_text


async def test_revoked_token_is_refused_by_a_running_server(
    aiohttp_client: AiohttpClient,
    mirror_app: Callable[[Settings], web.Application],
    mirror_settings: Callable[..., Settings],
    small_upstream: FakeUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(token_file, "RELOAD_CHECK_SECONDS", 0.0)
    store = TokenStore(tmp_path / "tokens.json")
    token = store.add("bob")
    client = await _auth_client(
        aiohttp_client, mirror_app, mirror_settings, small_upstream, store.path
    )
    path = "/index/" + index_path("ryu")
    assert (await client.get(path, headers={"Authorization": token})).status == 200
    store.revoke("bob")
    assert (await client.get(path, headers={"Authorization": token})).status == 401


async def test_a_token_file_broken_while_serving_refuses_everyone_with_503(
    mirror_client: MirrorClient,
    small_upstream: FakeUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The operator removes a token by hand and leaves invalid JSON: through the front door
    and the handlers alike, every request gets a clear 503 (no connection dropped with a
    `Fatal error on transport`, no old token let in), until the file is valid again."""
    monkeypatch.setattr(token_file, "RELOAD_CHECK_SECONDS", 0.0)
    store = TokenStore(tmp_path / "tokens.json")
    kept, removed = store.add("kept"), store.add("removed")
    client = await mirror_client(small_upstream, fresh_connections=True, auth_tokens=store.path)
    index = "/index/" + index_path("itoa")
    download = f"/api/v1/crates/itoa/{small_upstream.registry.versions('itoa')[-1]}/download"
    for target in (index, index, download, download):  # the second of each is prepared
        resp = await client.get(target, headers={"Authorization": kept})
        assert resp.status == 200
    assert resp.headers["Server"] == "crate-mirror"  # the front door answered it

    data = json.loads(store.path.read_text())
    data["tokens"] = [t for t in data["tokens"] if t["name"] != "removed"]
    store.path.write_text(json.dumps(data)[:-1] + ",}")  # the trailing comma
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        for token in (kept, removed, None):
            for target in (index, download, "/index/config.json"):
                headers = {"Authorization": token} if token else {}
                resp = await client.get(target, headers=headers)
                body = await resp.text()
                assert resp.status == 503, (target, body)
                assert "token file is invalid" in body
                assert kept not in body and removed not in body
    assert [r.getMessage() for r in caplog.records] == []  # no `Fatal error on transport`
    assert (await client.get("/healthz")).status == 200  # alive, only refusing

    store.path.write_text(json.dumps(data))
    assert (await client.get(index, headers={"Authorization": kept})).status == 200
    assert (await client.get(index, headers={"Authorization": removed})).status == 401


async def test_a_token_file_that_is_not_there_is_said_at_start(
    aiohttp_client: AiohttpClient,
    mirror_app: Callable[[Settings], web.Application],
    mirror_settings: Callable[..., Settings],
    small_upstream: FakeUpstream,
    tmp_path: Path,
) -> None:
    """Fail closed, as before (every request 401), and now one line says why."""
    missing = tmp_path / "no-tokens.json"
    with capture_logs() as logs:
        client = await _auth_client(
            aiohttp_client, mirror_app, mirror_settings, small_upstream, missing
        )
    said = [e for e in logs if e["event"] == "tokens.file_missing"]
    assert said and said[0]["file"] == str(missing) and said[0]["log_level"] == "warning"
    assert (await client.get("/index/" + index_path("itoa"))).status == 401
