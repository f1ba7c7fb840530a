"""The decision engine: name decisions, index filtering, downloads, precedence, 403 texts."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirror.index import IndexFile, canonical_name
from mirror.policy.advisories import Advisory, AdvisoryDb
from mirror.policy.decision import Action, Decision, Mode
from mirror.policy.engine import MAX_EXPLAIN_CHARS, PolicyEngine, explain, strongest
from mirror.policy.evidence import CrateHistory
from mirror.policy.model import (
    AdvisoriesRule,
    CrateSpec,
    DenyRule,
    ListEntry,
    MinAgeRule,
    Policy,
    RiskRule,
    Rules,
    YankedRule,
)
from mirror.policy.names import NameIndex
from mirror.policy.semver import VersionReq

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
OLD = "2026-01-01T00:00:00Z"
FRESH = "2026-11-25T11:00:00Z"


NAMES = NameIndex(["serde", "serde_json", "rust_decimal", "tokio"], protect_top=4)
RISK = Rules(risk=RiskRule(Mode.BLOCK))
YOUNG = CrateHistory(1, 0, NOW - timedelta(days=2), NOW - timedelta(days=2), False)
OLD_CRATE = CrateHistory(12, 0, None, None, True)


def entry(spec: str, reason: str = "reviewed", expires: date | None = None) -> ListEntry:
    name, _, req = spec.partition("@")
    spec_obj = CrateSpec(name, VersionReq.parse(req) if req else None)
    return ListEntry(spec_obj, reason, expires, field="x[0]", line=7)


def make_policy(
    rules: Rules | None = None,
    *,
    allow: tuple[ListEntry, ...] = (),
    deny: tuple[ListEntry, ...] = (),
) -> Policy:
    path = Path("/etc/crate-mirror/policy.yaml")
    return Policy(rules or Rules(), allow, deny, path, "0" * 64)


def engine(policy: Policy, advisories: list[Advisory] | None = None) -> PolicyEngine:
    db = None
    if advisories is not None:
        by_crate: dict[str, tuple[Advisory, ...]] = {}
        for a in advisories:
            by_crate[canonical_name(a.package)] = (*by_crate.get(a.package, ()), a)
        db = AdvisoryDb(Path("/db"), by_crate)
    return PolicyEngine(policy, NAMES, db)


def raw_line(
    vers: str, *, yanked: bool = False, pubtime: str | None = OLD, name: str = "foo"
) -> bytes:
    obj: dict[str, object] = {"name": name, "vers": vers, "deps": [], "cksum": "cd" * 32}
    obj["features"] = {}
    obj["yanked"] = yanked
    if pubtime is not None:
        obj["pubtime"] = pubtime
    # Odd spacing on purpose: served lines must be the upstream bytes, never re-serialized.
    return json.dumps(obj, separators=(", ", ":")).encode()


def index_of(*raws: bytes) -> IndexFile:
    return IndexFile.parse(b"\n".join(raws) + b"\n")


# -- names ----------------------------------------------------------------------------------


def test_no_rules_allow_everything() -> None:
    """With every rule off, any name is allowed by the default rule, and `risk` says nothing."""
    e = engine(make_policy(Rules(deny=DenyRule(Mode.OFF))))
    d = e.decide_name("rustdecimal", TODAY)
    assert d.action is Action.ALLOW and d.rule == "default"
    assert e.decide_crate(e.name_facts("rustdecimal"), YOUNG, None, NOW) is None


def crate_decision(e: PolicyEngine, name: str, history: CrateHistory = YOUNG) -> Decision:
    judged = e.decide_crate(e.name_facts(name), history, None, NOW)
    assert judged is not None
    return judged[1]


@pytest.mark.parametrize(
    ("mode", "action"),
    [(Mode.BLOCK, Action.QUARANTINE), (Mode.WARN, Action.WARN)],
)
def test_risk_modes(mode: Mode, action: Action) -> None:
    """A new look-alike is quarantined, or recorded as would-be-quarantined in warn mode."""
    e = engine(make_policy(Rules(risk=RiskRule(mode))))
    d = crate_decision(e, "rustdecimal")
    assert d.action is action and d.rule == "risk"
    assert d.details["near_name"]["protected"] == "rust_decimal"
    assert "looks like `rust_decimal` (separators removed)" in d.reason
    if mode is Mode.WARN:
        assert d.details["would"] == "quarantine"
    assert crate_decision(e, "rustdecimal", OLD_CRATE).action is Action.ALLOW


def test_allow_entry_wins_over_risk_but_keeps_the_evidence() -> None:
    """An unexpired allow entry lets the crate through; the feed still sees the near name."""
    policy = make_policy(RISK, allow=(entry("RustDecimal", "fork, SEC-123"),))
    d = crate_decision(engine(policy), "rustdecimal")
    assert d.action is Action.ALLOW and d.rule == "allow"
    assert "SEC-123" in d.reason
    assert d.details["near_name"]["protected"] == "rust_decimal"
    assert d.details["overrides"] == "risk"


def test_approval_in_the_capability_lock_wins_over_risk() -> None:
    """A person who approved the crate after review is on the record, by name."""
    e = engine(make_policy(RISK))
    judged = e.decide_crate(e.name_facts("rustdecimal"), YOUNG, None, NOW, reviewed_by="alice")
    assert judged is not None
    d = judged[1]
    assert d.action is Action.ALLOW and d.rule == "approved"
    assert d.details["approved_by"] == "alice" and "alice" in d.reason


def test_expired_allow_entry_stops_applying() -> None:
    """After `expires`, the risk rule applies again."""
    allow = (entry("rustdecimal", expires=TODAY - timedelta(days=1)),)
    e = engine(make_policy(RISK, allow=allow))
    assert crate_decision(e, "rustdecimal").blocks


def test_deny_by_name_wins_over_allow() -> None:
    """An explicit deny is never undone by an allow entry for the same crate."""
    policy = make_policy(
        RISK,
        allow=(entry("rustdecimal"),),
        deny=(entry("rust-decimal-x", "malware"), entry("RustDecimal", "banned")),
    )
    d = engine(policy).decide_name("rustdecimal", TODAY)
    assert d.blocks and d.rule == "deny" and "banned" in d.reason


def test_expired_deny_entry_stops_applying() -> None:
    """A deny entry past its date no longer blocks, and is listed by expired_entries."""
    old = entry("foo", expires=date(2026, 1, 1))
    e = engine(make_policy(deny=(old,), allow=(entry("bar"),)))
    assert e.decide_name("foo", TODAY).action is Action.ALLOW
    assert e.decide_name("foo", date(2026, 1, 1)).blocks
    assert e.expired_entries(TODAY) == [old]
    assert e.expired_entries(date(2026, 1, 1)) == []


def test_risk_without_a_corpus_names_the_missing_evidence() -> None:
    """No name index loaded: the look-alike cannot be seen, and the decision says so."""
    e = PolicyEngine(make_policy(RISK), None, None)
    d = crate_decision(e, "rustdecimal")
    assert "corpus" in d.details["risk"]["missing"]
    assert d.details.get("near_name") is None


# -- index filtering ------------------------------------------------------------------------

STRICT = Rules(
    yanked=YankedRule(Mode.BLOCK),
    min_age=MinAgeRule(Mode.BLOCK, timedelta(hours=72)),
    advisories=AdvisoriesRule(Mode.BLOCK),
)
ADVISORY = Advisory("RUSTSEC-2024-0001", "foo", patched=(VersionReq.parse(">=1.0.2"),))


def test_filter_index_drops_whole_lines_and_keeps_bytes() -> None:
    """Blocked versions vanish; every kept line is byte-identical to upstream."""
    lines = [
        raw_line("1.0.0"),  # advisory
        raw_line("1.0.1", yanked=True),  # yanked (and advisory)
        raw_line("1.0.2"),  # fine
        raw_line("1.0.3", pubtime=FRESH),  # too new
        raw_line("1.0.4"),  # denied range
        raw_line("1.0.5"),  # fine
    ]
    policy = make_policy(deny=(entry("foo@=1.0.4", "bad release"),), rules=STRICT)
    result = engine(policy, [ADVISORY]).filter_index(index_of(*lines), NOW)
    assert result.index.raw == lines[2] + b"\n" + lines[5] + b"\n"
    assert {v: d.rule for v, d in result.hidden.items()} == {
        "1.0.0": "advisories",
        "1.0.1": "yanked",
        "1.0.3": "min_age",
        "1.0.4": "deny",
    }
    assert result.warned == {}


def test_filter_index_warn_mode_keeps_lines() -> None:
    """In warn mode nothing is hidden; would-block versions are reported in `warned`."""
    policy = make_policy(Rules(min_age=MinAgeRule(Mode.WARN, timedelta(hours=72))))
    index = index_of(raw_line("1.0.0"), raw_line("1.0.1", pubtime=FRESH))
    result = engine(policy).filter_index(index, NOW)
    assert result.index.raw == index.raw and result.hidden == {}
    assert list(result.warned) == ["1.0.1"] and result.warned["1.0.1"].action is Action.WARN


def test_filter_index_unchanged_when_nothing_matches() -> None:
    """No matches: the served bytes are exactly the upstream bytes."""
    index = index_of(raw_line("1.0.0"), raw_line("2.0.0"))
    result = engine(make_policy(rules=STRICT), []).filter_index(index, NOW)
    assert result.index.raw == index.raw and not result.hidden and not result.warned


def test_extra_decisions_hide_and_warn() -> None:
    """Decisions of other rules (capabilities) hide lines when they block."""
    index = index_of(raw_line("1.0.0"), raw_line("1.0.1"), raw_line("1.0.2"))
    extra = {
        "1.0.1": Decision(Action.BLOCK, "capabilities", "new: network", {"approve": "x"}),
        "1.0.2": Decision(Action.WARN, "capabilities", "new: process"),
        "9.9.9": Decision(Action.BLOCK, "capabilities", "not in this index"),
    }
    result = engine(make_policy()).filter_index(index, NOW, extra)
    assert result.index.versions() == ["1.0.0", "1.0.2"]
    assert result.hidden["1.0.1"].rule == "capabilities"
    assert result.warned["1.0.2"].rule == "capabilities"


def test_allow_range_exempts_automatic_rules_but_not_deny() -> None:
    """`allow: foo@=1.0.3` lets a fresh, vulnerable release through; `deny` still wins."""
    policy = make_policy(
        allow=(entry("foo@>=1.0.0, <1.0.4", "urgent fix, SEC-9"),),
        deny=(entry("foo@=1.0.1", "broken"),),
        rules=STRICT,
    )
    index = index_of(raw_line("1.0.0"), raw_line("1.0.1"), raw_line("1.0.3", pubtime=FRESH))
    e = engine(policy, [ADVISORY])
    result = e.filter_index(index, NOW)
    assert result.index.versions() == ["1.0.0", "1.0.3"]
    assert result.hidden["1.0.1"].rule == "deny"
    d = e.decide_line(index.find("1.0.3"), NOW)  # type: ignore[arg-type]
    assert d.action is Action.ALLOW and d.rule == "allow" and d.details["overrides"] == "min_age"


def test_name_only_allow_does_not_exempt_versions() -> None:
    """Allowing a name (for typosquat) does not switch off advisories for it."""
    policy = make_policy(allow=(entry("foo"),), rules=STRICT)
    result = engine(policy, [ADVISORY]).filter_index(index_of(raw_line("1.0.0")), NOW)
    assert result.hidden["1.0.0"].rule == "advisories"


def test_advisory_ignore_list_in_engine() -> None:
    """`advisories.ignore` brings the versions back."""
    rule = AdvisoriesRule(Mode.BLOCK, ignore=frozenset({"RUSTSEC-2024-0001"}))
    result = engine(make_policy(Rules(advisories=rule)), [ADVISORY]).filter_index(
        index_of(raw_line("1.0.0")), NOW
    )
    assert result.hidden == {}


def test_advisories_are_looked_up_canonically() -> None:
    """An advisory for `foo-bar` applies to index lines of `Foo_Bar`."""
    adv = Advisory("RUSTSEC-2024-0002", "foo-bar")
    result = engine(make_policy(Rules(advisories=AdvisoriesRule(Mode.BLOCK))), [adv]).filter_index(
        index_of(raw_line("1.0.0", name="Foo_Bar")), NOW
    )
    assert list(result.hidden) == ["1.0.0"]


_line_specs = st.lists(
    st.tuples(st.integers(0, 5), st.booleans(), st.sampled_from([OLD, FRESH, None])),
    min_size=1,
    max_size=8,
    unique_by=lambda t: t[0],
)


@given(_line_specs, st.sampled_from(list(Mode)), st.sampled_from(list(Mode)))
def test_filter_partitions_versions(
    specs: list[tuple[int, bool, str | None]], y: Mode, a: Mode
) -> None:
    """Every version is either kept or hidden, kept lines keep their order and bytes."""
    raws = [raw_line(f"1.0.{p}", yanked=yk, pubtime=pt) for p, yk, pt in specs]
    index = index_of(*raws)
    policy = make_policy(Rules(yanked=YankedRule(y), min_age=MinAgeRule(a, timedelta(hours=72))))
    result = engine(policy).filter_index(index, NOW)
    kept = result.index.versions()
    assert sorted(kept + list(result.hidden)) == sorted(index.versions())
    assert not set(kept) & set(result.hidden)
    assert result.index.raw == b"".join(
        r + b"\n" for r, line in zip(raws, index.lines, strict=True) if line.vers in kept
    )
    assert all(d.blocks for d in result.hidden.values())
    assert all(d.action is Action.WARN for d in result.warned.values())


# -- downloads ------------------------------------------------------------------------------


def test_decide_version_combines_name_and_version_rules() -> None:
    """A download is refused for a denied name even if the version itself is fine."""
    policy = make_policy(STRICT, deny=(entry("rustdecimal", "malware"),))
    e = engine(policy, [])
    squat = index_of(raw_line("1.0.0", name="rustdecimal")).lines[0]
    assert e.decide_version(squat, NOW).rule == "deny"
    fresh = index_of(raw_line("1.0.0", pubtime=FRESH)).lines[0]
    assert e.decide_version(fresh, NOW).rule == "min_age"
    fine = index_of(raw_line("1.0.0")).lines[0]
    assert e.decide_version(fine, NOW).action is Action.ALLOW


def test_decisions_are_deterministic_and_pure() -> None:
    """Same inputs, same decision: the engine keeps no state between calls."""
    e = engine(make_policy(rules=STRICT), [ADVISORY])
    line = index_of(raw_line("1.0.0")).lines[0]
    assert e.decide_version(line, NOW) == e.decide_version(line, NOW)


def test_strongest() -> None:
    """block > warn > allow; the earlier decision wins ties; None is skipped."""
    a1, a2 = Decision.allow("a"), Decision.allow("b")
    w = Decision(Action.WARN, "w", "")
    b = Decision(Action.BLOCK, "b", "")
    assert strongest([a1, None, a2]) is a1
    assert strongest([a1, w, b, Decision(Action.BLOCK, "c", "")]) is b
    assert strongest([None]) is None


# -- 403 texts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "words"),
    [
        (
            Decision(Action.BLOCK, "risk", "`rustdecimal` looks malicious (score 9): evidence"),
            "After review, add it to `allow` in crate-mirror/policy.yaml",
        ),
        (
            Decision(
                Action.BLOCK,
                "deny",
                "denied",
                {"entry": "openssl@<0.10.55", "field": "deny[0]", "line": 9},
            ),
            "remove the deny entry `openssl@<0.10.55` (deny[0], line 9)",
        ),
        (
            Decision(Action.BLOCK, "advisories", "affected", {"advisories": ["RUSTSEC-2023-0044"]}),
            "RUSTSEC-2023-0044 to rules.advisories.ignore",
        ),
        (
            Decision(
                Action.BLOCK,
                "min_age",
                "too new",
                {"version": "1.0.3", "available_at": "2026-11-28T11:00:00Z"},
            ),
            "`=1.0.3`",
        ),
        (Decision(Action.BLOCK, "yanked", "yanked", {"version": "1.0.1"}), "`=1.0.1`"),
        (
            Decision(
                Action.BLOCK,
                "capabilities",
                "new: network",
                {"approve": "crate-mirror approve foo@1.0.0"},
            ),
            "`crate-mirror approve foo@1.0.0`",
        ),
    ],
)
def test_explain_names_the_override(decision: Decision, words: str) -> None:
    """The 403 body says what, why, how to override, and the request id."""
    text = explain(decision, Path("/etc/crate-mirror/policy.yaml"), "7f3a9c")
    assert text.startswith("blocked by crate-mirror policy: ")
    assert decision.reason in text and words in text
    assert text.endswith("Request 7f3a9c.")
    assert len(text) <= MAX_EXPLAIN_CHARS
    assert "/etc" not in text  # no server paths in client-visible messages


def test_explain_stays_short_for_long_reasons() -> None:
    """A very long reason is cut, but the override and request id survive."""
    d = Decision(Action.BLOCK, "risk", "x" * 2000)
    text = explain(d, "/p.yaml", "abc")
    assert len(text) <= MAX_EXPLAIN_CHARS
    assert "add it to `allow` in p.yaml" in text and text.endswith("Request abc.")


def test_explain_real_risk_decision_with_the_approve_command() -> None:
    """End to end: a quarantine names its evidence, when it lifts, and the command."""
    d = crate_decision(engine(make_policy(RISK)), "rustdecimal")
    approve = "crate-mirror approve rustdecimal@0.1.0 --lock /x/l.yaml --reason '<why>'"
    text = explain(d, Path("/srv/mirror/policies/default.yaml"), "7f3a", approve)
    assert text.startswith("quarantined by crate-mirror policy: `rustdecimal` is quarantined")
    assert "looks like `rust_decimal` (separators removed) +3" in text
    assert "Held until 2026-12-23T12:00:00Z; or after review, approve it: " + approve in text
    assert text.endswith("Request 7f3a.") and len(text) <= MAX_EXPLAIN_CHARS


def test_explain_without_policy_path() -> None:
    """No policy path (should not happen with a policy loaded): still a helpful text."""
    d = Decision(Action.BLOCK, "deny", "denied", {"entry": "foo"})
    assert "remove the deny entry `foo` in the mirror's policy" in explain(d, None, "r1")
