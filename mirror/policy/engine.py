"""The decision engine: (request, policy, facts about the crate) -> Decision. Pure.

The server calls `decide_name` before serving an index file, `filter_index` on the index
file it serves, and `decide_version` before serving a download. The engine holds the
policy and already-loaded facts (typosquat index, advisory database); it reads no files
and no clock, so every decision can be tested by constructing its inputs.

Precedence, for every request:
1. Rules run in a fixed order; the strongest outcome wins (block > warn > allow); among
   equals, the earlier rule. `warn` decisions are dry runs: allowed, logged as would-block.
2. `deny` entries are explicit and always win: an allow entry cannot undo them.
3. An active `allow` entry for the name passes the name rule (typosquat); an active
   `allow` entry with a range (`name@req`) exempts those versions from `yanked`,
   `min_age` and `advisories`. An exemption that changed the outcome is reported as an
   ALLOW decision by rule "allow", so the audit log shows which entry let it through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol

from mirror.index import IndexFile, IndexLine
from mirror.policy import versions
from mirror.policy.advisories import AdvisoryDb
from mirror.policy.decision import Action, Decision, Mode
from mirror.policy.model import ListEntry, Policy

MAX_EXPLAIN_CHARS = 500  # characters; the body of a 403 cargo shows to the user


class SquatMatchLike(Protocol):
    """What `mirror.policy.typosquat.SquatMatch` provides (read-only)."""

    @property
    def requested(self) -> str: ...
    @property
    def protected(self) -> str: ...
    @property
    def check(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def distance(self) -> int: ...
    @property
    def protected_rank(self) -> int | None: ...


class TyposquatChecker(Protocol):
    """What `mirror.policy.typosquat.TyposquatIndex` provides."""

    def check(self, name: str) -> SquatMatchLike | None: ...


@dataclass(frozen=True)
class FilteredIndex:
    index: IndexFile  # the lines to serve, raw bytes untouched
    hidden: Mapping[str, Decision] = field(default_factory=dict)  # vers -> blocking decision
    warned: Mapping[str, Decision] = field(default_factory=dict)  # vers -> would-block (dry run)


_RANK = {Action.ALLOW: 0, Action.WARN: 1, Action.QUARANTINE: 2, Action.BLOCK: 3}


def strongest(decisions: Iterable[Decision | None]) -> Decision | None:
    """The most severe decision (block > warn > allow); the first one among equals."""
    best: Decision | None = None
    for d in decisions:
        if d is not None and (best is None or _RANK[d.action] > _RANK[best.action]):
            best = d
    return best


class PolicyEngine:
    def __init__(
        self,
        policy: Policy,
        typosquat: TyposquatChecker | None,
        advisories: AdvisoryDb | None,
    ) -> None:
        self.policy = policy
        self.typosquat = typosquat
        self.advisories = advisories

    # -- names ------------------------------------------------------------------------

    def decide_name(self, name: str, today: date) -> Decision:
        """May this crate be served at all? (deny by name, typosquat, allow list)"""
        rules = self.policy.rules
        denied = versions.deny_by_name(name, self.policy.deny, rules.deny.mode, today)
        # deny comes first, so it wins ties: an allow entry cannot undo an explicit deny.
        return strongest([denied, self._typosquat(name, today)]) or Decision.allow()

    def _typosquat(self, name: str, today: date) -> Decision | None:
        rule = self.policy.rules.typosquat
        if rule.mode is Mode.OFF or self.typosquat is None:
            return None
        match = self.typosquat.check(name)
        if match is None:
            return None
        reason = (
            f"`{name}` looks like a typo of the popular crate `{match.protected}` "
            f"({match.description})"
        )
        details = {
            "near_name": {
                "protected": match.protected,
                "check": match.check,
                "distance": match.distance,
            },
            "protected_rank": match.protected_rank,
        }
        entry = self._allow_for_name(name, today)
        if entry is not None:
            # Dependency confusion and typosquats are judged by people; an allow entry
            # records that judgement. The near name still goes to the audit feed.
            return Decision(
                Action.ALLOW,
                "allow",
                f"`{name}` is on the allow list: {entry.reason}",
                {**details, "overrides": "typosquat", "entry": str(entry.spec)},
            )
        return Decision.matched(rule.mode, "typosquat", reason, details)

    def _allow_for_name(self, name: str, today: date) -> ListEntry | None:
        for entry in self.policy.allow:
            if entry.active(today) and entry.spec.names(name):
                return entry
        return None

    # -- versions ---------------------------------------------------------------------

    def decide_line(self, line: IndexLine, now: datetime) -> Decision:
        """Version rules only (deny ranges, yanked, min_age, advisories) for one line."""
        policy, rules = self.policy, self.policy.rules
        today = _utc(now).date()
        version = versions.parse_version(line.vers)
        denied = versions.deny_by_range(line, version, policy.deny, rules.deny.mode, today)
        found = self.advisories.for_crate(line.name) if self.advisories is not None else []
        automatic = strongest(
            [
                versions.yanked(line, rules.yanked),
                versions.min_age(line, rules.min_age, now),
                versions.advisories(line, version, found, rules.advisories),
            ]
        )
        if automatic is not None and automatic.action is not Action.ALLOW:
            entry = versions.exempting_entry(line, version, policy.allow, today)
            if entry is not None:
                automatic = Decision(
                    Action.ALLOW,
                    "allow",
                    f"`{line.name}` {line.vers} is on the allow list ({entry.spec}): "
                    f"{entry.reason}",
                    {"overrides": automatic.rule, "entry": str(entry.spec), "version": line.vers},
                )
        return strongest([denied, automatic]) or Decision.allow()

    def decide_version(self, line: IndexLine, now: datetime) -> Decision:
        """For a download: the name rules and the version rules together."""
        name = self.decide_name(line.name, _utc(now).date())
        return strongest([name, self.decide_line(line, now)]) or Decision.allow()

    def filter_index(
        self, index: IndexFile, now: datetime, extra: Mapping[str, Decision] | None = None
    ) -> FilteredIndex:
        """Drop the lines of blocked versions; `extra` adds per-version decisions of other
        rules (capabilities). Name rules are the caller's `decide_name` step."""
        extra = extra or {}
        hidden: dict[str, Decision] = {}
        warned: dict[str, Decision] = {}
        for line in index.lines:
            d = strongest([self.decide_line(line, now), extra.get(line.vers)])
            if d is None:
                continue
            if d.blocks:
                hidden[line.vers] = d
            elif d.action is Action.WARN:
                warned[line.vers] = d
        kept = index.keep(lambda line: line.vers not in hidden) if hidden else index
        return FilteredIndex(kept, hidden, warned)

    def expired_entries(self, today: date) -> list[ListEntry]:
        """Allow/deny entries past `expires`: no longer applied; the server logs a warning."""
        return [e for e in (*self.policy.allow, *self.policy.deny) if not e.active(today)]


