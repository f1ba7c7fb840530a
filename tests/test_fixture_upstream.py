"""The fake crates.io: sparse index with conditional requests, downloads, faults, request log."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict
from yarl import URL

from mirror.index import etag_of
from tests.cargo_project import CargoProject
from tests.fixtures.registry import Dep, Registry
from tests.fixtures.upstream import FakeUpstream

E2E_DEPS: dict[str, str | dict[str, object]] = {
    "serde": {"version": "1", "features": ["derive"]},
    "serde_json": "1",
    "rust_decimal": "1",
    "rand": "0.8",
}


async def get(
    url: str, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, bytes, CIMultiDict[str]]:
    """One GET on a fresh connection (no pooled-connection retries blur the fault counts)."""
    connector = aiohttp.TCPConnector(force_close=True)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session,
        session.get(URL(url, encoded=True), headers=headers or {}) as resp,
    ):
        return resp.status, await resp.read(), CIMultiDict(resp.headers)


async def test_config_json_points_downloads_at_the_crates_api(upstream: FakeUpstream) -> None:
    """config.json's dl is crates.io-style, so cargo appends /{crate}/{version}/download."""
    status, body, _ = await get(upstream.url + "/config.json")
    assert status == 200
    assert body == f'{{"dl": "{upstream.url}/api/v1/crates", "api": "{upstream.url}"}}'.encode()


async def test_index_file_served_with_etag_and_304s(upstream: FakeUpstream) -> None:
    """ETag and Last-Modified are sent; either validator gets 304 until the file changes."""
    url = upstream.url + "/se/rd/serde"
    status, body, headers = await get(url)
    assert status == 200 and body == upstream.registry.read_index("serde")
    assert headers["ETag"] == etag_of(body)
    assert (await get(url, {"If-None-Match": headers["ETag"]}))[0] == 304
    assert (await get(url, {"If-Modified-Since": headers["Last-Modified"]}))[0] == 304
    assert (await get(url, {"If-None-Match": '"other"'}))[0] == 200
    upstream.registry.yank("serde", upstream.registry.versions("serde")[0])
    status, new_body, new_headers = await get(url, {"If-None-Match": headers["ETag"]})
    assert status == 200 and new_body != body and new_headers["ETag"] != headers["ETag"]
    status, _, _ = await get(url, {"If-Modified-Since": headers["Last-Modified"]})
    assert status == 200


@pytest.mark.parametrize(
    "path",
    ["/no/su/nosuchcrate", "/se/rd/../rd/serde", "/SE/RD/SERDE", "/se/serde", "/api/v1/x"],
)
async def test_unknown_or_malformed_paths_are_404(upstream: FakeUpstream, path: str) -> None:
    """Unknown crates, traversal attempts and wrong shapes are 404, like crates.io."""
    assert (await get(upstream.url + path))[0] == 404


async def test_download_serves_the_indexed_crate(upstream: FakeUpstream) -> None:
    """The download's sha256 is the index cksum; an unknown version is 404."""
    version = upstream.registry.versions("itoa")[0]
    status, body, _ = await get(f"{upstream.url}/api/v1/crates/itoa/{version}/download")
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == upstream.registry.entries("itoa")[0]["cksum"]
    assert (await get(f"{upstream.url}/api/v1/crates/itoa/9.9.9/download"))[0] == 404


async def test_dl_template_with_markers(registry: Registry) -> None:
    """A marker template serves only URLs whose prefix and checksum belong to the crate."""
    template = "/files/{prefix}/{lowerprefix}/{crate}/{version}/{sha256-checksum}.crate"
    entry = registry.entries("serde")[0]
    with FakeUpstream(registry, dl_template=template).in_thread() as up:
        status, body, _ = await get(up.url + "/config.json")
        assert f'"dl": "{up.url}{template}"'.encode() in body
        good = f"{up.url}/files/se/rd/se/rd/serde/{entry['vers']}/{entry['cksum']}.crate"
        status, body, _ = await get(good)
        assert status == 200 and hashlib.sha256(body).hexdigest() == entry["cksum"]
        bad_sha = good.replace(entry["cksum"], "0" * 64)
        assert (await get(bad_sha))[0] == 404
        assert (await get(good.replace("/se/rd/se/rd/", "/xx/rd/se/rd/")))[0] == 404
    with pytest.raises(ValueError):
        FakeUpstream(registry, dl_template="/no/markers")


