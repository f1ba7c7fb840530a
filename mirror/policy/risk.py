"""Is this crate (or this version of it) malicious? Weighed evidence, explained. Pure.

Name distance alone cannot decide: a third of the popular crates one edit from a top name are
legitimate (`quotes`, `combiner`, `semver2`), and four in ten malicious crates are not typos at
all (`tracing-check`, `chrono_anchor`). So every piece of evidence is a `Signal` with points
(`mirror.policy.signals` lists them and their default weights), and the sum decides:

    score = max(0, name + history) + content + dependencies + version + missing

Name and history signals answer "is this a look-alike, or a real crate with a past?": a
crate's reputation (popular, old, many versions) can cancel a look-alike name but never
what a version's code does: a hijacked account publishes from an established crate (the
2026 `arrayref` 0.3.10), so reputation is clamped at zero before content is added.

Two questions are asked of each index file:
- the crate (`assess_crate`): name and history, plus the newest version's content and
  dependencies when the crate itself is new (then the crate is its versions). A crate that
  reaches `quarantine` is refused as a whole: its index file answers 403 with the evidence.
- each version (`assess_version`): name and history plus that version's content, added
  dependencies and age. A version that reaches `quarantine` is hidden from the index (cargo
  resolves to an older one) and its download refused.

Quarantine ends by itself when the age signals that put it over the line expire (`until`),
or sooner by approval; block ends only by approval. Evidence that could not be had (no scan,
no corpus, an unreachable dependency) is named and adds the policy's `missing` points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from mirror.policy.decision import Action, Decision, Mode
from mirror.policy.evidence import (
    ContentFacts,
    CrateHistory,
    DependencyFacts,
    NameFacts,
    RunsAt,
    VersionFacts,
)
from mirror.policy.schema import RiskRule, describe_duration
from mirror.policy.signals import MISSING, SIGNALS

__all__ = [
    "RULE",
    "Assessment",
    "Signal",
    "Verdict",
    "assess_crate",
    "assess_version",
    "decision_for",
    "fit_signals",
    "is_new",
    "summary",
]

RULE = "risk"  # the rule name in decisions, audit events and the feed

BUILD_TIME = (RunsAt.BUILD, RunsAt.MACRO)
SHIPPED = (RunsAt.BUILD, RunsAt.MACRO, RunsAt.RUNTIME)  # code that runs on users' machines
FEW_VERSIONS = 2  # versions; a crate this small is judged by its content
MANY_VERSIONS = 10  # versions, published over at least MANY_VERSIONS_SPAN
MANY_VERSIONS_SPAN = timedelta(days=182)
HISTORY_DISCOUNT = 0.25  # what content an earlier version already had still counts for
UNKNOWN_HISTORY_DISCOUNT = 0.5  # an established crate whose earlier versions were not scanned
FIRST_SEEN_WINDOW = timedelta(days=1)
SECRETS = ("sensitive_path", "sensitive_env", "secret_pattern")  # what exfiltration reads


class Verdict(StrEnum):
    ALLOW = "allow"
    WARN = "warn"  # served; recorded as would-block
    QUARANTINE = "quarantine"  # hidden and refused until old enough, or approved
    BLOCK = "block"  # refused until approved


@dataclass(frozen=True)
class Signal:
    id: str  # a key of `mirror.policy.signals.SIGNALS`, or "missing_<evidence>"
    points: float
    text: str  # one clause a person can check, e.g. "first published 9 hours ago"
    expires: datetime | None = None  # the signal stops applying then (age-based evidence)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "points": round(self.points, 2), "text": self.text}
        if self.expires is not None:
            out["expires"] = _stamp(self.expires)
        return out


@dataclass(frozen=True)
class Assessment:
    crate: str
    version: str | None  # None: the crate as a whole
    verdict: Verdict
    score: float
    signals: tuple[Signal, ...]  # everything that counted, strongest first
    meant: str | None = None  # the crate the requester probably meant
    missing: tuple[str, ...] = ()  # evidence that could not be had
    until: datetime | None = None  # a quarantine lifts by itself at this time
    recheck_at: datetime | None = None  # the score changes by age alone at this time
    thresholds: Mapping[str, float] = field(default_factory=dict)

    @property
    def stops(self) -> bool:
        return self.verdict in (Verdict.QUARANTINE, Verdict.BLOCK)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verdict": self.verdict.value,
            "score": round(self.score, 2),
            "thresholds": dict(self.thresholds),
            "signals": [s.to_json() for s in self.signals],
        }
        if self.meant is not None:
            out["meant"] = self.meant
        if self.missing:
            out["missing"] = list(self.missing)
        if self.until is not None:
            out["until"] = _stamp(self.until)
        return out


def assess_crate(
    name: NameFacts,
    history: CrateHistory,
    newest: VersionFacts | None,
    rule: RiskRule,
    now: datetime,
) -> Assessment:
    """The crate as a whole. `newest` (the version cargo would pick) counts only while the
    crate is new: then there is no past to judge it by, only what its code does."""
    now = _utc(now)
    reputation = [*_name_signals(name, rule), *_history_signals(history, rule, now)]
    evidence = _confusion(name, rule)
    if newest is not None and is_new(name, history, rule, now):
        evidence += _version_evidence(newest, history, established=False, rule=rule, now=now)
    return _judge(name.name, None, name.meant, reputation, evidence, rule, now)


def assess_version(
    name: NameFacts,
    history: CrateHistory,
    version: VersionFacts,
    rule: RiskRule,
    now: datetime,
) -> Assessment:
    """One version: the crate's name and past, plus this version's content, added
    dependencies and age."""
    now = _utc(now)
    reputation = [*_name_signals(name, rule), *_history_signals(history, rule, now)]
    established = not is_new(name, history, rule, now)
    evidence = _confusion(name, rule)
    evidence += _version_evidence(version, history, established=established, rule=rule, now=now)
    return _judge(name.name, version.line.vers, name.meant, reputation, evidence, rule, now)


# -- judging --------------------------------------------------------------------------------


def _judge(
    crate: str,
    version: str | None,
    meant: str | None,
    reputation: list[Signal],
    evidence: list[Signal],
    rule: RiskRule,
    now: datetime,
) -> Assessment:
    score = _score(reputation, evidence, now)
    verdict = _verdict(score, rule)
    moments = sorted({s.expires for s in (*reputation, *evidence) if s.expires and s.expires > now})
    until = None
    if verdict is Verdict.QUARANTINE:
        # The first moment at which age alone brings the score under the line.
        until = next(
            (t for t in moments if _score(reputation, evidence, t) < rule.thresholds.quarantine),
            None,
        )
    # Strongest suspicion first, then what spoke for the crate.
    signals = sorted((*reputation, *evidence), key=lambda s: (s.points < 0, -abs(s.points)))
    t = rule.thresholds
    return Assessment(
        crate=crate,
        version=version,
        verdict=verdict,
        score=score,
        signals=tuple(s for s in signals if s.points or s.id.startswith("missing_")),
        meant=meant,
        missing=tuple(
            s.id.removeprefix("missing_") for s in signals if s.id.startswith("missing_")
        ),
        until=until,
        recheck_at=moments[0] if moments else None,
        thresholds={"warn": t.warn, "quarantine": t.quarantine, "block": t.block},
    )


def _score(reputation: Sequence[Signal], evidence: Sequence[Signal], at: datetime) -> float:
    def live(signals: Sequence[Signal]) -> float:
        return sum(s.points for s in signals if s.expires is None or s.expires > at)

    return max(0.0, live(reputation)) + live(evidence)


def _verdict(score: float, rule: RiskRule) -> Verdict:
    t = rule.thresholds
    if score >= t.block:
        return Verdict.BLOCK
    if score >= t.quarantine:
        return Verdict.QUARANTINE
    if score >= t.warn:
        return Verdict.WARN
    return Verdict.ALLOW


def is_new(name: NameFacts, history: CrateHistory, rule: RiskRule, now: datetime) -> bool:
    """No past to judge by: a name outside the corpus whose versions are all young, or that
    has hardly any. A name in the corpus has a past by definition: the corpus lists crates
    people already depend on, whatever dates the index carries."""
    if name.rank is not None:
        return False
    if history.first_published is not None and now - history.first_published < rule.young:
        return True
    return history.versions <= FEW_VERSIONS


# -- the signals ------------------------------------------------------------------------------


def _signal(rule: RiskRule, sid: str, text: str, expires: datetime | None = None) -> Signal:
    return Signal(sid, rule.weights.get(sid, SIGNALS[sid].weight), text, expires)


def _missing(rule: RiskRule, what: str, text: str) -> Signal:
    return Signal(f"missing_{what}", rule.missing.get(what, MISSING[what][0]), text)


def _confusion(name: NameFacts, rule: RiskRule) -> list[Signal]:
    """Dependency confusion: the company's own crate name, answered by the public registry.
    Not offset by the public crate's age or popularity: either way it is not yours."""
    if not name.internal:
        return []
    return [
        _signal(
            rule,
            "internal_name",
            f"`{name.name}` is one of your internal crate names, but this copy comes from the "
            "public registry",
        )
    ]


