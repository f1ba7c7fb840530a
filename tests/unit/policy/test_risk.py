"""Malicious-crate decisions: each signal alone, combined, over time, and explained."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from mirror.index import IndexFile, IndexLine
from mirror.policy.evidence import (
    ContentFacts,
    CrateHistory,
    DependencyFacts,
    RunsAt,
    VersionFacts,
    added_dependencies,
)
from mirror.policy.names import NameIndex
from mirror.policy.risk import Assessment, Verdict, assess_crate, assess_version, summary
from mirror.policy.schema import RiskRule
from mirror.policy.signals import SIGNALS

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CORPUS = ["serde", "serde_json", "tokio", "tracing", "proc-macro2", "arrayref", "quote", "rand"]
RULE = RiskRule()


@pytest.fixture(scope="module")
def names() -> NameIndex:
    return NameIndex(CORPUS, protect_top=len(CORPUS), internal=["acme-billing"])


def line(name: str, vers: str = "0.1.0", deps: Iterable[str] = ()) -> IndexLine:
    return IndexLine(b"", name, vers, "0" * 64, False, None, None, tuple(deps))


def history(
    versions: int = 1, *, age: timedelta | None = None, predates: bool = False, span: int = 0
) -> CrateHistory:
    first = NOW - age if age is not None else None
    last = first + timedelta(days=span) if first is not None else None
    return CrateHistory(versions, 0, None if predates else first, last, predates)


def content(*items: tuple[str, RunsAt], version: str = "0.1.0") -> ContentFacts:
    return ContentFacts(
        version, {item: (f"build.rs:{i + 1} evidence",) for i, item in enumerate(items)}
    )


def version(
    name: str,
    facts: ContentFacts | None = None,
    *,
    vers: str = "0.1.0",
    published: datetime | None = None,
    added: tuple[DependencyFacts, ...] = (),
    earlier: ContentFacts | None = None,
    scan_problem: str | None = None,
) -> VersionFacts:
    return VersionFacts(line(name, vers), published, facts, scan_problem, earlier, added)


def ids(assessment: Assessment) -> set[str]:
    return {s.id for s in assessment.signals}


# -- each signal alone --------------------------------------------------------------------------


def test_typo_alone_on_an_old_crate_is_allowed(names: NameIndex) -> None:
    """`quotes` (plural of `quote`), published before 2025: a look-alike with a past passes,
    but the evidence is kept (it goes to the near-name feed)."""
    a = assess_crate(names.facts("quotes"), history(3, predates=True), None, RULE, NOW)
    assert a.verdict is Verdict.ALLOW
    assert {"typo", "predates_pubtime"} <= ids(a)
    assert a.meant == "quote"


def test_typo_of_a_new_crate_is_quarantined_until_it_is_old_enough(names: NameIndex) -> None:
    """`serde_jsno` two days old: held; the hold lifts when `young` has passed."""
    published = NOW - timedelta(days=2)
    v = version("serde_jsno", content())
    a = assess_crate(names.facts("serde_jsno"), history(age=timedelta(days=2)), v, RULE, NOW)
    assert a.verdict is Verdict.QUARANTINE
    assert {"typo", "new_crate", "young_crate", "few_versions"} <= ids(a)
    assert a.until == published + RULE.young
    assert a.recheck_at == published + RULE.new
    later = assess_crate(names.facts("serde_jsno"), history(age=timedelta(days=31)), v, RULE, NOW)
    assert later.verdict is Verdict.ALLOW


def test_combo_alone_on_a_new_crate_is_not_stopped(names: NameIndex) -> None:
    """A brand-new `tokio-foo` with nothing else against it: combos are weak evidence."""
    v = version("tokio-foo", content())
    a = assess_crate(names.facts("tokio-foo"), history(age=timedelta(days=1)), v, RULE, NOW)
    assert "combo" in ids(a)
    assert not a.stops


def test_internal_name_from_upstream_is_blocked(names: NameIndex) -> None:
    """Dependency confusion: the company's own crate name answered by the public registry."""
    a = assess_crate(names.facts("acme-billing"), history(5, predates=True), None, RULE, NOW)
    assert a.verdict is Verdict.BLOCK
    assert "internal_name" in ids(a)