async def test_error_and_rate_limit_faults_then_recovery(upstream: FakeUpstream) -> None:
    """`times` limits a fault; 5xx and 429 + Retry-After come back before normal service."""
    url = upstream.url + "/se/rd/serde"
    upstream.faults.add("error", match="/serde", times=1, status=502)
    upstream.faults.add("rate_limit", match="/serde", times=1, retry_after=7)
    assert (await get(upstream.url + "/it/oa/itoa"))[0] == 200  # path does not match
    assert (await get(url))[0] == 502
    status, _, headers = await get(url)
    assert status == 429 and headers["Retry-After"] == "7"
    assert (await get(url))[0] == 200


async def test_delay_and_stall(upstream: FakeUpstream) -> None:
    """delay answers late but fully; stall sends half a body and hangs past the timeout."""
    url = upstream.url + "/se/rd/serde"
    upstream.faults.add("delay", times=1, seconds=0.3)
    start = time.monotonic()
    status, body, _ = await get(url)
    assert status == 200 and body == upstream.registry.read_index("serde")
    assert time.monotonic() - start >= 0.3
    upstream.faults.add("stall", times=1, seconds=5)
    with pytest.raises(asyncio.TimeoutError):
        await get(url, timeout=0.5)


async def test_reset_truncate_and_wrong_length_break_the_transfer(upstream: FakeUpstream) -> None:
    """Each transport-level fault surfaces as a client error, never as a clean body."""
    version = upstream.registry.versions("serde")[0]
    url = f"{upstream.url}/api/v1/crates/serde/{version}/download"
    for kind in ("reset", "truncate", "wrong_length"):
        # No `times`: aiohttp silently retries a request whose connection was reset once.
        upstream.faults.add(kind)
        with pytest.raises(aiohttp.ClientError):
            await get(url)
        upstream.faults.clear()
        assert upstream.requests.all()[-1].fault == kind
    assert (await get(url))[0] == 200
    statuses = {r.fault: r.status for r in upstream.requests.all()}
    assert statuses == {"reset": 0, "truncate": 200, "wrong_length": 200, None: 200}


async def test_short_content_length_is_an_error_for_aiohttp(upstream: FakeUpstream) -> None:
    """A Content-Length below the real size leaves bytes after the declared end; aiohttp
    rejects that (a lenient client would silently keep a cut body: only the cksum helps)."""
    version = upstream.registry.versions("itoa")[0]
    upstream.faults.add("wrong_length", times=1, delta=-10)
    with pytest.raises(aiohttp.ClientResponseError):
        await get(f"{upstream.url}/api/v1/crates/itoa/{version}/download")


async def test_garbage_index_is_served_verbatim(upstream: FakeUpstream) -> None:
    """write_index lets a test make upstream serve any bytes, e.g. a broken index file."""
    upstream.registry.write_index("ryu", b"not json\n")
    assert (await get(upstream.url + "/ry/u/ryu"))[0] == 404  # wrong path shape for 3 letters
    status, body, _ = await get(upstream.url + "/3/r/ryu")
    assert status == 200 and body == b"not json\n"


async def test_flip_corrupts_exactly_one_byte(upstream: FakeUpstream) -> None:
    """flip keeps the length and status but changes the bytes, so only a cksum catches it."""
    version = upstream.registry.versions("serde")[0]
    url = f"{upstream.url}/api/v1/crates/serde/{version}/download"
    good = upstream.registry.crate_bytes("serde", version)
    upstream.faults.add("flip", times=1, offset=10)
    status, body, _ = await get(url)
    assert status == 200 and len(body) == len(good)
    assert [i for i in range(len(good)) if body[i] != good[i]] == [10]


