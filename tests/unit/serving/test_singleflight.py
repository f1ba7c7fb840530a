"""SingleFlight: concurrent callers for one key share one run; errors reach every caller."""

from __future__ import annotations

import asyncio

import pytest

from mirror.serving.singleflight import SingleFlight


async def test_concurrent_callers_share_one_run() -> None:
    flights: SingleFlight[int] = SingleFlight()
    runs = 0

    async def work() -> int:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.05)
        return 42

    results = await asyncio.gather(*(flights.run("k", work) for _ in range(20)))
    assert results == [42] * 20
    assert runs == 1
    assert await flights.run("k", work) == 42
    assert runs == 2  # finished flights are not cached: the next call works again


async def test_error_reaches_every_waiter_and_is_not_remembered() -> None:
    flights: SingleFlight[int] = SingleFlight()

    async def fail() -> int:
        await asyncio.sleep(0.01)
        raise ValueError("upstream broke")

    outcomes = await asyncio.gather(
        *(flights.run("k", fail) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(o, ValueError) for o in outcomes)

    async def ok() -> int:
        return 1

    assert await flights.run("k", ok) == 1


async def test_a_cancelled_waiter_does_not_cancel_the_work() -> None:
    flights: SingleFlight[str] = SingleFlight()

    async def slow() -> str:
        await asyncio.sleep(0.1)
        return "done"

    first = asyncio.create_task(flights.run("k", slow))
    await asyncio.sleep(0)
    impatient = asyncio.create_task(flights.run("k", slow))
    await asyncio.sleep(0.01)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert await first == "done"
