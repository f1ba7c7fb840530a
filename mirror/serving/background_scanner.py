"""One low-priority process for the scans nobody waits for (mirror.serving.scans).

Started when the first such scan comes, stopped after BACKGROUND_IDLE seconds without any (it
holds the scanner's parsers, tens of MB), started again when needed. A fresh interpreter
(`mirror.scan.worker`) started with `subprocess`, not multiprocessing: a `spawn` pool brings
a resource-tracker process (13 MB) that lives as long as the server, for semaphores nobody
uses. It gets the serving process's compiled patterns, so it does not compile them again.
A thread waits for each answer: blocked on the pipe, it leaves the GIL to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import subprocess
import sys

from mirror.errors import ArchiveError
from mirror.scan.capabilities import compiled_patterns
from mirror.scan.worker import ARCHIVE_ERROR, REPORT, frame, read_frame

BACKGROUND_NICE = 19  # the scanner's niceness: a CPU's leftovers, yet never none
BACKGROUND_IDLE = 30.0  # seconds without a background scan before its process is stopped
_ENTRY = "import sys; from mirror.scan.worker import main; main(sys.argv[1:])"


class BackgroundScanner:
    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._running = 0
        self._idle: asyncio.TimerHandle | None = None
        self._turn: asyncio.Lock | None = None  # made on the serving loop
        self._pipe: asyncio.Lock | None = None  # one frame and its answer at a time

    @property
    def turn(self) -> asyncio.Lock:
        """Held by the background scan under way (asyncio's lock wakes waiters in order)."""
        if self._turn is None:
            self._turn = asyncio.Lock()
        return self._turn

    @property
    def pid(self) -> int | None:
        """The scanner process, while it runs."""
        return self._proc.pid if self._proc is not None else None

    async def scan(self, data: bytes) -> bytes:
        """The crate's report, as the JSON the store keeps (what crosses the process line).
        Raises ArchiveError for a hostile crate, or when the process stopped (killed, out of
        memory: the next scan starts a new one)."""
        loop = asyncio.get_running_loop()
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._pipe is None:
            self._pipe = asyncio.Lock()
        self._running += 1
        try:
            async with self._pipe:
                proc, request = self._proc, frame(data)
                if proc is None:
                    proc = self._start()
                    # Its first frame: the patterns, compiled here when the server readied
                    # its scanner, so that they are not compiled again there.
                    request = frame(pickle.dumps(compiled_patterns())) + request
                try:
                    kind, body = await asyncio.to_thread(_ask, proc, request)
                except (OSError, ValueError, EOFError) as e:  # ValueError: a pipe closed by stop
                    self._end(proc)
                    raise ArchiveError(f"the background scanner stopped: {e}") from e
                except asyncio.CancelledError:
                    # Its answer would reach nobody, and the thread still holds the pipe: the
                    # next scan starts a new process rather than read this one's answer.
                    self._end(proc)
                    raise
        finally:
            self._running -= 1
            if self._running == 0 and self._proc is not None:
                self._idle = loop.call_later(BACKGROUND_IDLE, self.stop)
        if kind == REPORT:
            return body
        if kind == ARCHIVE_ERROR:
            raise ArchiveError(body.decode(errors="replace"))
        # CRASH: a bug in the scanner, with its traceback
        raise RuntimeError(f"the background scanner failed:\n{body.decode(errors='replace')}")

    def _start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _ENTRY, str(BACKGROUND_NICE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._proc = proc
        return proc

    def _end(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop the process and reap it; its pipes are closed by whoever uses them last."""
        if self._proc is proc:
            self._proc = None
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)  # killed: at once (else `subprocess` reaps it later)
        if self._pipe is None or not self._pipe.locked():
            _close(proc)  # else the scan under way sees the end of its pipe and closes them

    def stop(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._proc is not None:
            self._end(self._proc)


def _ask(proc: subprocess.Popen[bytes], request: bytes) -> tuple[bytes, bytes]:
    """In a thread: send the request's frames, wait for the answer."""
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(request)
        proc.stdin.flush()
        answer = read_frame(proc.stdout)
        if answer is None:
            raise EOFError("the scanner process ended")
    except BaseException:
        _close(proc)
        raise
    return answer[:1], answer[1:]


def _close(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
