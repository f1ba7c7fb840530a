"""A counter in a file that processes on one host share: bumped by a writer, read by every
worker from a shared memory mapping (cheap enough for every warm hit).

Used where a change made by one command must reach running servers at once: an approval in
the capability lock (mirror.sources.capability_lockfile), a bundle imported into the cache
of an offline mirror (mirror.trust.bundle).
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

from mirror.errors import StorageError

_EPOCH_BYTES = 8


def bump_epoch(path: Path) -> None:
    """Add one to the counter in `path` (created if missing)."""
    with epoch_file(path) as fd:
        bump(fd)


@contextlib.contextmanager
def epoch_file(path: Path) -> Iterator[int]:
    """The counter's file, open for `bump`: opened before the change it announces, so a
    place nobody can write refuses the change rather than leaving it unannounced."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise StorageError(f"cannot write {path}: {e.strerror or e}") from e
    try:
        yield fd
    finally:
        os.close(fd)


def bump(fd: int) -> None:
    current = int.from_bytes(os.pread(fd, _EPOCH_BYTES, 0).ljust(_EPOCH_BYTES, b"\0"), "little")
    # One aligned 8-byte write in place (not a rename): every mapping sees it.
    os.pwrite(fd, ((current + 1) % 2**63).to_bytes(_EPOCH_BYTES, "little"), 0)


class Epoch:
    """The counter as a worker reads it: a read-only shared mapping of the epoch file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < _EPOCH_BYTES:
                os.ftruncate(fd, _EPOCH_BYTES)  # zeros; never shrinks a counter already there
            self._map = mmap.mmap(fd, _EPOCH_BYTES, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)

    def read(self) -> int:
        return int.from_bytes(self._map[:_EPOCH_BYTES], "little")