def _utc(now: datetime) -> datetime:
    return now.astimezone(UTC) if now.tzinfo is not None else now.replace(tzinfo=UTC)


def explain(decision: Decision, policy_path: Path | str | None, request_id: str) -> str:
    """The plain-text body of a 403: what was blocked, why, and how to override it."""
    how = _override(decision, _short_path(policy_path))
    tail = f" Request {request_id}."
    head = "blocked by crate-mirror policy: "
    room = MAX_EXPLAIN_CHARS - len(head) - len(how) - len(tail) - 2
    reason = decision.reason.rstrip(".")
    if len(reason) > room:
        reason = reason[: max(0, room - 3)] + "..."
    text = f"{head}{reason}. {how}{tail}"
    return text[:MAX_EXPLAIN_CHARS]


def _short_path(path: Path | str | None) -> str:
    """The policy file as `dir/name`: enough to find it in the config repository without
    showing clients the server's file system layout (errors must not leak paths)."""
    if path is None:
        return "the mirror's policy"
    parts = Path(path).parts
    return "/".join(parts[-2:]) if len(parts) >= 2 and parts[-2] != "/" else Path(path).name


def _override(decision: Decision, path: str) -> str:
    d = decision.details
    version = d.get("version")
    if decision.rule == "typosquat":
        return f"If you meant it, add it to `allow` in {path}."
    if decision.rule == "deny":
        where = f" ({d['field']}, line {d['line']})" if "line" in d else ""
        return f"To lift it, remove the deny entry `{d.get('entry', '')}`{where} in {path}."
    if decision.rule == "yanked":
        return f"To use it anyway, add an `allow` entry for `={version}` in {path}."
    if decision.rule == "min_age":
        when = f" It will be served from {d['available_at']}." if "available_at" in d else ""
        return f"To take it now, add an `allow` entry for `={version}` in {path}.{when}"
    if decision.rule == "advisories":
        ids = ", ".join(d.get("advisories", []))
        return f"Upgrade, or accept the risk by adding {ids} to rules.advisories.ignore in {path}."
    if decision.rule == "capabilities" and d.get("approve"):
        return f"After review, approve it with `{d['approve']}`."
    return f"Ask the mirror's operators (policy {path})."
