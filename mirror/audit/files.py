"""Where the chain lives on disk: numbered files, the lock, the feed, and reading a file's tail.

DIR/audit-000001.jsonl   oldest events; the number only grows, so order is unambiguous
DIR/audit-000002.jsonl   its first event links to the last event of audit-000001.jsonl
DIR/audit.lock           flock'ed by whichever process appends a batch
DIR/near-names.jsonl     the public near-name feed
DIR/audit-000002.jsonl.damaged-<seq>   a truncated tail moved aside by recovery

Replicas (settings `replica_id`) each keep their own chain in a subdirectory named by the
replica id: DIR/<replica_id>/audit-000001.jsonl ... One writer per chain, so no lock has to
work across hosts; `chain_directories` finds them all for `audit verify` and `query`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from mirror.audit.event import parse_line

LOCK_NAME = "audit.lock"
FEED_NAME = "near-names.jsonl"
_CHAIN_FILE = re.compile(r"audit-(\d{6,})\.jsonl")
_TAIL_BLOCK = 64 * 1024  # bytes read per step when looking backwards for the last line


def chain_file_name(number: int) -> str:
    return f"audit-{number:06d}.jsonl"


def chain_files(directory: Path) -> list[tuple[int, Path]]:
    """The chain's files, oldest first, with their numbers."""
    found = []
    if directory.is_dir():
        for path in directory.iterdir():
            match = _CHAIN_FILE.fullmatch(path.name)
            if match:
                found.append((int(match.group(1)), path))
    return sorted(found)


def chain_directories(root: Path) -> list[tuple[str | None, Path]]:
    """Every chain under `root`: its own (name None: one server or `--workers`), then one per
    replica subdirectory (named by the replica id), in name order."""
    found: list[tuple[str | None, Path]] = []
    if chain_files(root):
        found.append((None, root))
    if root.is_dir():
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            if chain_files(sub):
                found.append((sub.name, sub))
    return found


@dataclass(frozen=True)
class Tail:
    """The end of one chain file: its last good event and any damaged bytes after it."""

    last: dict[str, Any] | None  # the last complete, parseable event line (None: none found)
    good_end: int  # offset just past the last good line's newline
    fragment: bytes  # bytes after good_end: a torn write, or garbage; empty when clean


def read_tail(handle: BinaryIO) -> Tail:
    """Find the last good event of an open file by reading backwards from its end.

    Costs one or two block reads however large the file is. A last line without its
    newline (a write torn by `kill -9` or power loss) or that does not parse is returned as
    the fragment, so the caller can move it aside and say so instead of chaining after it.
    """
    size = handle.seek(0, 2)
    end = size
    while end > 0:
        start, line = _line_before(handle, end)
        complete = _ends_with_newline(handle, end) if end == size else True
        parsed = parse_line(line) if complete else None
        if parsed is not None and isinstance(parsed.get("hash"), str):
            handle.seek(end)
            return Tail(parsed, end, handle.read(size - end))
        end = start
    handle.seek(0)
    return Tail(None, 0, handle.read(size))


def _ends_with_newline(handle: BinaryIO, end: int) -> bool:
    handle.seek(end - 1)
    return handle.read(1) == b"\n"


def _line_before(handle: BinaryIO, end: int) -> tuple[int, bytes]:
    """The line ending at `end` (its newline, if any, excluded) and where it starts."""
    stop = end - 1 if _ends_with_newline(handle, end) else end
    pos = stop
    chunks: list[bytes] = []
    while pos > 0:
        step = min(_TAIL_BLOCK, pos)
        handle.seek(pos - step)
        block = handle.read(step)
        newline = block.rfind(b"\n")
        if newline >= 0:
            chunks.append(block[newline + 1 :])
            start = pos - step + newline + 1
            return start, b"".join(reversed(chunks))
        chunks.append(block)
        pos -= step
    return 0, b"".join(reversed(chunks))