async def test_missing_etag_ignores_validators(upstream: FakeUpstream) -> None:
    """Without validators the upstream can only answer 200 with the whole file."""
    url = upstream.url + "/se/rd/serde"
    etag = (await get(url))[2]["ETag"]
    upstream.faults.add("missing_etag", match="serde")
    status, _, headers = await get(url, {"If-None-Match": etag})
    assert status == 200 and "ETag" not in headers and "Last-Modified" not in headers
    upstream.faults.clear()
    assert (await get(url, {"If-None-Match": etag}))[0] == 304


async def test_random_faults_repeat_for_the_same_seed(registry: Registry) -> None:
    """A fixed seed gives the same fault sequence for the same request sequence."""
    outcomes = []
    for _ in range(2):
        with FakeUpstream(registry).in_thread() as up:
            up.faults.randomize(seed=42, rate=0.5, kinds=["error", "rate_limit"])
            for _ in range(20):
                await get(up.url + "/it/oa/itoa")
            outcomes.append([r.status for r in up.requests.all()])
    assert outcomes[0] == outcomes[1]
    assert {200, 503, 429} == set(outcomes[0])


async def test_explicit_faults_win_over_random_ones(upstream: FakeUpstream) -> None:
    """An explicit rule applies before the random draw, so a test can pin one outcome."""
    upstream.faults.randomize(seed=1, rate=1.0, kinds=["error"])
    upstream.faults.add("rate_limit", match="itoa", times=1)
    assert (await get(upstream.url + "/it/oa/itoa"))[0] == 429
    assert (await get(upstream.url + "/it/oa/itoa"))[0] == 503
    upstream.faults.clear()
    assert (await get(upstream.url + "/it/oa/itoa"))[0] == 200


async def test_requests_are_counted_by_path_and_status(upstream: FakeUpstream) -> None:
    """The log lets a test assert "exactly one upstream fetch" of a file."""
    etag = (await get(upstream.url + "/se/rd/serde"))[2]["ETag"]
    await get(upstream.url + "/se/rd/serde", {"If-None-Match": etag})
    await get(upstream.url + "/no/su/nosuch")
    assert upstream.requests.count("/se/rd/serde") == 2
    assert upstream.requests.count("/se/rd/serde", status=200) == 1
    assert upstream.requests.count(status=304) == 1
    assert upstream.requests.count(status=404) == 1
    upstream.requests.clear()
    assert len(upstream.requests) == 0


async def test_popular_crates_listing_pages(registry: Registry) -> None:
    """crates.io's listing shape, sorted by downloads, paged; per_page over 100 is 400."""
    popular = [("serde", 50), ("rand", 90), ("syn", 70), ("libc", 60)]
    with FakeUpstream(registry, popular=popular).in_thread() as up:
        base = up.url + "/api/v1/crates?sort=downloads&per_page=3"
        _, body1, _ = await get(base + "&page=1")
        _, body2, _ = await get(base + "&page=2")
        page1, page2 = json.loads(body1), json.loads(body2)
        assert [c["name"] for c in page1["crates"]] == ["rand", "syn", "libc"]
        assert page2["crates"] == [{"id": "serde", "name": "serde", "downloads": 50}]
        assert page1["meta"]["total"] == 4 and page2["meta"]["next_page"] is None
        assert (await get(up.url + "/api/v1/crates?per_page=101"))[0] == 400


async def test_runs_on_the_callers_loop(registry: Registry) -> None:
    """`async with` serves on the running loop for tests whose client shares it."""
    async with FakeUpstream(registry) as up:
        assert (await get(up.url + "/it/oa/itoa"))[0] == 200