def _name_signals(name: NameFacts, rule: RiskRule) -> list[Signal]:
    out: list[Signal] = []
    if not name.corpus:
        out.append(_missing(rule, "corpus", "no popularity corpus loaded: names not compared"))
    if name.typo is not None:
        internal = name.typo.protected_rank is None
        out.append(
            _signal(
                rule,
                "typo_internal" if internal else "typo",
                f"looks like {'your internal crate ' if internal else ''}`{name.typo.protected}` "
                f"({name.typo.description})",
            )
        )
    elif name.combo is not None:
        out.append(
            _signal(
                rule,
                "combo",
                f"`{name.combo.protected}` with {name.combo.description}",
            )
        )
    if name.rank is not None:
        downloads = f", {name.downloads:,} downloads" if name.downloads is not None else ""
        text = f"ranks #{name.rank} in the popularity corpus{downloads}"
        out.append(_signal(rule, "established", text))
    return out


def _history_signals(history: CrateHistory, rule: RiskRule, now: datetime) -> list[Signal]:
    out: list[Signal] = []
    first = history.first_published
    if first is not None:
        age = now - first
        if age < rule.young:
            out.append(
                _signal(
                    rule,
                    "young_crate",
                    f"first published {describe_duration(age)} ago",
                    first + rule.young,
                )
            )
        if age < rule.new:
            # On top of young: the first days are when malicious crates live (most are
            # found and removed within hours to days).
            out.append(
                _signal(
                    rule,
                    "new_crate",
                    f"less than {describe_duration(rule.new)} old",
                    first + rule.new,
                )
            )
        elif age >= rule.old:
            out.append(_signal(rule, "old_crate", f"first published {describe_duration(age)} ago"))
    elif history.predates_pubtime:
        out.append(
            _signal(
                rule,
                "predates_pubtime",
                "published before crates.io recorded publish times (2025)",
            )
        )
    if history.versions <= FEW_VERSIONS:
        plural = "s" if history.versions != 1 else ""
        out.append(_signal(rule, "few_versions", f"{history.versions} version{plural}"))
    elif history.versions >= MANY_VERSIONS and (
        history.predates_pubtime
        or (
            history.first_published is not None
            and history.last_published is not None
            and history.last_published - history.first_published >= MANY_VERSIONS_SPAN
        )
    ):
        out.append(_signal(rule, "many_versions", f"{history.versions} versions"))
    if history.versions and history.yanked * 2 > history.versions:
        out.append(_signal(rule, "mostly_yanked", f"{history.yanked} of {history.versions} yanked"))
    if history.stale:
        out.append(_missing(rule, "index", "upstream unreachable: history from the cached copy"))
    return [s for s in out if s.points or s.id.startswith("missing_")]


