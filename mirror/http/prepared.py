"""Responses the handlers have already decided, kept ready for mirror.http.front to repeat.

Every decision is made by the serving core, asked by the handlers. Most requests of a warm build
repeat one exactly: the same fresh index file, the same small crate, under the same policy.
For those the handler leaves the finished bytes here together with a `still_valid` check (the
index entry is fresh, the policy generation and day are unchanged); the front door answers the
next identical request from this table without building a request object, which is what
makes a warm hit cost a few microseconds instead of forty.

The fast path still audits and counts what it serves: `HitTally` turns its answers into the
same allow events and metrics, batched once a second (one event per client and file with a
`count`), because one hash-chained event per hit costs more than the hit itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from mirror import metrics
from mirror.http.reply import h2_fields, response_head
from mirror.request_ids import next_request_id
from mirror.serving.gate import Gate, Request


@dataclass(eq=False, slots=True)  # identity equality: it is a tally key
class Prepared:
    route: str  # metrics label, as the handler's
    ok: bytes  # "HTTP/1.1 200 OK" and headers, without Date and the blank line
    body: bytes
    etag: str | None  # a matching If-None-Match gets `not_modified` instead
    not_modified: bytes | None
    still_valid: Callable[[], bool]
    h2_ok: list[tuple[bytes, bytes]]  # `ok` and `not_modified` as HTTP/2 header fields
    h2_not_modified: list[tuple[bytes, bytes]] | None
    # What an allow is audited as; None for routes that audit nothing (config.json).
    crate: str | None = None
    version: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def prepared_response(
    route: str,
    body: bytes,
    headers: Mapping[str, str],
    still_valid: Callable[[], bool],
    *,
    etag: str | None = None,
    crate: str | None = None,
    version: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> Prepared:
    """A 200 with `headers` (and a 304 twin when there is an ETag) for the table."""
    ok = response_head(200, headers, len(body))
    h2_ok = h2_fields(200, headers, len(body))
    not_modified = h2_not_modified = None
    if etag is not None:
        kept = {k: v for k, v in headers.items() if k != "Content-Type"}
        not_modified = response_head(304, kept, None)
        h2_not_modified = h2_fields(304, kept, None)
    return Prepared(
        route,
        ok,
        body,
        etag,
        not_modified,
        still_valid,
        h2_ok,
        h2_not_modified,
        crate,
        version,
        details or {},
    )


def http_date() -> bytes:
    return formatdate(usegmt=True).encode("ascii")


class PreparedTable:
    """Prepared responses by request target, within a byte budget (oldest dropped first)."""

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._items: dict[bytes, Prepared] = {}
        self._size = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, target: bytes) -> Prepared | None:
        prepared = self._items.get(target)
        if prepared is not None and not prepared.still_valid():
            self._drop(target)
            return None
        return prepared

    def put(self, target: bytes, prepared: Prepared) -> None:
        cost = _cost(target, prepared)
        if cost > self._budget:
            return
        self._drop(target)
        self._items[target] = prepared
        self._size += cost
        while self._size > self._budget:
            self._drop(next(iter(self._items)))

    def clear(self) -> None:
        self._items.clear()
        self._size = 0

    def _drop(self, target: bytes) -> None:
        old = self._items.pop(target, None)
        if old is not None:
            self._size -= _cost(target, old)


def _cost(target: bytes, prepared: Prepared) -> int:
    return len(target) + len(prepared.ok) + len(prepared.body) + 200


class HitTally:
    """What the fast path answered, as audit events and metrics, once per `flush`."""

    def __init__(self, gate: Gate) -> None:
        self._gate = gate
        self._allows: dict[tuple[Prepared, str | None], list[float]] = {}
        self._responses: dict[tuple[str, int], list[int]] = {}  # (route, status) -> [n, bytes]

    def count(self, prepared: Prepared, status: int, sent: int, client: str | None) -> None:
        key = (prepared, client)
        seen = self._allows.get(key)
        if seen is None:
            self._allows[key] = [1, time.time()]
        else:
            seen[0] += 1
        counts = self._responses.get((prepared.route, status))
        if counts is None:
            self._responses[(prepared.route, status)] = [1, sent]
        else:
            counts[0] += 1
            counts[1] += sent

    def flush(self) -> None:
        allows, self._allows = self._allows, {}
        responses, self._responses = self._responses, {}
        for (prepared, client), (n, first) in allows.items():
            if prepared.crate is None:
                continue
            req = Request(next_request_id(), client, prepared.route, prepared.crate)
            req.version = prepared.version
            details = {**prepared.details, "count": int(n), "first_at": round(first, 3)}
            self._gate.allowed(req, details)
        for (route, status), (n, sent) in responses.items():
            metrics.request_counter(route, status).inc(n)
            if sent:
                metrics.bytes_counter(route).inc(sent)
            if route in ("index", "download"):
                metrics.cache_counter("index" if route == "index" else "crate", "hit").inc(n)
