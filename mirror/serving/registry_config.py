"""config.json both ways: upstream's (for its `dl` template) and ours (cargo's entry point).

Ours is upstream's with `dl` pointing back at this mirror and no `api` (nothing may send cargo
around the mirror), plus `auth-required` when clients need tokens. Upstream's is kept in the
store so an offline start, or an upstream that is down at start, still knows its `dl`.
"""

from __future__ import annotations

import json

import structlog

from mirror.errors import UpstreamNotFound, UpstreamUnavailable
from mirror.store import Store
from mirror.upstream.client import Upstream

log = structlog.get_logger("mirror.config")


class RegistryConfig:
    def __init__(
        self, base_url: str, store: Store, upstream: Upstream | None, *, auth_required: bool
    ) -> None:
        self._base_url = base_url  # where cargo reaches us
        self._store = store
        self._upstream = upstream  # None: offline
        self._auth_required = auth_required
        self._body: bytes | None = None

    async def served(self) -> bytes:
        """Our config.json, built once (and again whenever upstream's is learnt anew)."""
        if self._body is None:
            self._body = await self._build()
        return self._body

    def is_current(self, body: bytes) -> bool:
        """Whether `body` is still what `served` returns (for responses kept ready)."""
        return self._body is body

    async def learn_upstream(self) -> None:
        """Load upstream's `dl` template before the first download needs it; an unreachable
        upstream is only a warning here (downloads try again)."""
        if self._upstream is None:
            return
        try:
            self._body = await self._build()
        except UpstreamUnavailable as e:
            log.warning("upstream.config_unavailable", error=str(e))

    async def _build(self) -> bytes:
        config = dict(await self._upstream_config())
        # Downloads must come back through us, and no `api` may send cargo around the mirror.
        config["dl"] = f"{self._base_url}/api/v1/crates"
        config.pop("api", None)
        config.pop("auth-required", None)
        if self._auth_required:
            config["auth-required"] = True  # cargo then sends its token on every request
        return json.dumps(config, indent=2).encode() + b"\n"

    async def _upstream_config(self) -> dict[str, object]:
        store = self._store
        if self._upstream is not None:
            try:
                body = await self._upstream.fetch_config()
                store.write_upstream_config(body)
            except (UpstreamUnavailable, UpstreamNotFound) as e:
                body_or_none = store.read_upstream_config()
                if body_or_none is None:
                    raise UpstreamUnavailable(f"cannot read upstream config.json: {e}") from e
                body = body_or_none
                self._upstream.set_config(body)
        else:
            body = store.read_upstream_config() or b"{}"
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {}
        return parsed if isinstance(parsed, dict) else {}
