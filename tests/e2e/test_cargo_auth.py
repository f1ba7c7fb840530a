"""Real cargo 1.95 against an auth-required mirror: how it sends tokens, and that we check them.

What cargo needs (found with these tests; see docs/reliability.md, "Client tokens"):
* the mirror as a *registry* (`[registries.mirror] index = "sparse+URL"`) that replaces
  crates.io (`[source.crates-io] replace-with = "mirror"`); a `[source.mirror] registry = ...`
  replacement gets no token at all;
* a credential provider (`[registry] global-credential-providers = ["cargo:token"]`), else
  cargo refuses: "authenticated registries require a credential-provider to be configured";
* the token in CARGO_REGISTRIES_MIRROR_TOKEN (or credentials.toml), sent as the raw value of
  `Authorization` (no "Bearer") on config.json, index and download requests, after the first
  config.json answered 401.

The first tests put a small middleware in front of the real mirror app that does what the
server's own check does, using mirror.sources.tokens (so cargo's side is tested on its own);
so that every request meets that middleware, the front door hands all of them to aiohttp
(`_through_the_middleware`). The last test runs the real server with `auth_tokens` set.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from mirror.app import create_app
from mirror.config import Settings
from mirror.sources.tokens import TokenStore
from tests.cargo_project import CargoProject
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess, free_port
from tests.scenarios.test_fuzz_inputs import serving

pytestmark = pytest.mark.e2e

DEPS = {"itoa": "1", "ryu": "1"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _auth_harness(app: web.Application, tokens: TokenStore, seen: list[str | None]) -> None:
    """What the server hook must do: challenge without a valid token, advertise auth-required."""

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        seen.append(header)
        if request.path != "/healthz" and tokens.authenticate(header) is None:
            return web.Response(
                status=401,
                headers={"WWW-Authenticate": 'Cargo login_url="https://mirror.example/tokens"'},
                text="crate-mirror: a valid token is required (ask for one with "
                "`crate-mirror token add`)\n",
            )
        response = await handler(request)
        if request.path == "/index/config.json" and isinstance(response, web.Response):
            config = json.loads(response.body)  # type: ignore[arg-type]
            config["auth-required"] = True
            response.body = json.dumps(config).encode()
        return response

    app.middlewares.append(require_token)


def _project(tmp_path: Path, index_url: str) -> CargoProject:
    project = CargoProject(tmp_path, index_url, DEPS)
    (project.cargo_home / "config.toml").write_text(
        "[source.crates-io]\n"
        'replace-with = "mirror"\n\n'
        "[registries.mirror]\n"
        f'index = "sparse+{index_url.rstrip("/")}/"\n\n'
        "[registry]\n"
        'global-credential-providers = ["cargo:token"]\n\n'
        "[net]\nretry = 0\n"
    )
    return project


def _cargo(
    project: CargoProject, token: str | None, *args: str
) -> subprocess.CompletedProcess[str]:
    env = project.env()
    if token is not None:
        env["CARGO_REGISTRIES_MIRROR_TOKEN"] = token
    return subprocess.run(
        ["cargo", *args], cwd=project.dir, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _through_the_middleware(monkeypatch: pytest.MonkeyPatch) -> None:
    """The front door answers cargo's routes itself, past any aiohttp middleware: here it
    must hand every request over (the separate server process of the last test is not
    affected)."""
    monkeypatch.setattr("mirror.http.front.cargo_route", lambda target: None)


@pytest.fixture
def tokens(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "tokens.json")


def test_cargo_sends_its_token_and_fetches(
    small_registry: Registry,
    mirror_settings: Callable[..., Settings],
    tokens: TokenStore,
    tmp_path: Path,
) -> None:
    token = tokens.add("ci-runner")
    seen: list[str | None] = []
    with FakeUpstream(small_registry).in_thread() as upstream:
        port = free_port()
        app = create_app(mirror_settings(upstream, public_url=f"http://127.0.0.1:{port}"))
        _auth_harness(app, tokens, seen)
        with serving(app, port):
            url = f"http://127.0.0.1:{port}/index/"
            project = _project(tmp_path, url)
            locked = _cargo(project, token, "generate-lockfile")
            assert locked.returncode == 0, locked.stderr
            fetched = _cargo(project, token, "fetch")
            assert fetched.returncode == 0, fetched.stderr
    assert set(project.lock_versions()) >= {"itoa", "ryu"}
    assert seen[0] is None  # the first config.json goes out without a token ...
    assert all(h == token for h in seen[1:])  # ... then every request carries it, raw
    assert len(seen) >= 5  # config.json twice, two index files, two downloads


@pytest.mark.parametrize("token", [None, "cmt_not-a-real-token"])
def test_cargo_without_a_valid_token_is_refused(
    small_registry: Registry,
    mirror_settings: Callable[..., Settings],
    tokens: TokenStore,
    tmp_path: Path,
    token: str | None,
) -> None:
    """Refused, with cargo saying why; the server's reply never echoes the token."""
    tokens.add("someone-else")
    with FakeUpstream(small_registry).in_thread() as upstream:
        port = free_port()
        app = create_app(mirror_settings(upstream, public_url=f"http://127.0.0.1:{port}"))
        _auth_harness(app, tokens, [])
        with serving(app, port):
            project = _project(tmp_path, f"http://127.0.0.1:{port}/index/")
            result = _cargo(project, token, "generate-lockfile")
            downloads = upstream.requests.count("download")
    assert result.returncode != 0
    if token is None:
        assert "no token found for `mirror`" in result.stderr
    else:
        assert "token rejected for `mirror`" in result.stderr
        assert "401" in result.stderr and "a valid token is required" in result.stderr
        assert result.stderr.count(token) == 0
    assert downloads == 0


def test_real_server_with_auth_tokens(
    small_registry: Registry, tokens: TokenStore, tmp_path: Path
) -> None:
    """The shipped server: cargo with a token builds its lock file; the audit names the token
    holder; the token appears in no log and no audit line."""
    token = tokens.add("alice")
    cache = tmp_path / "cache"
    env = {"CRATE_MIRROR_AUTH_TOKENS": str(tokens.path)}
    with FakeUpstream(small_registry).in_thread() as upstream:
        mirror = MirrorProcess(cache, upstream=upstream.url + "/", env=env).start()
        try:
            project = _project(tmp_path, mirror.index_url)
            assert _cargo(project, None, "generate-lockfile").returncode != 0
            ok = _cargo(project, token, "fetch")
            assert ok.returncode == 0, ok.stderr
        finally:
            mirror.stop()
        log = mirror.log()
    audit = "".join(p.read_text() for p in (cache / "audit").glob("*.jsonl"))
    assert "alice" in audit
    assert token not in audit and token not in log
