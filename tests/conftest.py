"""Shared fixtures: a small real-crate registry, the fake upstream, and a mirror in front of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient, TestServer
from aiohttp.web_runner import BaseRunner

from mirror.app import create_app
from mirror.config import Settings, load_settings
from mirror.http.front import MirrorRunner
from tests.fixtures.crates import debian_crate_dir
from tests.fixtures.registry import Registry, build_registry
from tests.fixtures.upstream import FakeUpstream

pytest_plugins = ["tests.fixtures.pytest_plugin"]

SMALL_SET = ("itoa", "ryu", "memchr", "serde", "unicode-ident", "cfg-if")


@pytest.fixture(scope="session")
def small_registry_template(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """A handful of real crates, packed once per session."""
    out = tmp_path_factory.mktemp("small-registry")
    return build_registry(out, [debian_crate_dir(n) for n in SMALL_SET])


@pytest.fixture
def small_registry(small_registry_template: Registry, tmp_path: Path) -> Registry:
    """A private copy each test may change (publish, yank, rewrite)."""
    return small_registry_template.copy_to(tmp_path / "registry")


@pytest.fixture
async def fake_upstream(small_registry: Registry) -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(small_registry) as upstream:
        yield upstream


@pytest.fixture
def mirror_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a mirror with its own cache dir; keyword arguments override."""

    def make(upstream: FakeUpstream | None = None, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "cache_dir": tmp_path / "cache",
            "index_ttl": 60.0,
            "upstream_retries": 1,
            "upstream_read_timeout": 2.0,
            "upstream_connect_timeout": 2.0,
        }
        if upstream is not None:
            values["upstream_index"] = upstream.url + "/"
        values.update(overrides)
        return load_settings(None, env={}, overrides=values)

    return make


@pytest.fixture
def mirror_app() -> Callable[[Settings], web.Application]:
    return create_app


MirrorClient = Callable[..., Awaitable[TestClient[Any, Any]]]


class MirrorTestServer(TestServer):
    """aiohttp's TestServer serving through the front door, as `crate-mirror serve` does."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return MirrorRunner(self.app, **kwargs)


def mirror_server(app: web.Application) -> BaseTestServer:
    return MirrorTestServer(app)


@pytest.fixture
def mirror_client(aiohttp_client: Any, mirror_settings: Callable[..., Settings]) -> MirrorClient:
    """`await mirror_client(upstream, **settings)`: a test client for a mirror app."""

    async def make(upstream: FakeUpstream | None, **overrides: Any) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = await aiohttp_client(
            mirror_server(create_app(mirror_settings(upstream, **overrides)))
        )
        return client

    return make
