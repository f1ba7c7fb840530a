"""What one audit event is, and how it becomes one canonical, hash-linked JSON line.

`prepare` leaves out empty fields, redacts credential-like keys and makes every value plain
JSON in one pass; structlog's JSONRenderer (sorted keys, compact) renders it.

The rendered text (without "hash", with "prev") is what the hash covers; `link` appends the
hash as the line's last key. The verifier re-renders the parsed line with `canonical_json`
and must get byte-identical text, which is why `prepare` first turns every value into
plain JSON data (string keys, lists, finite floats): anything else would not survive a
parse-and-render round trip.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import structlog

ZERO_HASH = "0" * 64  # "prev" of the first event ever
RECOVERED_ACTION = "audit.recovered"
DROPPED_ACTION = "audit.dropped"
REDACTED = "[redacted]"

# Keys whose values are credentials. Stops a bearer token or password that reached an
# event's details (e.g. copied request headers) from being written to a log that is
# read by many people and kept for years.
_SECRET_KEY = re.compile(
    r"authori[sz]ation|token|passw(or)?d|passwd|secret|cookie|api[-_]?key|credential",
    re.IGNORECASE,
)

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)


def _encode(data: Any, **_structlog_defaults: Any) -> str:
    # One prepared encoder instead of json.dumps(**options), which builds an encoder per
    # call. JSONRenderer's `default=` fallback is not needed: to_json_types ran first.
    return _ENCODER.encode(data)


_render = structlog.processors.JSONRenderer(serializer=_encode)


@dataclass(frozen=True)
class AuditEvent:
    """One decision (or admin action) as the server reports it to the audit log."""

    action: str  # "allow" | "warn" | "block" | admin actions like "approve", "revoke"
    rule: str
    reason: str
    route: str | None = None
    crate: str | None = None
    version: str | None = None
    request_id: str | None = None
    client: str | None = None
    policy_digest: str | None = None  # sha256 of the policy file in force
    cksum: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        """The event's own fields as a dict (before time, seq, prev, hash are added)."""
        return {
            "action": self.action,
            "rule": self.rule,
            "reason": self.reason,
            "route": self.route,
            "crate": self.crate,
            "version": self.version,
            "request_id": self.request_id,
            "client": self.client,
            "policy_digest": self.policy_digest,
            "cksum": self.cksum,
            "details": self.details,
        }


_second_cache: tuple[int, str] = (-1, "")  # (unix second, its "YYYY-MM-DDTHH:MM:SS")


def rfc3339(timestamp: float) -> str:
    """UTC time with microseconds, e.g. 2026-11-25T15:08:09.123456Z."""
    global _second_cache
    second = int(timestamp // 1)
    cached_second, prefix = _second_cache  # one tuple: consistent even across threads
    if second != cached_second:
        prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second_cache = (second, prefix)
    micros = min(int((timestamp - second) * 1_000_000), 999_999)
    return f"{prefix}.{micros:06d}Z"


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def _redact(key: Any, value: Any) -> Any:
    """Replace the value of any credential-like key, at any depth."""
    if type(key) is str and _is_secret_key(key):
        return REDACTED
    kind = type(value)
    if value is None or kind is str or kind is int:  # the common cases, kept cheap
        return value
    if kind is dict or isinstance(value, Mapping):
        return {k: _redact(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(None, v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """Plain JSON data only, so rendering a parsed line round-trips to identical bytes."""
    kind = type(value)
    if value is None or kind is str or kind is int:  # the common cases, kept cheap
        return value
    if kind is dict:
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items, key=canonical_json) if isinstance(value, set | frozenset) else items
    return str(value)


def prepare(event: AuditEvent, timestamp: float) -> dict[str, Any]:
    """The event as plain, redacted JSON data with its time; seq/prev/hash come at link time.

    One pass over the fields (the writer runs this for every request the mirror serves):
    unknown fields (None) and empty details are left out, credential-like keys redacted at
    any depth, every value made plain JSON.
    """
    out: dict[str, Any] = {"time": rfc3339(timestamp)}
    for key, value in event.fields().items():
        if value is None:
            continue
        if type(value) is str and not _is_secret_key(key):
            out[key] = value
        elif _is_secret_key(key):
            out[key] = REDACTED
        elif not value and isinstance(value, Mapping):
            continue
        else:
            out[key] = _plain(_redact(key, value))
    return out


def canonical_json(data: Any) -> str:
    """The one text form that hashes are computed over: sorted keys, no spaces, ASCII."""
    rendered = _render(None, "audit", data)
    return rendered if isinstance(rendered, str) else rendered.decode()


def event_hash(body: str) -> str:
    return hashlib.sha256(body.encode("ascii")).hexdigest()


def link(event_dict: dict[str, Any], seq: int, prev: str) -> tuple[str, str]:
    """Chain one prepared event after `prev`: returns (line without newline, its hash)."""
    body = canonical_json({**event_dict, "seq": seq, "prev": prev})
    digest = event_hash(body)
    return f'{body[:-1]},"hash":"{digest}"}}', digest


def expected_hash(parsed: Mapping[str, Any]) -> str:
    """What the "hash" of a parsed line must be: sha256 of the rest, re-rendered canonically."""
    return event_hash(canonical_json({k: v for k, v in parsed.items() if k != "hash"}))


def feed_entry(event_dict: Mapping[str, Any]) -> dict[str, Any] | None:
    """The feed entry for a prepared event, or None if it is not one: every near-name decision
    (stopped or let through) and every `warn` decision of any rule (a dry run's would-block).

    Only public facts: which crate was asked for, which protected crate it resembles and how,
    what the mirror did (or would have done) and the evidence it weighed (facts about the
    crate, not the client). No client address and no request id, so the feed can be published
    without revealing who asked.
    """
    raw = event_dict.get("details")
    details: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    near = details.get("near_name")
    warned = event_dict.get("action") == "warn"
    if not isinstance(near, Mapping) and not warned:
        return None
    risk = details.get("risk")
    entry = {
        "time": event_dict.get("time"),
        "crate": event_dict.get("crate"),
        "version": event_dict.get("version"),
        "action": event_dict.get("action"),
        "rule": event_dict.get("rule"),
    }
    if isinstance(near, Mapping):
        entry.update(
            protected=near.get("protected"), check=near.get("check"), distance=near.get("distance")
        )
    if warned:
        entry.update(would=details.get("would"), reason=event_dict.get("reason"))
    if isinstance(risk, Mapping):
        entry.update(
            meant=risk.get("meant"),
            verdict=risk.get("verdict"),
            score=risk.get("score"),
            evidence=risk.get("signals"),
            until=risk.get("until"),
        )
    return {k: v for k, v in entry.items() if v is not None}


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """A stored line parsed as an event object, or None if it is not one (damaged text)."""
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    return parsed if isinstance(parsed, dict) else None
