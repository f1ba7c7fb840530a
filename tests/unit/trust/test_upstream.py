"""Attacks on a TUF-signed upstream, each rejected by UpstreamVerifier with nothing cached."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from mirror.errors import TrustError
from mirror.index import index_path
from mirror.store import CachedIndex, FilesystemStore
from mirror.trust._tuf import CryptoSigner
from mirror.trust.settings import TufUpstreamSettings
from mirror.trust.upstream import UpstreamVerifier
from tests.fixtures.tuf_repo import SignedUpstream, static_app

CRATES = ("serde", "rand", "libc", "syn", "itoa")


def index_body(name: str, versions: tuple[str, ...] = ("1.0.0", "1.0.1")) -> bytes:
    lines = []
    for vers in versions:
        cksum = hashlib.sha256(f"{name}-{vers}".encode()).hexdigest()
        line = {"name": name, "vers": vers, "deps": [], "cksum": cksum, "features": {}}
        lines.append(json.dumps(line, separators=(",", ":")).encode())
    return b"\n".join(lines) + b"\n"


@dataclass
class Env:
    upstream: SignedUpstream
    base_url: str
    settings: TufUpstreamSettings
    store: FilesystemStore
    requests: list[str]

    def verifier(self, **changes: object) -> UpstreamVerifier:
        return UpstreamVerifier(replace(self.settings, **changes))  # type: ignore[arg-type]

    async def fetch_and_cache(self, verifier: UpstreamVerifier, name: str) -> None:
        """What the server does: fetch, verify, and only then cache."""
        path = index_path(name)
        async with aiohttp.ClientSession() as s, s.get(f"{self.base_url}index/{path}") as r:
            body = await r.read()
        await verifier.verify_index(path, body)
        self.store.write_index(name, CachedIndex(body, None, None, 0.0))


AiohttpServer = Callable[[web.Application], Awaitable[object]]


@pytest.fixture
async def env(tmp_path: Path, aiohttp_server: AiohttpServer) -> AsyncIterator[Env]:
    upstream = SignedUpstream(
        tmp_path / "upstream", {index_path(n): index_body(n) for n in CRATES}, root_threshold=2
    )
    requests: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: object) -> web.StreamResponse:
        requests.append(request.path)
        return await handler(request)  # type: ignore[operator, no-any-return]

    app = static_app(upstream.dir)
    app.middlewares.append(record)
    server = await aiohttp_server(app)
    base = str(server.make_url("/"))  # type: ignore[attr-defined]
    pinned = tmp_path / "pinned-root.json"
    pinned.write_bytes(upstream.root_versions[1])
    settings = TufUpstreamSettings(
        metadata_url=base + "metadata/",
        trusted_root=pinned,
        metadata_dir=tmp_path / "client-metadata",
        refresh_interval=3600,
        min_forced_refresh_gap=0.0,
    )
    yield Env(upstream, base, settings, FilesystemStore(tmp_path / "cache"), requests)


async def expect_rejected(env: Env, verifier: UpstreamVerifier, name: str, reason: str) -> None:
    with pytest.raises(TrustError, match=reason):
        await env.fetch_and_cache(verifier, name)
    assert env.store.read_index(name) is None, "a rejected index file must not be cached"


async def test_signed_index_file_is_verified_and_cached(env: Env) -> None:
    """A correctly signed index file passes and reports when its verification expires."""
    verifier = env.verifier()
    await env.fetch_and_cache(verifier, "serde")
    assert env.store.read_index("serde") is not None
    expires = await verifier.verify_index(index_path("rand"), index_body("rand"))
    assert datetime.now(UTC) < expires <= datetime.now(UTC) + timedelta(days=1)


async def test_tampered_index_file_is_rejected(env: Env) -> None:
    """A CDN serving different bytes than were signed (e.g. a changed cksum) is caught."""
    env.upstream.tamper_index(index_path("serde"), index_body("serde", ("1.0.0", "9.9.9")))
    await expect_rejected(env, env.verifier(), "serde", "length or hash mismatch")


async def test_swapped_index_files_are_rejected(env: Env) -> None:
    """Mix-and-match: rand's validly signed file served as serde's does not verify."""
    env.upstream.swap_index(index_path("serde"), index_path("rand"))
    await expect_rejected(env, env.verifier(), "serde", "length or hash mismatch")
    await expect_rejected(env, env.verifier(), "rand", "length or hash mismatch")


async def test_timestamp_signed_with_wrong_key_is_rejected(env: Env) -> None:
    """A stolen-looking key that root never delegated to cannot sign timestamps."""
    env.upstream.resign_timestamp_with_wrong_key()
    await expect_rejected(env, env.verifier(), "serde", "signature threshold not met")


async def test_root_signed_below_threshold_is_rejected(env: Env) -> None:
    """Root needs 2 of 2 signatures: a new root signed by one old key is refused."""
    up = env.upstream
    new_keys = [CryptoSigner.generate_ed25519(), CryptoSigner.generate_ed25519()]
    old = up.signers["root"]
    up.rotate_root(new_keys, threshold=2, sign_old=False)
    up.sign(up.root, "root", [*new_keys, old[0]])  # one old signature of two required
    up.write_root()
    await expect_rejected(env, env.verifier(), "serde", "signature threshold not met")


async def test_root_rotation_signed_by_old_and_new_keys_is_accepted(env: Env) -> None:
    """Key rotation: root v2 signed by both key sets is trusted, and v3 chains from it."""
    verifier = env.verifier()
    await env.fetch_and_cache(verifier, "serde")
    up = env.upstream
    up.rotate_root([CryptoSigner.generate_ed25519()], threshold=1, sign_old=True)
    up.rotate_root([CryptoSigner.generate_ed25519()], threshold=1, sign_old=True)
    await verifier.refresh(force=True)
    await env.fetch_and_cache(verifier, "rand")
    assert (env.settings.metadata_dir / "root_history" / "3.root.json").is_file()


async def test_expired_timestamp_is_rejected(env: Env) -> None:
    """Freeze attack: a mirror replaying an expired timestamp is refused."""
    env.upstream.expire_timestamp()
    await expect_rejected(env, env.verifier(), "serde", "expired")


async def test_metadata_past_expiry_on_a_frozen_clock_is_rejected(env: Env) -> None:
    """Freeze attack seen by the verifier's own clock: trusted metadata stops being usable."""
    now = [datetime.now(UTC)]
    verifier = UpstreamVerifier(env.settings, clock=lambda: now[0])
    await env.fetch_and_cache(verifier, "serde")
    now[0] += timedelta(days=2)  # the 1-day timestamp is long expired; upstream is frozen
    await expect_rejected(env, verifier, "rand", "expired")