def _version_evidence(
    version: VersionFacts,
    history: CrateHistory,
    *,
    established: bool,
    rule: RiskRule,
    now: datetime,
) -> list[Signal]:
    out: list[Signal] = []
    if version.content is not None:
        out.extend(_content_signals(version.content, version.earlier, established, rule))
    elif version.scan_problem is not None:
        out.append(
            _missing(rule, "scan", f"{version.line.vers} not scanned: {version.scan_problem}")
        )
    out.extend(_dependency_signals(version.added, rule, now))
    published = version.published
    if established and published is not None and now - published < rule.new_version:
        out.append(
            _signal(
                rule,
                "new_version",
                f"{version.line.vers} published {describe_duration(now - published)} ago",
                published + rule.new_version,
            )
        )
    if version.first_seen is not None and now - version.first_seen < FIRST_SEEN_WINDOW:
        out.append(
            _signal(
                rule,
                "first_seen",
                "first requested through this mirror "
                f"{describe_duration(now - version.first_seen)} ago",
                version.first_seen + FIRST_SEEN_WINDOW,
            )
        )
    return [s for s in out if s.points or s.id.startswith("missing_")]


def _content_signals(
    content: ContentFacts, earlier: ContentFacts | None, established: bool, rule: RiskRule
) -> list[Signal]:
    """What the code does, by where it runs. A capability the crate's earlier versions
    already had counts for little (capability creep is the capability lock's business); for
    an established crate whose past was not scanned, content counts half."""
    out: list[Signal] = []

    def add(sid: str, kind: str | Iterable[str], where: Sequence[RunsAt], what: str) -> None:
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        found = [e for k in kinds for e in content.evidence(k, where)]
        if not found:
            return
        signal = _signal(rule, sid, f"{what} ({_cite(found)})")
        # History only reassures about an established crate: a new crate's earlier versions
        # are as new as this one (every version of a malicious crate carries its payload).
        if not established:
            factor, note = 1.0, ""
        elif earlier is not None and any(earlier.has(k, where) for k in kinds):
            factor, note = HISTORY_DISCOUNT, "; earlier versions did too"
        elif earlier is None and established:
            factor, note = UNKNOWN_HISTORY_DISCOUNT, "; earlier versions not scanned"
        else:
            factor, note = 1.0, ""
        out.append(Signal(sid, signal.points * factor, signal.text + note))

    add("build_net", "net", BUILD_TIME, "build-time code opens network connections")
    add("build_process", "process", BUILD_TIME, "build-time code runs programs")
    add("build_url", "url", BUILD_TIME, "build-time code holds a URL")
    add(
        "build_sensitive",
        ("sensitive_path", "sensitive_env"),
        BUILD_TIME,
        "build-time code reads secrets or home-directory files",
    )
    add(
        "build_writes_outside",
        "write_outside_out_dir",
        (RunsAt.BUILD,),
        "build script writes outside OUT_DIR",
    )
    add(
        "build_obfuscation",
        ("encoded_blob", "assembled_string"),
        BUILD_TIME,
        "build-time code hides strings",
    )
    add(
        "runtime_sensitive",
        ("sensitive_path", "sensitive_env"),
        (RunsAt.RUNTIME,),
        "library code reads secrets or home-directory files",
    )
    add("runtime_url", "url", (RunsAt.RUNTIME,), "library code holds a URL")
    add(
        "runtime_obfuscation",
        ("encoded_blob", "assembled_string"),
        (RunsAt.RUNTIME,),
        "library code hides strings",
    )
    add(
        "build_shell_command",
        "shell_command",
        BUILD_TIME,
        "build-time code names a downloader or shell",
    )
    add(
        "runtime_shell_command",
        "shell_command",
        (RunsAt.RUNTIME,),
        "library code names a downloader or shell",
    )
    add("secret_search", "secret_pattern", SHIPPED, "code looks for private keys or tokens")
    add("embedded_binary", "embedded_binary", SHIPPED, "embeds a binary with include_bytes!")
    add("shipped_binary", "binary", SHIPPED, "ships pre-built executable code")
    # Combinations that mean more than their parts: fetch-and-run at build time, and secrets
    # read where the same code can send them out.
    fetches = any(content.has(k, BUILD_TIME) for k in ("net", "url", "shell_command"))
    if fetches and content.has("process", BUILD_TIME):
        add("download_execute", "process", BUILD_TIME, "build-time code fetches and runs")
    runtime = (RunsAt.RUNTIME,)
    fetches_at_runtime = any(content.has(k, runtime) for k in ("net", "url", "shell_command"))
    if fetches_at_runtime and content.has("process", runtime):
        add("runtime_download_execute", "process", runtime, "library code fetches and runs")
    for where, label in ((BUILD_TIME, "build-time"), (runtime, "library")):
        secrets = any(content.has(k, where) for k in SECRETS)
        if secrets and (content.has("net", where) or content.has("url", where)):
            add(
                "exfiltration",
                SECRETS,
                where,
                f"{label} code reads secrets and can send them out",
            )
            break
    return out


