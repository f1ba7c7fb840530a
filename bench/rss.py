"""Memory of a process tree, sampled from /proc while a load runs.

With `--workers N` the mirror is a parent process plus N forked workers. The issue's number
is VmRSS summed over all of them; that double-counts pages the fork shares copy-on-write, so
the proportional set size (Pss, /proc/PID/smaps_rollup) is sampled too and reported beside it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MemorySample",
    "PeakMemory",
    "process_tree",
    "read_status_kib",
    "sample_pids",
    "sample_tree",
    "wait_for_workers",
]

PROC = Path("/proc")


@dataclass(frozen=True)
class MemorySample:
    rss_kib: int  # sum of VmRSS over the tree
    pss_kib: int  # sum of Pss over the tree (0 where smaps_rollup is unreadable)
    processes: int


def read_status_kib(status_text: str, field: str) -> int:
    """A `Field:   1234 kB` value from /proc/PID/status or smaps_rollup text (0 if absent)."""
    for line in status_text.splitlines():
        if line.startswith(field + ":"):
            parts = line.split()
            return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return 0


def _ppid(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1])


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants that exist now."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            parent = _ppid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def sample_tree(root: int) -> MemorySample:
    return sample_pids(process_tree(root))


def sample_pids(pids: list[int]) -> MemorySample:
    rss = pss = count = 0
    for pid in pids:
        try:
            rss += read_status_kib((PROC / str(pid) / "status").read_text(), "VmRSS")
        except OSError:
            continue  # exited between listing and reading
        count += 1
        with contextlib.suppress(OSError):  # smaps_rollup needs a 4.14+ kernel
            pss += read_status_kib((PROC / str(pid) / "smaps_rollup").read_text(), "Pss")
    return MemorySample(rss, pss, count)


class PeakMemory:
    """`with PeakMemory(pid) as peak:` samples every `interval` seconds; `peak.max_rss_kib`.

    The process tree is listed once, at the start (the mirror forks its workers at start-up
    only): listing /proc on every sample would cost the harness CPU the servers need.
    """

    def __init__(self, root: int, interval: float = 0.1) -> None:
        self.pids = process_tree(root)
        self.interval = interval
        self.baseline = sample_pids(self.pids)
        self.max_rss_kib = self.baseline.rss_kib
        self.max_pss_kib = self.baseline.pss_kib
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = sample_pids(self.pids)
            self.max_rss_kib = max(self.max_rss_kib, sample.rss_kib)
            self.max_pss_kib = max(self.max_pss_kib, sample.pss_kib)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "baseline_rss_mb": round(self.baseline.rss_kib / 1024, 1),
            "peak_rss_mb": round(self.max_rss_kib / 1024, 1),
            "peak_pss_mb": round(self.max_pss_kib / 1024, 1),
            "processes": self.baseline.processes,
            "samples": self.samples,
        }


def wait_for_workers(root: int, expected: int, timeout: float = 30.0) -> int:
    """Wait until the tree has `expected` processes (forked workers are up); returns the count."""
    deadline = time.monotonic() + timeout
    count = len(process_tree(root))
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        count = len(process_tree(root))
    return count