async def test_timestamp_rollback_is_rejected(env: Env) -> None:
    """Rollback: after seeing timestamp v3, an older v1 is refused."""
    env.upstream.update_index(index_path("serde"), index_body("serde", ("1.0.0", "1.0.2")))
    env.upstream.update_index(index_path("rand"), index_body("rand", ("1.0.0", "1.0.2")))
    verifier = env.verifier()
    await env.fetch_and_cache(verifier, "serde")
    env.upstream.rollback_timestamp(1)
    with pytest.raises(TrustError, match="rollback"):
        await verifier.refresh(force=True)
    await expect_rejected(env, verifier, "libc", "rollback")


async def test_snapshot_rollback_is_rejected(env: Env) -> None:
    """Rollback: a new timestamp pointing at an older snapshot version is refused."""
    env.upstream.update_index(index_path("serde"), index_body("serde", ("1.0.0", "1.0.2")))
    await env.fetch_and_cache(env.verifier(), "serde")
    env.upstream.rollback_snapshot()
    await expect_rejected(env, env.verifier(), "rand", "rollback")


async def test_targets_rollback_is_rejected(env: Env) -> None:
    """Rollback: a snapshot listing an older targets version than already trusted."""
    env.upstream.bump_targets()
    await env.fetch_and_cache(env.verifier(), "serde")
    env.upstream.rollback_targets()
    await expect_rejected(env, env.verifier(), "rand", "rollback")


