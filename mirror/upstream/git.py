"""Cloning a git repository (the RustSec advisory database) with the `git` program.

The only outbound fetch that is not HTTP through `UpstreamClient`: a git remote speaks git's
own protocols, so the `git` executable does it, in a subprocess with no terminal prompts
(a remote asking for credentials fails instead of hanging a service).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from mirror.errors import UpstreamUnavailable

CLONE_TIMEOUT = 600.0  # seconds for a whole clone (the RustSec db is ~30 MB)
_STDERR_KEPT = 4000  # characters of git's output kept for the error message


def clone(source: str, dest: Path, *, progress: Callable[[str], None] | None = None) -> None:
    """Clone the default branch of `source` (a URL or a local path) into the new `dest`.

    `progress` receives git's own progress output as it arrives (None: a quiet clone).
    Raises UpstreamUnavailable, with git's last words, if git is missing or the clone fails.
    """
    git = shutil.which("git")
    if git is None:
        raise UpstreamUnavailable("`git` is not installed; it is needed to fetch the advisories")
    local = "://" not in source and "@" not in source.split("/", 1)[0]
    command = [
        git,
        # A repository's symlinks are checked out as small text files: a hostile source
        # cannot point crates/x/RUSTSEC-0000-0000.md at a file outside the database.
        "-c",
        "core.symlinks=false",
        "clone",
        "--single-branch",
        "--no-tags",
        "--progress" if progress is not None else "--quiet",
    ]
    if not local:
        command.append("--depth=1")  # only the current advisories are read
    command += ["--", source, str(dest)]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}
    try:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
    except OSError as e:
        raise UpstreamUnavailable(f"cannot run git: {e.strerror}") from e
    with proc:
        said = _relay(proc, progress, time.monotonic() + CLONE_TIMEOUT)
        code = proc.wait() if said is not None else None
    if said is None:
        raise UpstreamUnavailable(f"git clone of {source} took over {CLONE_TIMEOUT:g} s")
    if code != 0:
        last = [line for line in said.replace("\r", "\n").splitlines() if line.strip()][-3:]
        raise UpstreamUnavailable(f"git clone of {source} failed: {' / '.join(last) or code}")


def _relay(
    proc: subprocess.Popen[bytes], progress: Callable[[str], None] | None, deadline: float
) -> str | None:
    """Pass git's stderr to `progress` until it closes; its tail, or None (killed: too slow)."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    said = ""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            proc.kill()
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return said
        text = chunk.decode("utf-8", "replace")
        said = (said + text)[-_STDERR_KEPT:]
        if progress is not None:
            progress(text)