def test_near_name_of_an_internal_crate_counts_more(names: NameIndex) -> None:
    facts = names.facts("acme-biling")
    a = assess_crate(facts, history(age=timedelta(days=40)), None, RULE, NOW)
    assert "typo_internal" in ids(a)
    assert a.score >= SIGNALS["typo_internal"].weight


def test_established_name_cancels_a_look_alike(names: NameIndex) -> None:
    """A name that is itself in the corpus is a real crate, whatever it resembles."""
    corpus = NameIndex([*CORPUS, "serde_jsonx"], protect_top=len(CORPUS))
    a = assess_crate(corpus.facts("serde_jsonx"), history(age=timedelta(days=2)), None, RULE, NOW)
    assert "established" in ids(a)
    assert not a.stops


@pytest.mark.parametrize(
    ("items", "signal"),
    [
        ([("net", RunsAt.BUILD)], "build_net"),
        ([("net", RunsAt.MACRO)], "build_net"),
        ([("process", RunsAt.BUILD)], "build_process"),
        ([("url", RunsAt.BUILD)], "build_url"),
        ([("sensitive_path", RunsAt.BUILD)], "build_sensitive"),
        ([("sensitive_env", RunsAt.MACRO)], "build_sensitive"),
        ([("write_outside_out_dir", RunsAt.BUILD)], "build_writes_outside"),
        ([("encoded_blob", RunsAt.BUILD)], "build_obfuscation"),
        ([("assembled_string", RunsAt.MACRO)], "build_obfuscation"),
        ([("sensitive_path", RunsAt.RUNTIME)], "runtime_sensitive"),
        ([("url", RunsAt.RUNTIME)], "runtime_url"),
        ([("encoded_blob", RunsAt.RUNTIME)], "runtime_obfuscation"),
        ([("embedded_binary", RunsAt.RUNTIME)], "embedded_binary"),
        ([("binary", RunsAt.BUILD)], "shipped_binary"),
        ([("shell_command", RunsAt.BUILD)], "build_shell_command"),
        ([("shell_command", RunsAt.RUNTIME)], "runtime_shell_command"),
        ([("secret_pattern", RunsAt.RUNTIME)], "secret_search"),
    ],
)
def test_each_content_signal(
    names: NameIndex, items: list[tuple[str, RunsAt]], signal: str
) -> None:
    """Each kind of content evidence adds its signal, with the evidence cited."""
    v = version("widget", content(*items))
    a = assess_crate(names.facts("widget"), history(age=timedelta(days=1)), v, RULE, NOW)
    found = [s for s in a.signals if s.id == signal]
    assert found and found[0].points == SIGNALS[signal].weight
    assert "build.rs:1 evidence" in found[0].text


def test_key_search_with_a_way_out_is_exfiltration(names: NameIndex) -> None:
    """The 2025 `faster_log` pattern: library code looks for private keys and can post them."""
    v = version("fast-logx", content(("secret_pattern", RunsAt.RUNTIME), ("net", RunsAt.RUNTIME)))
    a = assess_crate(names.facts("fast-logx"), history(age=timedelta(days=3)), v, RULE, NOW)
    assert {"secret_search", "exfiltration"} <= ids(a)
    assert a.verdict is Verdict.BLOCK


def test_code_that_only_tests_run_does_not_count(names: NameIndex) -> None:
    """tests/, examples/ and benches/ never run on a user's machine."""
    v = version("widget", content(("net", RunsAt.OTHER), ("sensitive_path", RunsAt.OTHER)))
    a = assess_crate(names.facts("widget"), history(age=timedelta(days=1)), v, RULE, NOW)
    assert not {"build_net", "runtime_sensitive", "exfiltration"} & ids(a)