async def test_oversized_timestamp_is_rejected(env: Env) -> None:
    """Endless data: a timestamp larger than the limit is cut off, not buffered."""
    env.upstream.inflate_timestamp(200_000)
    await expect_rejected(env, env.verifier(), "serde", "endless data")


async def test_newly_published_crate_triggers_one_coalesced_refresh(env: Env) -> None:
    """A target unknown to the last refresh refreshes once, shared by concurrent requests."""
    verifier = env.verifier()
    await verifier.refresh(force=True)
    env.upstream.update_index(index_path("zerocopy"), index_body("zerocopy"))
    env.requests.clear()
    body = index_body("zerocopy")
    await asyncio.gather(*(verifier.verify_index(index_path("zerocopy"), body) for _ in range(8)))
    assert env.requests.count("/metadata/timestamp.json") == 1


async def test_target_missing_upstream_is_rejected(env: Env) -> None:
    """An index file upstream never signed is not served."""
    with pytest.raises(TrustError, match="not listed"):
        await env.verifier().verify_index(index_path("notsigned"), index_body("notsigned"))


async def test_failed_refresh_after_attack_clears_trust(env: Env) -> None:
    """Once upstream serves bad metadata, even previously fine files stop verifying."""
    verifier = env.verifier()
    await env.fetch_and_cache(verifier, "serde")
    env.upstream.resign_timestamp_with_wrong_key()
    with pytest.raises(TrustError):
        await verifier.refresh(force=True)
    with pytest.raises(TrustError, match="signature threshold"):
        await verifier.verify_index(index_path("serde"), index_body("serde"))


async def test_unreachable_upstream_keeps_unexpired_metadata(env: Env, tmp_path: Path) -> None:
    """A network failure is not an attack: metadata stays usable until it expires."""
    verifier = env.verifier()
    await verifier.refresh(force=True)
    (env.upstream.metadata_dir / "timestamp.json").unlink()  # upstream answers 404
    with pytest.raises(TrustError, match="HTTP 404"):
        await verifier.refresh(force=True)
    await verifier.verify_index(index_path("serde"), index_body("serde"))


async def test_verify_crate_index_adapter(env: Env) -> None:
    """The index cache's verifier signature: crate name in, unix expiry out."""
    until = await env.verifier().verify_crate_index("serde", index_body("serde"))
    assert until > datetime.now(UTC).timestamp()


def test_settings_parse_units_and_sections(tmp_path: Path) -> None:
    """Durations with units, bins and signer URIs are read into typed settings."""
    from mirror.trust.settings import TufSettings

    root = tmp_path / "root.json"
    root.write_text("{}")
    s = TufSettings.from_mapping(
        {
            "upstream": {
                "metadata_url": "https://x/tuf/",
                "trusted_root": str(root),
                "metadata_dir": str(tmp_path / "md"),
                "refresh_interval": "5m",
            },
            "repository": {
                "dir": str(tmp_path / "r"),
                "bins": 16,
                "expiry": {"timestamp": "12h", "root": "2w"},
                "signers": {"timestamp": "gcpkms:projects/p/keys/k"},
            },
        },
        "mirror.yaml",
    )
    assert s.upstream is not None and s.upstream.refresh_interval == 300
    assert s.repository is not None and s.repository.bins == 16
    assert s.repository.expiry.timestamp == timedelta(hours=12)
    assert s.repository.expiry.root == timedelta(days=14)
    assert s.repository.signer_uri("timestamp") == "gcpkms:projects/p/keys/k"
    assert s.repository.signer_uri("snapshot").endswith("keys/snapshot.pem")


