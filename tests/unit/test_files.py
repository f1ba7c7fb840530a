"""mirror.files: the one atomic writer (complete replacement or nothing, no stray files,
permissions applied) and the one file lock (one holder at a time, released when it dies)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mirror.files import exclusive_lock, write_atomic


def test_replaces_content_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.txt"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.txt"]


def test_failure_keeps_old_content_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between write and rename (simulated) must not touch the real file."""
    target = tmp_path / "file.txt"
    write_atomic(target, b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_mode_is_applied_before_content_is_written(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    write_atomic(target, b"secret", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_tmp_dir_is_used_for_the_temporary_file(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    write_atomic(tmp_path / "out" / "f", b"x", tmp_dir=scratch)
    assert (tmp_path / "out" / "f").read_bytes() == b"x"
    assert list(scratch.iterdir()) == []


_HOLDER = """
import sys, time
from pathlib import Path
from mirror.files import exclusive_lock
with exclusive_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_exclusive_lock_waits_for_another_process_and_survives_its_kill_9(
    tmp_path: Path,
) -> None:
    """A second holder waits while a process holds the lock; kill -9 of the holder frees it
    (a crashed writer must never leave the other workers waiting forever)."""
    path = tmp_path / "sub" / "x.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        acquired = threading.Event()

        def take() -> None:
            with exclusive_lock(path):
                acquired.set()

        waiter = threading.Thread(target=take, daemon=True)
        waiter.start()
        assert not acquired.wait(0.5)  # still held by the other process
        os.kill(holder.pid, signal.SIGKILL)
        assert acquired.wait(10)
        waiter.join(10)
    finally:
        holder.kill()
        holder.wait()