def test_missing_scan_is_named_and_weighed(names: NameIndex) -> None:
    v = version("widget", None, scan_problem="upstream unreachable")
    a = assess_crate(names.facts("widget"), history(age=timedelta(days=1)), v, RULE, NOW)
    assert a.missing == ("scan",)
    missing = next(s for s in a.signals if s.id == "missing_scan")
    assert "upstream unreachable" in missing.text
    assert missing.points == RULE.missing["scan"]


def test_missing_corpus_is_named(names: NameIndex) -> None:
    no_corpus = NameIndex(None, protect_top=5000)
    a = assess_crate(no_corpus.facts("serde_jsno"), history(age=timedelta(days=1)), None, RULE, NOW)
    assert "corpus" in a.missing
    assert "typo" not in ids(a)


def test_policy_decides_which_way_missing_evidence_falls(names: NameIndex) -> None:
    """`missing.scan: 10` makes an unscannable new crate a block; 0 makes it neutral."""
    v = version("widget", None, scan_problem="scan failed")
    strict = dataclasses.replace(RULE, missing=MappingProxyType({**RULE.missing, "scan": 10.0}))
    lenient = dataclasses.replace(RULE, missing=MappingProxyType({**RULE.missing, "scan": 0.0}))
    h = history(age=timedelta(days=1))
    assert assess_crate(names.facts("widget"), h, v, strict, NOW).verdict is Verdict.BLOCK
    assert assess_crate(names.facts("widget"), h, v, lenient, NOW).verdict is Verdict.ALLOW


# -- combined -----------------------------------------------------------------------------------


def test_build_script_that_downloads_and_runs_is_blocked(names: NameIndex) -> None:
    v = version(
        "evm-units",
        content(("net", RunsAt.BUILD), ("process", RunsAt.BUILD), ("url", RunsAt.BUILD)),
    )
    a = assess_crate(names.facts("evm-units"), history(age=timedelta(hours=5)), v, RULE, NOW)
    assert a.verdict is Verdict.BLOCK
    assert "download_execute" in ids(a)
    assert a.until is None  # a block does not lift by age


def test_runtime_exfiltration_of_a_combosquat_is_blocked(names: NameIndex) -> None:
    """`tracing-check` reading credentials in library code that can send them."""
    v = version(
        "tracing-check",
        content(
            ("sensitive_env", RunsAt.RUNTIME), ("net", RunsAt.RUNTIME), ("url", RunsAt.RUNTIME)
        ),
    )
    a = assess_crate(names.facts("tracing-check"), history(age=timedelta(hours=4)), v, RULE, NOW)
    assert a.verdict is Verdict.BLOCK
    assert {"combo", "exfiltration", "runtime_sensitive"} <= ids(a)
    assert a.meant == "tracing"


def test_content_of_an_old_crate_is_judged_per_version_not_for_the_crate(
    names: NameIndex,
) -> None:
    """An established crate is not refused as a whole for one version's content."""
    v = version("rand", content(("net", RunsAt.BUILD), ("process", RunsAt.BUILD)))
    h = history(40, age=timedelta(days=3000), span=2900)
    crate = assess_crate(names.facts("rand"), h, v, RULE, NOW)
    assert crate.verdict is Verdict.ALLOW
    assert not {"build_net", "download_execute"} & ids(crate)
    per_version = assess_version(names.facts("rand"), h, v, RULE, NOW)
    assert {"build_net", "download_execute"} <= ids(per_version)


def test_reputation_never_cancels_what_a_version_does(names: NameIndex) -> None:
    """A takeover: `arrayref` (popular, old) releases a version adding a fresh look-alike
    dependency. The version is quarantined, the crate as a whole is not."""
    h = history(12, predates=True)
    dep_history = history(2, age=timedelta(hours=2))
    dep = DependencyFacts("proc-macro1", names.facts("proc-macro1").typo, False, dep_history)
    v = version(
        "arrayref",
        content(),
        vers="0.3.10",
        published=NOW - timedelta(hours=1),
        added=(dep,),
    )
    assert assess_crate(names.facts("arrayref"), h, v, RULE, NOW).verdict is Verdict.ALLOW
    a = assess_version(names.facts("arrayref"), h, v, RULE, NOW)
    assert a.verdict is Verdict.QUARANTINE
    assert {"dependency_typo", "dependency_young", "new_version", "established"} <= ids(a)
    assert a.score > 0  # reputation (-6) is clamped at zero before the version's evidence


