"""One way onto disk: the atomic writer and the file lock every other module uses.

`write_atomic` writes a temporary file, fsyncs it and renames it over the target, so readers
see the old content or the new, never half; a crash (kill -9, power cut) at any point leaves
at most a stray temporary file, which no reader mistakes for the real one (another name).

`exclusive_lock` holds an `flock` on a file for the duration of a `with` block: processes
sharing a directory (workers, a CLI run next to the server) take turns, so a read-modify-write
never loses another process's update.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def write_atomic(
    path: Path, data: bytes, *, tmp_dir: Path | None = None, mode: int | None = None
) -> None:
    """Replace `path` with `data`. `tmp_dir` must be on the same file system as `path`;
    `mode` is applied before the content is written (a key file is never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    directory = tmp_dir if tmp_dir is not None else path.parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable, so a power cut cannot resurrect the old state."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created if absent) until the block ends.

    The lock belongs to the open file, so it is released when the process dies, even by
    kill -9: a crashed writer never leaves the others waiting forever.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the flock


class HeldLock:
    """An exclusive `flock` taken without waiting and held until `release()` (or the
    process's death, even by kill -9): one process of several does a job, and another
    takes over when it is gone."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def try_take(cls, path: Path) -> HeldLock | None:
        """The lock on `path` (created if absent), or None when another holder has it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None
