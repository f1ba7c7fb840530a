"""The decision engine: (request, policy, facts about the crate) -> Decision. Pure.

The serving core calls `decide_name` before it fetches an index file, `decide_crate` and
`decide_risk_version` on the evidence it gathered about the crate (mirror.serving.evidence),
`filter_index` on the index file it serves, and `decide_version` before serving a download.
The engine holds the policy and already-loaded facts (the name index over the popularity
corpus, the advisory database); it reads no files and no clock, so every decision can be
tested by constructing its inputs.

Precedence, for every request:
1. Rules run in a fixed order; the strongest outcome wins (block > quarantine > warn >
   allow); among equals, the earlier rule. `warn` decisions are dry runs: allowed, logged as
   would-block.
2. `deny` entries are explicit and always win: an allow entry cannot undo them.
3. An active `allow` entry for the name passes the crate-level `risk` decision; an active
   `allow` entry with a range (`name@req`) exempts those versions from `yanked`, `min_age`,
   `advisories` and the version-level `risk` decision. A person's approval of a version in
   the capability lock (`crate-mirror approve`) passes `risk` for that crate and version. An
   exemption that changed the outcome is reported as an ALLOW decision by rule "allow" or
   "approved", so the audit log shows what let it through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from mirror.index import IndexFile, IndexLine
from mirror.policy import risk, versions
from mirror.policy.advisories import AdvisoryDb
from mirror.policy.decision import Action, Decision, Mode
from mirror.policy.evidence import CrateHistory, NameFacts, VersionFacts
from mirror.policy.model import ListEntry, Policy
from mirror.policy.names import NameIndex

MAX_EXPLAIN_CHARS = 500  # characters; the body of a 403 cargo shows to the user


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
        names: NameIndex | None,
        advisories: AdvisoryDb | None,
    ) -> None:
        """`names`: the popularity corpus and internal names, indexed (None when the risk
        rule is off, or runs without a corpus: then name evidence is reported missing)."""
        self.policy = policy
        self.names = names
        self.advisories = advisories
        self._no_corpus = NameIndex(None, protect_top=0, internal=policy.rules.risk.protect)

    # -- names ------------------------------------------------------------------------

    def decide_name(self, name: str, today: date) -> Decision:
        """May this crate be asked for at all? (`deny` entries by name, before any fetch.)"""
        rules = self.policy.rules
        return versions.deny_by_name(name, self.policy.deny, rules.deny.mode, today) or (
            Decision.allow()
        )

    def name_facts(self, name: str) -> NameFacts:
        """What the name says (look-alikes, rank, internal); memoize per name: ~15 µs."""
        return (self.names or self._no_corpus).facts(name)

    # -- malicious crates (rules.risk) ------------------------------------------------

    @property
    def judges_risk(self) -> bool:
        return self.policy.rules.risk.mode is not Mode.OFF

    def decide_crate(
        self,
        name: NameFacts,
        history: CrateHistory,
        newest: VersionFacts | None,
        now: datetime,
        *,
        reviewed_by: str | None = None,
    ) -> tuple[risk.Assessment, Decision] | None:
        """The crate as a whole (None when the rule is off). `reviewed_by`: the person whose
        approval of this crate is in the capability lock (a look-alike they judged)."""
        rule = self.policy.rules.risk
        if rule.mode is Mode.OFF:
            return None
        assessment = risk.assess_crate(name, history, newest, rule, _utc(now))
        decision = risk.decision_for(assessment, name, rule.mode)
        assert decision is not None
        return assessment, self._exempt(decision, name.name, None, _utc(now), reviewed_by)

    def decide_risk_version(
        self,
        name: NameFacts,
        history: CrateHistory,
        version: VersionFacts,
        now: datetime,
        *,
        reviewed_by: str | None = None,
    ) -> tuple[risk.Assessment, Decision] | None:
        """One version (None when the rule is off). `reviewed_by`: the person who approved
        this very version in the capability lock."""
        rule = self.policy.rules.risk
        if rule.mode is Mode.OFF:
            return None
        assessment = risk.assess_version(name, history, version, rule, _utc(now))
        decision = risk.decision_for(assessment, name, rule.mode)
        assert decision is not None
        return assessment, self._exempt(decision, name.name, version.line, _utc(now), reviewed_by)

    def _exempt(
        self,
        decision: Decision,
        name: str,
        line: IndexLine | None,
        now: datetime,
        reviewed_by: str | None,
    ) -> Decision:
        """A person's judgement overrides the evidence: an allow entry (the name, or a range
        covering the version), or an approval in the capability lock. Reported as an ALLOW by
        "allow"/"approved" when it changed the outcome, with the evidence kept (the near-name
        feed still shows the look-alike)."""
        if decision.action is Action.ALLOW:
            return decision
        today = now.date()
        entry = self._allow_for_name(name, today) if line is None else None
        if line is not None:
            entry = versions.exempting_entry(
                line, versions.parse_version(line.vers), self.policy.allow, today
            ) or self._allow_for_name(name, today)
        if entry is not None:
            return Decision(
                Action.ALLOW,
                "allow",
                f"`{name}` is on the allow list ({entry.spec}): {entry.reason}",
                {**decision.details, "overrides": risk.RULE, "entry": str(entry.spec)},
            )
        if reviewed_by is not None:
            return Decision(
                Action.ALLOW,
                "approved",
                f"`{name}` was approved by {reviewed_by} in the capability lock",
                {**decision.details, "overrides": risk.RULE, "approved_by": reviewed_by},
            )
        return decision

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
        """For a download: the name rules and the version rules together (not `risk`: its
        evidence is gathered by the serving core and judged by `decide_risk_version`)."""
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


def explain(
    decision: Decision,
    policy_path: Path | str | None,
    request_id: str,
    approve: str | None = None,
) -> str:
    """The plain-text body of a 403: what was stopped, why, and how to override it.

    `approve`: the exact command that approves this crate with the settings the server runs
    with (the serving layer knows them; the engine does not).
    """
    how = _override(decision, _short_path(policy_path), approve)
    tail = f" Request {request_id}."
    verb = "quarantined" if decision.action is Action.QUARANTINE else "blocked"
    head = f"{verb} by crate-mirror policy: "
    room = MAX_EXPLAIN_CHARS - len(head) - len(how) - len(tail) - 2
    evidence = decision.details.get("risk")
    headline = decision.details.get("headline")
    if decision.rule == risk.RULE and isinstance(evidence, dict) and isinstance(headline, str):
        # The strongest evidence that fits, whole: cargo users read this, not a log.
        reason = (
            f"{headline}: {risk.fit_signals(evidence.get('signals', ()), room - len(headline) - 2)}"
        )
    else:
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


def _override(decision: Decision, path: str, approve: str | None) -> str:
    d = decision.details
    version = d.get("version")
    if decision.rule == risk.RULE:
        until = d.get("risk", {}).get("until")
        held = f"Held until {until}; or after" if until else "After"
        if approve:
            return f"{held} review, approve it: {approve}"
        return f"{held} review, add it to `allow` in {path}."
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