def test_an_old_look_alike_dependency_is_not_evidence(names: NameIndex) -> None:
    dep = DependencyFacts("quotes", names.facts("quotes").typo, False, history(9, predates=True))
    v = version("widget", content(), added=(dep,))
    a = assess_version(names.facts("widget"), history(30, predates=True), v, RULE, NOW)
    assert not {"dependency_typo", "dependency_young"} & ids(a)


def test_unknown_dependency_is_missing_evidence(names: NameIndex) -> None:
    dep = DependencyFacts("proc-macro1", names.facts("proc-macro1").typo, False, None)
    v = version("widget", content(), added=(dep,))
    a = assess_version(names.facts("widget"), history(30, predates=True), v, RULE, NOW)
    assert "dependency" in a.missing
    assert "dependency_typo" in ids(a)  # an unknown look-alike counts: fail toward caution


def test_capabilities_the_crate_always_had_count_little(names: NameIndex) -> None:
    """A scanned earlier version with the same build-time network use: capability creep is
    the capability lock's job; here it barely counts."""
    facts = content(("net", RunsAt.BUILD))
    h = history(20, age=timedelta(days=800), span=700)
    fresh = assess_version(names.facts("widget"), h, version("widget", facts), RULE, NOW)
    known = assess_version(
        names.facts("widget"), h, version("widget", facts, earlier=facts), RULE, NOW
    )
    first = next(s for s in fresh.signals if s.id == "build_net")
    again = next(s for s in known.signals if s.id == "build_net")
    assert again.points < first.points
    assert "earlier versions did too" in again.text


def test_an_established_release_is_watched_while_new(names: NameIndex) -> None:
    h = history(20, age=timedelta(days=800), span=700)
    v = version("widget", content(), published=NOW - timedelta(hours=3))
    a = assess_version(names.facts("widget"), h, v, RULE, NOW)
    new_version = next(s for s in a.signals if s.id == "new_version")
    assert new_version.expires == NOW - timedelta(hours=3) + RULE.new_version


def test_a_corpus_crate_is_never_new(names: NameIndex) -> None:
    """A name in the corpus is one people already depend on: even when the index says all its
    versions are days old (a registry rebuilt, a mirror of a mirror), it is judged release by
    release, never as a whole crate by what its newest version does."""
    h = history(2, age=timedelta(days=2))
    facts = content(("net", RunsAt.BUILD), ("process", RunsAt.BUILD), ("url", RunsAt.BUILD))
    v = version("serde", facts, published=NOW - timedelta(hours=1))
    crate = assess_crate(names.facts("serde"), h, v, RULE, NOW)
    assert crate.verdict is Verdict.ALLOW
    assert "download_execute" not in ids(crate)
    assert assess_version(names.facts("serde"), h, v, RULE, NOW).verdict is not Verdict.ALLOW
    assert assess_crate(names.facts("widget"), h, v, RULE, NOW).verdict is Verdict.BLOCK


def test_weights_come_from_the_policy(names: NameIndex) -> None:
    heavy = dataclasses.replace(RULE, weights=MappingProxyType({**RULE.weights, "combo": 9.0}))
    a = assess_crate(names.facts("tokio-foo"), history(9, predates=True), None, heavy, NOW)
    assert a.verdict is Verdict.BLOCK


# -- history facts and dependency diffs ---------------------------------------------------------


def test_history_from_an_index_file() -> None:
    """Earliest pubtime is the crate's birth; any line without one means "before 2025"."""
    raw = (
        b'{"name":"a","vers":"0.1.0","cksum":"'
        + b"0" * 64
        + b'","pubtime":"2026-11-20T00:00:00Z"}\n'
        b'{"name":"a","vers":"0.2.0","cksum":"' + b"1" * 64 + b'","pubtime":"2026-11-25T00:00:00Z",'
        b'"yanked":true}\n'
    )
    h = CrateHistory.from_index(IndexFile.parse(raw))
    assert (h.versions, h.yanked, h.predates_pubtime) == (2, 1, False)
    assert h.first_published == datetime(2026, 11, 20, tzinfo=UTC)
    older = CrateHistory.from_index(
        IndexFile.parse(raw + b'{"name":"a","vers":"0.0.1","cksum":"' + b"2" * 64 + b'"}\n')
    )
    assert older.predates_pubtime and older.first_published is None


