"""Run one coroutine per key at a time; concurrent callers for the same key share its result.

Fifty builds asking for the same new crate must make one upstream download, one scan, one
index revalidation: the "thundering herd" against upstream and the disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[T]] = {}

    def running(self, key: str) -> bool:
        return key in self._inflight

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        pending = self._inflight.get(key)
        if pending is not None:
            # shield: one impatient caller cancelling must not cancel everyone's work.
            return await asyncio.shield(pending)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await work()
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: only the waiters re-raise it
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]
