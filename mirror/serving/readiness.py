"""Readiness: can this mirror serve cargo right now? (`/readyz`; `/healthz` only says it runs.)

Each check says `ok` and why not:

- upstream: upstream's config.json answers within PROBE_TIMEOUT (offline: nothing to reach);
- cache: a small file can be written, synced and removed (a full or read-only disk fails);
- policy: which policy is enforced (its digest). A reload that was rejected, or a file that
  changed since it was loaded, is reported but keeps the mirror ready: the last valid policy
  is still enforced, and every replica reads the same broken file, so taking this one out of
  a load balancer would help nobody.

Upstream and cache results are reused for RECHECK_SECONDS: a load balancer probing every
second must not become load on upstream or on the disk, and one slow probe is shared by
every request that arrives meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from mirror.errors import MirrorError, StorageError
from mirror.serving.gate import Gate
from mirror.serving.reload import PolicyReloader
from mirror.serving.singleflight import SingleFlight
from mirror.store import Store
from mirror.upstream.client import Upstream

Check = dict[str, Any]  # {"ok": bool, "error": str (when not ok), ...details}

RECHECK_SECONDS = 5.0  # a probe's result is reused this long
PROBE_TIMEOUT = 3.0  # seconds upstream's config.json may take (retries included)


class Readiness:
    def __init__(
        self,
        store: Store,
        upstream: Upstream | None,
        gate: Gate,
        reloader: PolicyReloader | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._upstream = upstream  # None: offline
        self._gate = gate
        self._reloader = reloader
        self._clock = clock
        self._probes: SingleFlight[Check] = SingleFlight()
        self._recent: dict[str, tuple[float, Check]] = {}  # check name -> (when, result)

    async def checks(self) -> dict[str, Check]:
        return {
            "upstream": await self._reused("upstream", self._probe_upstream),
            "cache": await self._reused("cache", self._probe_cache),
            "policy": self._policy(),
        }

    async def _reused(self, name: str, probe: Callable[[], Any]) -> Check:
        recent = self._recent.get(name)
        now = self._clock()
        if recent is not None and now - recent[0] < RECHECK_SECONDS:
            return {**recent[1], "checked_seconds_ago": round(now - recent[0], 1)}
        result: Check = await self._probes.run(name, probe)
        self._recent[name] = (self._clock(), result)
        return result

    async def _probe_upstream(self) -> Check:
        if self._upstream is None:
            return {"ok": True, "offline": True}
        started = self._clock()
        try:
            await asyncio.wait_for(self._upstream.fetch_config(), PROBE_TIMEOUT)
        except TimeoutError:
            return {"ok": False, "error": f"upstream did not answer within {PROBE_TIMEOUT:g} s"}
        except MirrorError as e:
            return {"ok": False, "error": f"upstream unreachable: {e}"}
        return {"ok": True, "seconds": round(self._clock() - started, 3)}

    async def _probe_cache(self) -> Check:
        try:
            await asyncio.to_thread(self._store.check_writable)
        except StorageError as e:
            return {"ok": False, "error": str(e)}
        return {"ok": True}

    def _policy(self) -> Check:
        engine = self._gate.engine
        if engine is None:
            return {"ok": True, "configured": False}
        check: Check = {"ok": True, "configured": True, "digest": engine.policy.digest}
        rejected = self._reloader.rejected if self._reloader is not None else None
        if rejected is not None:
            # The problems name files and lines: they are in the log, not on a public route.
            check["reload_rejected"] = (
                f"{len(rejected.splitlines())} problem(s); the previous policy is still "
                "enforced (policy.reload_rejected in the log)"
            )
        return check


def verdict(checks: Mapping[str, Check]) -> tuple[bool, list[str]]:
    """Ready when every check is ok; otherwise the reasons, one per failed check."""
    reasons = [f"{name}: {check['error']}" for name, check in checks.items() if not check["ok"]]
    return not reasons, reasons
