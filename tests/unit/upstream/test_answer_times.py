"""How far away upstream is, as the client measures it: what makes fetching crates ahead
worth it (mirror/serving/look_ahead.py)."""

from __future__ import annotations

import asyncio

import pytest

from mirror.upstream.client import (
    ANSWER_TIMES_KEPT,
    ANSWER_TIMES_NEEDED,
    ClientLimits,
    UpstreamClient,
    UpstreamHealth,
)
from tests.fixtures.pytest_plugin import SMALL_SET
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream

LATENCY = 0.02  # seconds: a distant upstream


async def test_the_quickest_answer_time_is_how_far_upstream_is(small_registry: Registry) -> None:
    async with (
        FakeUpstream(small_registry, latency=LATENCY) as upstream,
        UpstreamClient(upstream.url + "/") as client,
    ):
        for name in SMALL_SET[:ANSWER_TIMES_NEEDED]:
            assert client.health.quickest_answer_time() is None  # too few to say
            await client.fetch_index(name)
        quickest = client.health.quickest_answer_time()
        assert quickest is not None and LATENCY <= quickest < 1.0


def test_a_busy_moment_does_not_make_upstream_look_far() -> None:
    """Delays this process adds to some answers (a busy event loop) never hide a quick one,
    and only the latest answers count."""
    health = UpstreamHealth()
    for seconds in (0.030, 0.0004, 0.012, 0.009):
        health.answer_times.append(seconds)
    assert health.quickest_answer_time() == pytest.approx(0.0004)
    for _ in range(ANSWER_TIMES_KEPT):  # upstream moved (a new route): the old samples go
        health.answer_times.append(0.025)
    assert health.quickest_answer_time() == pytest.approx(0.025)


async def test_waiting_for_a_free_connection_is_not_counted_as_distance(
    small_registry: Registry,
) -> None:
    """Many requests at once (cargo over HTTP/2): each waits for one of the client's
    connections, but its answer time starts once it has one. Counted from the start, the
    quickest of 12 requests on 2 connections to an upstream 20 ms away was 0.12 s."""
    async with (
        FakeUpstream(small_registry, latency=LATENCY) as upstream,
        UpstreamClient(upstream.url + "/", ClientLimits(concurrency=2)) as client,
    ):
        names = (SMALL_SET * 3)[:12]
        await asyncio.gather(*(client.fetch_index(name) for name in names))
        times = sorted(client.health.answer_times)
        assert len(times) == 12
        assert times[-1] < 4 * LATENCY  # none waited out the five rounds before it