def test_settings_report_every_problem_with_its_field() -> None:
    """Bad values are reported together, each naming its tuf.* field."""
    from mirror.errors import ConfigError
    from mirror.trust.settings import TufSettings

    with pytest.raises(ConfigError) as info:
        TufSettings.from_mapping(
            {
                "upstream": {
                    "metadata_url": "ftp://x",
                    "trusted_root": "/nonexistent",
                    "metadata_dir": "md",
                    "refresh_interval": "soon",
                },
                "repository": {"dir": "r", "bins": 12, "expiry": {"timestamp": "-1d"}},
                "extra": 1,
            },
            "mirror.yaml",
        )
    fields = {p.field for p in info.value.problems}
    assert fields == {
        "tuf.upstream.metadata_url",
        "tuf.upstream.trusted_root",
        "tuf.upstream.refresh_interval",
        "tuf.repository.bins",
        "tuf.repository.expiry.timestamp",
        "tuf.extra",
    }
    # A value that is there but not a URL is not "required" (it was said so).
    url = next(p for p in info.value.problems if p.field == "tuf.upstream.metadata_url")
    assert url.message == "expected the http(s) URL of the upstream's TUF metadata, got 'ftp://x'"


def test_trusted_root_alone_is_enough_offline_only(tmp_path: Path) -> None:
    """An air-gapped mirror pins a root without metadata_url; an online one must verify."""
    from mirror.errors import ConfigError
    from mirror.trust.settings import TufSettings

    root = tmp_path / "root.json"
    root.write_text("{}")
    section = {"upstream": {"trusted_root": str(root)}}
    offline = TufSettings.from_mapping(section, "offline.yaml", offline=True)
    assert offline.upstream is None and offline.pinned_root == root
    with pytest.raises(ConfigError) as info:
        TufSettings.from_mapping(section, "mirror.yaml")
    fields = {p.field for p in info.value.problems}
    assert fields == {"tuf.upstream.metadata_url", "tuf.upstream.metadata_dir"}
    assert "only an offline mirror" in str(info.value)
    half = {"upstream": {"trusted_root": str(root), "metadata_url": "https://x/tuf/"}}
    with pytest.raises(ConfigError, match="metadata_dir"):
        TufSettings.from_mapping(half, "offline.yaml", offline=True)


async def test_index_file_updated_upstream_triggers_refresh(env: Env) -> None:
    """A newly published version (new bytes, newly signed) verifies after one refresh."""
    verifier = env.verifier()
    await env.fetch_and_cache(verifier, "serde")
    newer = index_body("serde", ("1.0.0", "1.0.1", "1.0.2"))
    env.upstream.update_index(index_path("serde"), newer)
    env.requests.clear()
    await env.fetch_and_cache(verifier, "serde")
    assert env.requests.count("/metadata/timestamp.json") == 1
    cached = env.store.read_index("serde")
    assert cached is not None and cached.body == newer


async def test_bad_upstream_metadata_is_not_refetched_per_request(env: Env) -> None:
    """While upstream serves bad metadata, requests fail fast instead of each refreshing."""
    env.upstream.resign_timestamp_with_wrong_key()
    verifier = env.verifier(min_forced_refresh_gap=60.0)
    for _ in range(5):
        with pytest.raises(TrustError, match="signature threshold"):
            await verifier.verify_index(index_path("serde"), index_body("serde"))
    assert env.requests.count("/metadata/timestamp.json") == 1


async def test_oversized_snapshot_is_rejected(env: Env) -> None:
    """Endless data on a file whose length the timestamp does not pin: cut at the limit."""
    version = env.upstream.snapshot.signed.version
    env.upstream.write(f"{version}.snapshot.json", b"{" + b" " * 100_000 + b"}")
    verifier = env.verifier(max_metadata_bytes=50_000)
    await expect_rejected(env, verifier, "serde", "endless data")


def test_a_download_error_without_a_message_says_what_caused_it() -> None:
    """`tuf-client refresh` of an unreachable URL said "cannot download metadata: "."""
    from tuf.api import exceptions as tuf_errors

    from mirror.errors import TrustError
    from mirror.trust.upstream import trust_errors

    with pytest.raises(TrustError) as info, trust_errors("refreshing upstream TUF metadata"):
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as e:
            raise tuf_errors.DownloadError() from e
    assert str(info.value).endswith(
        "cannot download metadata: ConnectionRefusedError: [Errno 111] Connection refused"
    )
