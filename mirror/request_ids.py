"""Request ids: a random per-process prefix and a counter, unique without a syscall each."""

from __future__ import annotations

import itertools
import os


class _RequestIds:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = os.urandom(4).hex()
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):08x}"


_IDS = _RequestIds()
# Forked workers must not keep the parent's prefix, or their ids would collide.
os.register_at_fork(after_in_child=_IDS.reset)


def next_request_id() -> str:
    return _IDS.next()
