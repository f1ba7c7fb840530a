"""Write a file so readers see the old content or the new, never half: temp, fsync, rename.

A crash (kill -9, power cut) at any point leaves at most a stray temp file, which no reader
ever mistakes for the real one because it has another name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(
    path: Path, data: bytes, *, tmp_dir: Path | None = None, mode: int | None = None
) -> None:
    """Replace `path` with `data`. `tmp_dir` must be on the same file system as `path`."""
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