def test_runs_as_a_subprocess(registry: Registry) -> None:
    """`python -m tests.fixtures.upstream` prints its URL and serves until terminated."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.upstream", "--registry", str(registry.root)],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        status, _, _ = asyncio.run(get(url + "/it/oa/itoa"))
        assert status == 200
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


@pytest.mark.e2e
def test_real_cargo_resolves_fetches_and_builds(upstream: FakeUpstream, tmp_path: Path) -> None:
    """cargo resolves, downloads each crate once, and builds offline from the fake upstream."""
    project = CargoProject(tmp_path, upstream.url, E2E_DEPS)
    for step in (project.generate_lockfile, project.fetch, project.build_offline):
        result = step()
        assert result.returncode == 0, result.stderr
    locked = project.lock_versions()
    assert {"serde", "serde_derive", "serde_json", "rust_decimal", "rand", "syn"} <= set(locked)
    downloads = [r.path for r in upstream.requests.all() if r.path.endswith("/download")]
    assert len(downloads) == len(set(downloads)) > 0
    assert all(r.status == 200 for r in upstream.requests.all())
    # A fresh CARGO_HOME downloads again; a warm one (same home) fetches nothing new.
    before = len(downloads)
    assert project.fetch().returncode == 0
    assert upstream.requests.count("/download") == before
    project.wipe_cargo_home()
    assert project.fetch().returncode == 0
    assert upstream.requests.count("/download") == 2 * before


def test_cargo_project_is_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Source replacement points at the given URL; outside registry settings are scrubbed."""
    monkeypatch.setenv("CARGO_REGISTRIES_CRATES_IO_PROTOCOL", "git")
    monkeypatch.setenv("CARGO_HOME", "/somewhere/else")
    project = CargoProject(tmp_path, "http://127.0.0.1:1/", {"serde": {"version": "1"}})
    config = (project.cargo_home / "config.toml").read_text()
    assert 'replace-with = "mirror"' in config
    assert 'registry = "sparse+http://127.0.0.1:1/"' in config
    env = project.env()
    assert env["CARGO_HOME"] == str(project.cargo_home)
    assert env["CARGO_TARGET_DIR"] == str(tmp_path / "target")
    assert "CARGO_REGISTRIES_CRATES_IO_PROTOCOL" not in env
    manifest = (project.dir / "Cargo.toml").read_text()
    assert '"serde" = { "version" = "1" }' in manifest
    (project.cargo_home / "registry").mkdir()
    project.registry_url = "http://127.0.0.1:2"
    project.wipe_cargo_home()
    assert not (project.cargo_home / "registry").exists()
    assert "sparse+http://127.0.0.1:2/" in (project.cargo_home / "config.toml").read_text()


@pytest.mark.e2e
def test_real_cargo_builds_a_synthetic_crate(upstream: FakeUpstream, tmp_path: Path) -> None:
    """A crate published with add_crate (build.rs, renamed optional target dep, dep: feature)
    resolves and builds, and its build script really runs."""
    upstream.registry.add_crate(
        "evil-update",
        "0.2.0",
        {
            "build.rs": b'fn main() { println!("cargo:rustc-env=EVIL=ran"); }\n',
            "src/lib.rs": b'pub const EVIL: &str = env!("EVIL");\n',
        },
        deps=[Dep("sys", "^0.2", optional=True, target="cfg(unix)", package="libc")],
        features={"native": ["dep:sys"]},
    )
    project = CargoProject(
        tmp_path, upstream.url, {"evil-update": {"version": "0.2", "features": ["native"]}}
    )
    (project.dir / "src" / "main.rs").write_text(
        'fn main() { assert_eq!(evil_update::EVIL, "ran"); }\n'
    )
    for step in (project.generate_lockfile, project.fetch, project.build_offline):
        result = step()
        assert result.returncode == 0, result.stderr
    assert set(project.lock_versions()) == {"evil-update", "libc"}
    assert project.run("run", "--offline", "-q").returncode == 0
