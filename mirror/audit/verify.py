"""Walk the whole chain and name the first broken link, if any.

Each line must (1) be complete JSON, (2) hash to its own "hash", (3) carry the next "seq",
and (4) carry as "prev" the hash of the line before it, across file boundaries. Together
these detect an edited event (2, or 4 on the next line if the editor re-hashed it), a
deleted or reordered event or file (3), and a torn last line (1).

Limit: the chain has no key. Someone who can write the files can rewrite every hash from
the point of an edit to the end, or drop events from the end. Keep the "last hash" printed
by `audit verify` somewhere else (a ticket, another host) and check it later with
`--anchor`: a rewritten or cut chain no longer contains it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirror.audit.event import RECOVERED_ACTION, ZERO_HASH, expected_hash, parse_line
from mirror.audit.files import chain_file_name, chain_files


@dataclass(frozen=True)
class BrokenLink:
    file: str
    line: int  # 1-based line number within `file`
    seq: int | None  # the seq found on that line, if it could be read
    kind: str  # "edited" | "deleted" | "reordered" | "truncated"
    message: str

    def __str__(self) -> str:
        seq = f" (seq {self.seq})" if self.seq is not None else ""
        return f"{self.file}:{self.line}{seq}: {self.kind}: {self.message}"


@dataclass(frozen=True)
class Recovery:
    """An audit.recovered event: a torn tail the writer moved aside after a crash."""

    file: str
    line: int
    seq: int
    fragment_length: int  # bytes
    fragment_sha256: str
    moved_to: str


@dataclass(frozen=True)
class VerifyResult:
    events: int
    files: int
    last_seq: int
    last_hash: str
    broken: BrokenLink | None
    recoveries: tuple[Recovery, ...]
    anchor_found: bool | None  # None when no anchor was asked for

    @property
    def ok(self) -> bool:
        return self.broken is None and self.anchor_found is not False


def verify_chain(
    directory: Path,
    *,
    anchor: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Check every event in every chain file of `directory`, oldest first.

    `anchor` is a hash noted earlier that must still be in the chain; `progress` is called
    with the number of bytes read after each line (for a progress bar).
    """
    files = chain_files(directory)
    recoveries: list[Recovery] = []
    expected_seq, expected_prev = 1, ZERO_HASH
    anchor_found = None if anchor is None else False
    previous_number: int | None = None
    events = 0

    def result(broken: BrokenLink | None) -> VerifyResult:
        return VerifyResult(
            events, len(files), expected_seq - 1, expected_prev, broken, tuple(recoveries),
            anchor_found,
        )  # fmt: skip

    for number, path in files:
        missing_file = previous_number is not None and number != previous_number + 1
        previous_number = number
        with open(path, "rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                if progress is not None:
                    progress(len(raw))

                def broken(kind: str, message: str, seq: int | None = None) -> VerifyResult:
                    return result(BrokenLink(path.name, line_no, seq, kind, message))  # noqa: B023

                if not raw.endswith(b"\n"):
                    return broken(
                        "truncated",
                        f"the last line is cut off after {len(raw)} bytes (a torn write or "
                        "a truncated file); starting the mirror moves it aside and records it",
                    )
                parsed = parse_line(raw)
                if parsed is None or not _has_link_fields(parsed):
                    return broken("edited", "the line is not a valid audit event")
                seq = parsed["seq"]
                if parsed["hash"] != expected_hash(parsed):
                    return broken("edited", "the event's content does not match its hash", seq)
                if seq != expected_seq:
                    first_line_after_gap = missing_file and line_no == 1
                    kind, message = _explain_gap(
                        files, expected_seq, seq, first_line_after_gap, number
                    )
                    return broken(kind, message, seq)
                if parsed["prev"] != expected_prev:
                    what = f"seq {seq - 1} or this event" if seq > 1 else "this event"
                    return broken(
                        "edited",
                        f"'prev' does not match the hash of the event before it: {what} "
                        "was rewritten and re-hashed",
                        seq,
                    )
                if parsed.get("action") == RECOVERED_ACTION:
                    recoveries.append(_recovery(path.name, line_no, parsed))
                if anchor is not None and parsed["hash"] == anchor:
                    anchor_found = True
                events += 1
                expected_seq, expected_prev = seq + 1, parsed["hash"]
    return result(None)


def _has_link_fields(parsed: dict[str, Any]) -> bool:
    return (
        isinstance(parsed.get("seq"), int)
        and isinstance(parsed.get("prev"), str)
        and isinstance(parsed.get("hash"), str)
    )


def _explain_gap(
    files: list[tuple[int, Path]], expected: int, found: int, missing_file: bool, number: int
) -> tuple[str, str]:
    """Say whether the expected event is elsewhere (reordered) or nowhere (deleted)."""
    if found < expected:
        return "reordered", (
            f"expected seq {expected} but found seq {found}, which was already seen or "
            "belongs earlier: events were reordered or duplicated"
        )
    place = _locate_seq(files, expected)
    if place is not None:
        return "reordered", (
            f"expected seq {expected} but found seq {found}; seq {expected} is at "
            f"{place[0]}:{place[1]}: events were reordered"
        )
    span = f"seq {expected}" if found == expected + 1 else f"seqs {expected}..{found - 1}"
    message = f"expected seq {expected} but found seq {found}: {span} deleted"
    if missing_file:
        message += f" (the file before this one, e.g. {chain_file_name(number - 1)}, is missing)"
    elif expected == 1:
        message += " (the oldest file(s) are missing)"
    return "deleted", message


def _locate_seq(files: list[tuple[int, Path]], seq: int) -> tuple[str, int] | None:
    for _, path in files:
        with open(path, "rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                parsed = parse_line(raw)
                if parsed is not None and parsed.get("seq") == seq:
                    return path.name, line_no
    return None


def _recovery(file: str, line: int, parsed: dict[str, Any]) -> Recovery:
    details = parsed.get("details")
    info = details if isinstance(details, dict) else {}
    return Recovery(
        file=file,
        line=line,
        seq=int(parsed["seq"]),
        fragment_length=int(info.get("fragment_length", 0)),
        fragment_sha256=str(info.get("fragment_sha256", "")),
        moved_to=str(info.get("moved_to", "")),
    )
