"""Tamper-evident audit log: one hash-linked JSON line per decision, plus the near-name feed.

event.py   AuditEvent, the structlog rendering chain, canonical hashing, feed entries
files.py   chain file names, the lock, reading a file's tail cheaply
writer.py  AuditLog: buffered record(), batched flock'ed appends, rotation, recovery
offload.py ProcessAuditLog: the same, with the writing done in a child process (servers);
           AuditHub: one writer for all workers, in the supervisor
verify.py  verify_chain: the first broken link (edited, deleted, reordered, truncated)
query.py   read_events, read_near_names, filters and tables for the CLI
"""

from typing import Protocol

from mirror.audit.event import RECOVERED_ACTION, ZERO_HASH, AuditEvent
from mirror.audit.offload import AuditHub, ProcessAuditLog
from mirror.audit.query import EventFilter, parse_since, read_events, read_near_names, select
from mirror.audit.verify import BrokenLink, Recovery, VerifyResult, verify_chain
from mirror.audit.writer import AuditLog

__all__ = [
    "RECOVERED_ACTION",
    "ZERO_HASH",
    "AuditEvent",
    "AuditHub",
    "AuditLog",
    "AuditSink",
    "BrokenLink",
    "EventFilter",
    "ProcessAuditLog",
    "Recovery",
    "VerifyResult",
    "parse_since",
    "read_events",
    "read_near_names",
    "select",
    "verify_chain",
]


class AuditSink(Protocol):
    """What the server needs of an audit log (AuditLog or ProcessAuditLog)."""

    def record(self, event: AuditEvent) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...
