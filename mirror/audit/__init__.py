"""Tamper-evident audit log: one hash-linked JSON line per decision, plus the near-name feed.

event.py   AuditEvent, the structlog rendering chain, canonical hashing, feed entries
files.py   chain file names, the lock, reading a file's tail cheaply
writer.py  AuditLog: buffered record(), batched flock'ed appends, rotation, recovery
verify.py  verify_chain: the first broken link (edited, deleted, reordered, truncated)
query.py   read_events, read_near_names, filters and tables for the CLI
"""

from mirror.audit.event import RECOVERED_ACTION, ZERO_HASH, AuditEvent
from mirror.audit.query import EventFilter, parse_since, read_events, read_near_names, select
from mirror.audit.verify import BrokenLink, Recovery, VerifyResult, verify_chain
from mirror.audit.writer import AuditLog

__all__ = [
    "RECOVERED_ACTION",
    "ZERO_HASH",
    "AuditEvent",
    "AuditLog",
    "BrokenLink",
    "EventFilter",
    "Recovery",
    "VerifyResult",
    "parse_since",
    "read_events",
    "read_near_names",
    "select",
    "verify_chain",
]