def _dependency_signals(
    added: Sequence[DependencyFacts], rule: RiskRule, now: datetime
) -> list[Signal]:
    out: list[Signal] = []
    for dep in added:
        if dep.established:
            continue
        history = dep.history
        first = history.first_published if history is not None else None
        young = first is not None and now - first < rule.young
        if history is None:
            out.append(
                _missing(rule, "dependency", f"index of dependency `{dep.name}` unavailable")
            )
        # A look-alike that is new (or unknown) is what a takeover pulls in; an old one is
        # somebody's long-standing crate.
        if dep.typo is not None and (history is None or young or history.versions <= FEW_VERSIONS):
            out.append(
                _signal(
                    rule,
                    "dependency_typo",
                    f"adds dependency `{dep.name}`, a look-alike of `{dep.typo.protected}`",
                    first + rule.young if young and first is not None else None,
                )
            )
        if young and first is not None:
            out.append(
                _signal(
                    rule,
                    "dependency_young",
                    f"adds dependency `{dep.name}`, first published "
                    f"{describe_duration(now - first)} ago",
                    first + rule.young,
                )
            )
    return out


# -- the decision ------------------------------------------------------------------------------

_ACTIONS = {
    Verdict.ALLOW: Action.ALLOW,
    Verdict.WARN: Action.WARN,
    Verdict.QUARANTINE: Action.QUARANTINE,
    Verdict.BLOCK: Action.BLOCK,
}
REASON_CHARS = 400  # the evidence part of a reason; the 403 body adds what to do about it


