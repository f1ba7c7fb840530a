"""The background scanner's process: scans the crates sent down its stdin, one at a time,
and writes each report back (mirror.serving.background_scanner starts and talks to it).

Each frame, both ways, is an 8-byte big-endian length and a body. The first frame from the
server is its compiled pattern databases (mirror.scan.multimatch), pickled: it comes from the
process that started this one, over a pipe only the two of them hold. Each later frame is a
`.crate`; each answer starts with a byte that says what follows: `R` the report as the store
keeps it, `A` the message of an ArchiveError (a hostile or malformed crate), `X` a traceback
(a bug, told rather than lost). End of input ends the process.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import traceback
from typing import IO

from mirror.errors import ArchiveError
from mirror.scan.capabilities import report_json, scan_crate, warm_up

HEADER = struct.Struct(">Q")
REPORT, ARCHIVE_ERROR, CRASH = b"R", b"A", b"X"


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame's body; None at the end of input (or a frame cut short by it)."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    body = stream.read(size)
    return body if len(body) == size else None


def answer(data: bytes) -> bytes:
    try:
        return REPORT + report_json(scan_crate(data))
    except ArchiveError as e:
        return ARCHIVE_ERROR + str(e).encode()
    except Exception:
        return CRASH + traceback.format_exc().encode()


def main(argv: list[str]) -> None:
    """`python -c "..." NICE`: lower this process's priority by NICE, then serve scans."""
    os.nice(int(argv[0]))
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, never into the answers
    requests = sys.stdin.buffer
    databases = read_frame(requests)
    if databases is None:
        return
    warm_up(pickle.loads(databases))  # from the process that started this one
    while (data := read_frame(requests)) is not None:
        answers.write(frame(answer(data)))
        answers.flush()
