"""Prometheus metrics, in one registry owned by this module (the only global state)."""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

requests = Counter(
    "crate_mirror_requests", "HTTP requests served", ["route", "status"], registry=REGISTRY
)
cache = Counter(
    "crate_mirror_cache",
    "Cache outcomes: hit, miss, revalidated (304 from upstream), stale (served after error)",
    ["kind", "outcome"],
    registry=REGISTRY,
)
bytes_served = Counter(
    "crate_mirror_bytes_served", "Response body bytes sent", ["route"], registry=REGISTRY
)
upstream_latency = Histogram(
    "crate_mirror_upstream_seconds",
    "Upstream request latency until headers",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
http2_connections = Counter(
    "crate_mirror_http2_connections",
    "Connections moved to HTTP/2 at cargo's offer (mirror.http.h2c)",
    registry=REGISTRY,
)
decisions = Counter(
    "crate_mirror_decisions", "Policy decisions", ["action", "rule"], registry=REGISTRY
)
store_writes_queued = Gauge(
    "crate_mirror_store_writes_queued",
    "Index files and crates answered from memory and not yet written to the store",
    registry=REGISTRY,
)


# Label lookups cost microseconds each; the hot path uses these memoized children instead.
@functools.cache
def request_counter(route: str, status: int) -> Any:
    return requests.labels(route, str(status))


@functools.cache
def cache_counter(kind: str, outcome: str) -> Any:
    return cache.labels(kind, outcome)


@functools.cache
def decision_counter(action: str, rule: str) -> Any:
    return decisions.labels(action, rule)


@functools.cache
def bytes_counter(route: str) -> Any:
    return bytes_served.labels(route)


def render() -> bytes:
    return generate_latest(REGISTRY)