def decision_for(assessment: Assessment, name: NameFacts, mode: Mode) -> Decision | None:
    """The rule's decision, shaped by its mode (`warn` turns a stop into a would-stop), or
    None when the rule is off. Every assessment with a look-alike name carries `near_name`
    details, so it reaches the public near-name feed whatever the verdict."""
    if mode is Mode.OFF:
        return None
    action = _ACTIONS[assessment.verdict]
    details: dict[str, Any] = {"risk": assessment.to_json()}
    if assessment.version is not None:
        details["version"] = assessment.version
    if mode is Mode.WARN and action in (Action.QUARANTINE, Action.BLOCK):
        details["would"] = action.value
        action = Action.WARN
    near = _near_name(name)
    if near is not None:
        details["near_name"] = near
    what = f"`{assessment.crate}`" + (f" {assessment.version}" if assessment.version else "")
    verb = {
        Verdict.ALLOW: "passed",
        Verdict.WARN: "looks suspicious",
        Verdict.QUARANTINE: "is quarantined",
        Verdict.BLOCK: "looks malicious",
    }[assessment.verdict]
    reason = (
        f"{what} {verb} (score {_number(assessment.score)}): {summary(assessment, REASON_CHARS)}"
    )
    return Decision(action, RULE, reason, details)


def _near_name(name: NameFacts) -> dict[str, Any] | None:
    if name.typo is not None:
        return {
            "protected": name.typo.protected,
            "check": name.typo.check,
            "distance": name.typo.distance,
        }
    if name.combo is not None:
        return {"protected": name.combo.protected, "check": name.combo.kind.value}
    if name.internal:
        return {"protected": name.name, "check": "internal-name"}
    return None


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


# -- words ------------------------------------------------------------------------------------


def summary(assessment: Assessment, limit: int) -> str:
    """The evidence as one line of at most `limit` characters, strongest first:
    "looks like `tracing` (plural 's' added) +3; first published 9 hours ago +2; ..."."""
    return fit_signals(assessment.signals, limit)


def fit_signals(signals: Iterable[Signal | Mapping[str, Any]], limit: int) -> str:
    """Signals (or their JSON) as "text +points; ..." in at most `limit` characters; what
    does not fit is counted ("and 2 more"), never cut mid-sentence."""
    shown = [s for s in (_as_signal(x) for x in signals) if s.text]
    pieces = [f"{s.text} {_points(s.points)}" for s in shown]
    for kept in range(len(pieces), -1, -1):
        left = len(pieces) - kept
        closing = [f"and {left} more"] if left else []
        text = "; ".join([*pieces[:kept], *closing])
        if len(text) <= limit:
            return text
    return ""


def _as_signal(s: Signal | Mapping[str, Any]) -> Signal:
    if isinstance(s, Signal):
        return s
    return Signal(str(s.get("id", "")), float(s.get("points", 0)), str(s.get("text", "")))


def _points(points: float) -> str:
    return ("+" if points >= 0 else "") + _number(points)


def _cite(evidence: Sequence[str]) -> str:
    first = evidence[0]
    return first if len(evidence) == 1 else f"{first}, +{len(evidence) - 1} more"


def _utc(now: datetime) -> datetime:
    return now.astimezone(UTC) if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")
