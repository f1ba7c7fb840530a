"""Verify index files from a TUF-signed upstream (RFC 3724) with python-tuf's ngclient.

The TUF targets are the sparse index files; each index line carries its `.crate`'s sha256, so
a verified index file verifies every download the server later checks against it.

Two layers, as in ngclient itself:
  * synchronous steps (`open_updater`, `refresh_updater`, `find_target`, `check_target`) that
    translate every python-tuf failure into one `TrustError` naming the attack it indicates.
    The proxy, `crate-mirror tuf-client` and bundle import all go through them.
  * `UpstreamVerifier`, the asyncio front the server calls: it runs ngclient (blocking I/O)
    in a worker thread, one refresh at a time per metadata directory (an asyncio lock within
    the process, an flock across worker processes), with a fresh `Updater` per refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tuf.api import exceptions as tuf_errors

from mirror.errors import TrustError
from mirror.files import exclusive_lock
from mirror.index import index_path
from mirror.trust._tuf import FetcherInterface, TargetFile, Updater, UpdaterConfig
from mirror.trust.settings import TufUpstreamSettings

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def trust_errors(doing: str, source: str = "upstream") -> Iterator[None]:
    """Map python-tuf's exceptions to one TrustError whose message names the attack;
    `source` is where the metadata comes from (upstream, or an imported bundle)."""
    try:
        yield
    except TrustError:
        raise
    except tuf_errors.ExpiredMetadataError as e:
        raise TrustError(f"{doing}: expired metadata (freeze attack or stale mirror): {e}") from e
    except tuf_errors.EqualVersionNumberError as e:
        raise TrustError(f"{doing}: metadata changed without a version bump: {e}") from e
    except tuf_errors.BadVersionNumberError as e:
        raise TrustError(f"{doing}: version rollback: {e}") from e
    except tuf_errors.UnsignedMetadataError as e:
        raise TrustError(f"{doing}: signature threshold not met (wrong or missing key): {e}") from e
    except tuf_errors.LengthOrHashMismatchError as e:
        raise TrustError(f"{doing}: length or hash mismatch (tampered or swapped): {e}") from e
    except tuf_errors.RepositoryError as e:
        raise TrustError(f"{doing}: invalid metadata: {e}") from e
    except tuf_errors.DownloadLengthMismatchError as e:
        raise TrustError(f"{doing}: metadata larger than allowed (endless data): {e}") from e
    except tuf_errors.DownloadHTTPError as e:
        # A bundle's fetcher says which file it lacks; upstream's status is what it said.
        missing = f"upstream answered HTTP {e.status_code}" if source == "upstream" else str(e)
        raise TrustError(f"{doing}: {missing}") from e
    except tuf_errors.DownloadError as e:
        # A refused connection arrives with an empty message; what caused it says why.
        cause = e.__cause__ or e.__context__
        why = str(e) or (f"{type(cause).__name__}: {cause}" if cause else type(e).__name__)
        raise TrustError(f"{doing}: cannot download metadata: {why}") from e
    except OSError as e:
        raise TrustError(f"{doing}: local metadata store failed: {e.strerror or e}") from e
    except ValueError as e:  # malformed root or URL handed to ngclient
        raise TrustError(f"{doing}: {e}") from e


def updater_config(max_metadata_bytes: int, timestamp_max_bytes: int = 16_384) -> UpdaterConfig:
    # Every download is capped while streaming: stops the endless-data attack.
    return UpdaterConfig(
        root_max_length=max_metadata_bytes,
        timestamp_max_length=timestamp_max_bytes,
        snapshot_max_length=max_metadata_bytes,
        targets_max_length=max_metadata_bytes,
    )


def open_updater(
    metadata_dir: Path,
    metadata_url: str,
    bootstrap: bytes | None,
    config: UpdaterConfig,
    fetcher: FetcherInterface | None = None,
    target_dir: Path | None = None,
    target_base_url: str | None = None,
) -> Updater:
    """A fresh Updater anchored in `bootstrap` (the pinned root) or the stored root.json."""
    with trust_errors("loading the trusted root"):
        metadata_dir.mkdir(parents=True, exist_ok=True)
        return Updater(
            str(metadata_dir),
            metadata_url,
            str(target_dir) if target_dir is not None else None,
            target_base_url,
            fetcher,
            config,
            bootstrap=bootstrap,
        )


def refresh_updater(updater: Updater, source: str = "upstream") -> None:
    """root -> timestamp -> snapshot -> targets, every TUF client check (spec §5.3-5.6)."""
    doing = "refreshing upstream TUF metadata" if source == "upstream" else f"verifying {source}"
    with trust_errors(doing, source):
        updater.refresh()


def find_target(updater: Updater, target_path: str, source: str = "upstream") -> TargetFile | None:
    """The signed length and hashes of `target_path`, walking (hashed-bin) delegations."""
    with trust_errors(f"looking up {target_path}", source):
        return updater.get_targetinfo(target_path)


def check_target(info: TargetFile, body: bytes) -> None:
    """Stops tampered and mix-and-match index files: bytes must match the signed entry."""
    with trust_errors(f"verifying {info.path}"):
        info.verify_length_and_hashes(body)


def metadata_expiry(updater: Updater) -> datetime:
    """The earliest expiry among all metadata the updater trusts (root, ..., bins)."""
    # ngclient keeps the verified metadata in its TrustedMetadataSet (a Mapping of role to
    # Signed); it has no public accessor for the delegated roles' expiry times.
    trusted = updater._trusted_set
    return min(signed.expires for signed in trusted)


def directory_lock(metadata_dir: Path) -> AbstractContextManager[None]:
    """Exclusive flock: worker processes sharing a metadata directory refresh one at a time."""
    return exclusive_lock(metadata_dir / ".refresh.lock")


@dataclass
class _Trusted:
    """One refreshed Updater and what it verified; replaced wholesale on each refresh."""

    updater: Updater
    expires: datetime
    generation: int
    # ngclient is not thread-safe. Waiting happens on the event loop, not in a worker thread:
    # threads parked on a lock would starve the default executor that aiohttp also uses.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    known: dict[str, TargetFile] = field(default_factory=dict)


class UpstreamVerifier:
    """Checks every index file from upstream against its signed targets before it is used."""

    def __init__(
        self,
        settings: TufUpstreamSettings,
        fetcher: FetcherInterface | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        self._settings = settings
        self._fetcher = fetcher
        self._clock = clock
        self._config = updater_config(settings.max_metadata_bytes, settings.timestamp_max_bytes)
        self._lock = asyncio.Lock()
        self._state: _Trusted | None = None
        self._generation = 0
        self._last_attempt = float("-inf")  # monotonic time of the last refresh attempt
        self.last_error: str | None = None

    @property
    def expires(self) -> datetime | None:
        return self._state.expires if self._state else None

    async def refresh(self, force: bool = False) -> None:
        """Refresh if the interval has passed (or `force`); raises TrustError on failure."""
        await self._refresh(force=force, seen=None)

    async def verify_index(self, target_path: str, body: bytes) -> datetime:
        """Raise TrustError unless `body` is exactly what upstream signed for `target_path`.

        Returns the expiry of the metadata that verified it: a cached copy may be served
        without re-verification until then, and not after.
        """
        state = await self._usable_state()
        info = await self._lookup(state, target_path)
        if info is None or not _matches(info, body):
            # Upstream may have published (a new crate, a new version) after our last
            # refresh: one coalesced, rate-limited refresh, then the verdict is final.
            await self._refresh(force=True, seen=state.generation)
            state = await self._usable_state()
            info = await self._lookup(state, target_path)
        if info is None:
            raise TrustError(f"{target_path} is not listed in upstream's signed targets")
        check_target(info, body)
        return state.expires

    async def verify_crate_index(self, name: str, body: bytes) -> float:
        """`verify_index` by crate name, returning unix time (index_cache.Verifier)."""
        expires = await self.verify_index(index_path(name), body)
        return expires.timestamp()

    # -- internals ----------------------------------------------------------------------------

    async def _usable_state(self) -> _Trusted:
        due = time.monotonic() - self._last_attempt >= self._settings.refresh_interval
        if self._state is None or due or self._expired(self._state):
            try:
                await self._refresh(force=False, seen=None)
            except TrustError:
                # A failed scheduled refresh (e.g. upstream briefly unreachable) leaves the
                # previous metadata usable until it expires; attacks already cleared it.
                if self._state is None or self._expired(self._state):
                    raise
        state = self._state
        if state is None:
            raise TrustError(self.last_error or "no trusted upstream metadata")
        if self._expired(state):
            # Freeze attack: never verify against metadata past its expiry.
            raise TrustError(f"upstream TUF metadata expired at {state.expires.isoformat()}")
        return state

    def _expired(self, state: _Trusted) -> bool:
        return self._clock() >= state.expires

    async def _refresh(self, force: bool, seen: int | None) -> None:
        async with self._lock:
            if seen is not None and self._generation != seen:
                return  # coalesced: another task refreshed while we waited for the lock
            since = time.monotonic() - self._last_attempt
            if (force or self._state is None) and since < self._settings.min_forced_refresh_gap:
                # Cargo asking for many new crates, or requests arriving while upstream's
                # metadata is bad, must not turn into a refresh per request.
                return
            fresh = self._state is not None and not self._expired(self._state)
            if not force and fresh and since < self._settings.refresh_interval:
                return
            self._last_attempt = time.monotonic()
            try:
                updater = await asyncio.to_thread(self._fresh_updater)
            except TrustError as e:
                self.last_error = str(e)
                if not _is_transient(e):
                    self._state = None  # fail closed: upstream served bad metadata
                raise
            self._generation += 1
            self._state = _Trusted(updater, metadata_expiry(updater), self._generation)
            self.last_error = None

    def _fresh_updater(self) -> Updater:
        s = self._settings
        with trust_errors("reading the pinned upstream root"):
            bootstrap = s.trusted_root.read_bytes()
        with directory_lock(s.metadata_dir):
            updater = open_updater(
                s.metadata_dir, s.metadata_url, bootstrap, self._config, self._fetcher
            )
            refresh_updater(updater)
            # Expired root/timestamp/snapshot/targets are rejected by refresh() itself, but
            # check the reference time of our clock too (tests freeze it).
            if metadata_expiry(updater) <= self._clock():
                raise TrustError("upstream TUF metadata is expired (freeze attack?)")
        return updater

    async def _lookup(self, state: _Trusted, target_path: str) -> TargetFile | None:
        if target_path in state.known:
            return state.known[target_path]
        async with state.lock:
            if target_path not in state.known:
                info = await asyncio.to_thread(self._lookup_blocking, state, target_path)
                if info is None:
                    return None
                state.known[target_path] = info
        return state.known[target_path]

    def _lookup_blocking(self, state: _Trusted, target_path: str) -> TargetFile | None:
        with directory_lock(self._settings.metadata_dir):
            info = find_target(state.updater, target_path)
        # Delegated bins loaded just now may expire before the top-level roles.
        state.expires = min(state.expires, metadata_expiry(state.updater))
        return info


def _matches(info: TargetFile, body: bytes) -> bool:
    try:
        info.verify_length_and_hashes(body)
    except tuf_errors.LengthOrHashMismatchError:
        return False
    return True


def _is_transient(error: TrustError) -> bool:
    """Network trouble keeps the old (unexpired) metadata; verification failures do not."""
    cause = error.__cause__
    return isinstance(cause, tuf_errors.DownloadError | OSError) and not isinstance(
        cause, tuf_errors.DownloadLengthMismatchError
    )