def test_added_dependencies_compare_with_the_version_before() -> None:
    def entry(vers: str, deps: list[str]) -> bytes:
        items = ",".join(f'{{"name":"{d}","req":"^1","kind":"normal"}}' for d in deps)
        return f'{{"name":"a","vers":"{vers}","cksum":"{"0" * 64}","deps":[{items}]}}'.encode()

    index = IndexFile.parse(
        b"\n".join([entry("0.1.0", ["serde"]), entry("0.2.0", ["serde", "proc-macro1"])])
    )
    first, second = index.lines
    assert added_dependencies(index, first) == ("serde",)
    assert added_dependencies(index, second) == ("proc-macro1",)


def test_dev_dependencies_are_not_dependencies() -> None:
    raw = (
        b'{"name":"a","vers":"0.1.0","cksum":"' + b"0" * 64 + b'","deps":['
        b'{"name":"criterion","req":"^1","kind":"dev"},'
        b'{"name":"pm","package":"proc-macro1","req":"^1","kind":"build"}]}'
    )
    assert IndexLine.parse(raw).deps == ("proc-macro1",)


# -- explaining ---------------------------------------------------------------------------------


def test_summary_fits_and_leads_with_the_strongest_evidence(names: NameIndex) -> None:
    v = version(
        "tracing-check",
        content(
            ("sensitive_env", RunsAt.RUNTIME),
            ("net", RunsAt.RUNTIME),
            ("url", RunsAt.RUNTIME),
            ("encoded_blob", RunsAt.RUNTIME),
        ),
    )
    a = assess_crate(names.facts("tracing-check"), history(age=timedelta(hours=4)), v, RULE, NOW)
    text = summary(a, 200)
    assert len(text) <= 200
    assert text.startswith("library code reads secrets and can send them out")
    assert "more" in text


def test_assessment_json_is_plain(names: NameIndex) -> None:
    a = assess_crate(names.facts("serde_jsno"), history(age=timedelta(days=1)), None, RULE, NOW)
    data = a.to_json()
    assert data["verdict"] == "quarantine"
    assert data["meant"] == "serde_json"
    assert data["until"].endswith("Z")
    assert {s["id"] for s in data["signals"]} >= {"typo", "new_crate"}


# -- the decision -------------------------------------------------------------------------------


def test_decision_carries_the_evidence_and_the_near_name(names: NameIndex) -> None:
    from mirror.policy.decision import Action, Mode
    from mirror.policy.risk import decision_for

    facts = names.facts("serde_jsno")
    a = assess_crate(facts, history(age=timedelta(days=1)), None, RULE, NOW)
    d = decision_for(a, facts, Mode.BLOCK)
    assert d is not None and d.action is Action.QUARANTINE and d.blocks
    assert d.rule == "risk"
    assert d.details["near_name"]["protected"] == "serde_json"
    assert d.details["risk"]["verdict"] == "quarantine"
    assert d.reason.startswith("`serde_jsno` is quarantined (score ")
    assert "looks like `serde_json`" in d.reason


def test_warn_mode_is_a_dry_run_that_says_what_it_would_have_done(names: NameIndex) -> None:
    from mirror.policy.decision import Action, Mode
    from mirror.policy.risk import decision_for

    facts = names.facts("serde_jsno")
    a = assess_crate(facts, history(age=timedelta(days=1)), None, RULE, NOW)
    d = decision_for(a, facts, Mode.WARN)
    assert d is not None and d.action is Action.WARN and not d.blocks
    assert d.details["would"] == "quarantine"
    assert decision_for(a, facts, Mode.OFF) is None
