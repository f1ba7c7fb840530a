"""The one result type every rule returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Mode(StrEnum):
    """How a rule acts when it matches. `warn` is a dry run: allowed, logged as would-block."""

    BLOCK = "block"
    WARN = "warn"
    OFF = "off"


class Action(StrEnum):
    ALLOW = "allow"
    WARN = "warn"  # served; recorded as would-block
    QUARANTINE = "quarantine"  # refused (and hidden) until old enough or approved
    BLOCK = "block"  # refused until approved


@dataclass(frozen=True)
class Decision:
    action: Action
    rule: str  # which rule decided, e.g. "typosquat", "deny", "capabilities", "default"
    reason: str  # one human sentence, safe to show to cargo users
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> bool:
        """Whether the request is refused (a quarantine refuses too, for a time)."""
        return self.action is Action.BLOCK or self.action is Action.QUARANTINE

    @classmethod
    def allow(cls, rule: str = "default", reason: str = "no rule matched") -> Decision:
        return cls(Action.ALLOW, rule, reason)

    @classmethod
    def matched(
        cls, mode: Mode, rule: str, reason: str, details: Mapping[str, Any] | None = None
    ) -> Decision:
        """The decision of a rule that matched, shaped by its mode (`warn`: what it would
        have done is kept in the details, as the risk rule does)."""
        action = {Mode.BLOCK: Action.BLOCK, Mode.WARN: Action.WARN, Mode.OFF: Action.ALLOW}[mode]
        out = dict(details or {})
        if mode is Mode.WARN:
            out["would"] = Action.BLOCK.value
        return cls(action, rule, reason, out)
