"""Pure version rules: deny ranges, yanked, minimum age (cooldown), advisories, allow ranges."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from mirror.index import IndexLine
from mirror.policy import versions
from mirror.policy.advisories import Advisory
from mirror.policy.decision import Action, Decision, Mode
from mirror.policy.model import (
    AdvisoriesRule,
    CrateSpec,
    Informational,
    ListEntry,
    MinAgeRule,
    MissingPubtime,
    YankedRule,
)
from mirror.policy.semver import Version, VersionReq

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
MODES = [(Mode.BLOCK, Action.BLOCK), (Mode.WARN, Action.WARN)]


def line(name: str = "foo", vers: str = "1.0.0", **fields: object) -> IndexLine:
    obj = {"name": name, "vers": vers, "deps": [], "cksum": "ab" * 32, "features": {}, **fields}
    return IndexLine.parse(json.dumps(obj).encode())


def entry(spec: str, reason: str = "because", expires: date | None = None) -> ListEntry:
    name, _, req = spec.partition("@")
    return ListEntry(CrateSpec(name, VersionReq.parse(req) if req else None), reason, expires)


def _deny(
    ln: IndexLine, entries: list[ListEntry], mode: Mode = Mode.BLOCK, today: date = TODAY
) -> Decision | None:
    return versions.deny_by_range(ln, versions.parse_version(ln.vers), entries, mode, today)


# -- deny -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "action"), MODES)
def test_deny_range_matches_versions_in_range(mode: Mode, action: Action) -> None:
    """`openssl@<0.10.55` blocks (or warns about) 0.10.54 and leaves 0.10.55 alone."""
    entries = [entry("openssl@<0.10.55", "RUSTSEC-2023-0044")]
    d = _deny(line("openssl", "0.10.54"), entries, mode)
    assert d is not None and d.action is action and d.rule == "deny"
    assert "RUSTSEC-2023-0044" in d.reason and d.details["entry"] == "openssl@<0.10.55"
    assert _deny(line("openssl", "0.10.55"), entries, mode) is None


def test_deny_off_never_matches() -> None:
    """Mode off: the deny list is not applied at all."""
    assert _deny(line("openssl", "0.10.1"), [entry("openssl@<1")], Mode.OFF) is None


def test_deny_range_covers_prereleases_inside_it() -> None:
    """A pre-release of the fixed version is still vulnerable; it must not slip past."""
    assert _deny(line("openssl", "0.10.55-rc.1"), [entry("openssl@<0.10.55")]) is not None


def test_deny_names_compare_canonically() -> None:
    """`Foo-Bar@1` denies `foo_bar` 1.2.0: case and -/_ do not matter."""
    assert _deny(line("foo_bar", "1.2.0"), [entry("Foo-Bar@1")]) is not None
    assert _deny(line("foobar", "1.2.0"), [entry("Foo-Bar@1")]) is None


def test_deny_range_fails_closed_on_unparseable_version() -> None:
    """An upstream version cargo cannot parse cannot be ruled out of a range."""
    assert _deny(line("foo", "1.0"), [entry("foo@<0.5")]) is not None


def test_deny_expiry() -> None:
    """An entry applies through its `expires` day and not after."""
    entries = [entry("foo@*", expires=TODAY)]
    assert _deny(line(), entries, today=TODAY) is not None
    assert _deny(line(), entries, today=TODAY + timedelta(days=1)) is None


def test_deny_by_name_and_range_are_separate() -> None:
    """Name-only entries deny the crate (name rule); ranged entries deny versions."""
    by_name = [entry("foo")]
    d = versions.deny_by_name("FOO", by_name, Mode.BLOCK, TODAY)
    assert d is not None and d.blocks and d.rule == "deny"
    assert _deny(line(), by_name) is None  # not a range: handled by decide_name
    assert versions.deny_by_name("foo", [entry("foo@1")], Mode.BLOCK, TODAY) is None
    assert versions.deny_by_name("foo", by_name, Mode.OFF, TODAY) is None
    warn = versions.deny_by_name("foo", by_name, Mode.WARN, TODAY)
    assert warn is not None and warn.action is Action.WARN
    expired = [entry("foo", expires=TODAY - timedelta(days=1))]
    assert versions.deny_by_name("foo", expired, Mode.BLOCK, TODAY) is None


# -- yanked ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "action"), MODES)
def test_yanked(mode: Mode, action: Action) -> None:
    """Yanked lines match in block/warn; unyanked lines never do."""
    d = versions.yanked(line(yanked=True), YankedRule(mode))
    assert d is not None and d.action is action and d.rule == "yanked"
    assert versions.yanked(line(yanked=False), YankedRule(mode)) is None


def test_yanked_off_passes() -> None:
    """Mode off: yanked versions are served as upstream lists them."""
    assert versions.yanked(line(yanked=True), YankedRule(Mode.OFF)) is None


# -- min_age --------------------------------------------------------------------------------


def _age(pubtime: object, rule: MinAgeRule, now: datetime = NOW) -> Decision | None:
    return versions.min_age(line() if pubtime is None else line(pubtime=pubtime), rule, now)


@pytest.mark.parametrize(("mode", "action"), MODES)
def test_min_age_hides_young_versions(mode: Mode, action: Action) -> None:
    """A version published an hour ago is held back by a 72h cooldown."""
    d = _age("2026-11-25T11:00:00Z", MinAgeRule(mode, timedelta(hours=72)))
    assert d is not None and d.action is action and d.rule == "min_age"
    assert d.details["age_seconds"] == 3600
    assert d.details["available_at"] == "2026-11-28T11:00:00Z"


@pytest.mark.parametrize(
    ("pubtime", "hidden"),
    [
        ("2026-11-22T12:00:00Z", False),  # exactly 72h: old enough
        ("2026-11-22T12:00:01Z", True),  # one second short
        ("2026-11-22T11:59:59Z", False),
        ("2026-11-22T13:00:00+01:00", False),  # same instant as 12:00Z
        ("2026-11-22T12:00:00", False),  # no offset: read as UTC
        ("2027-01-01T00:00:00Z", True),  # in the future (clock skew or forgery): brand new
    ],
)
def test_min_age_boundaries(pubtime: str, hidden: bool) -> None:
    """The cooldown boundary is inclusive and time zones are honoured."""
    assert (_age(pubtime, MinAgeRule(Mode.BLOCK, timedelta(hours=72))) is not None) is hidden


def test_min_age_naive_now_is_utc() -> None:
    """A naive `now` is taken as UTC rather than crashing the comparison."""
    naive = NOW.replace(tzinfo=None)
    assert _age("2026-11-25T11:00:00Z", MinAgeRule(Mode.BLOCK), naive) is not None


@pytest.mark.parametrize("pubtime", [None, "", "yesterday", 12345])
@pytest.mark.parametrize(
    ("missing", "hidden"), [(MissingPubtime.ALLOW, False), (MissingPubtime.HIDE, True)]
)
def test_min_age_missing_pubtime(pubtime: object, missing: MissingPubtime, hidden: bool) -> None:
    """Lines without a usable pubtime follow `missing_pubtime`."""
    d = _age(pubtime, MinAgeRule(Mode.BLOCK, timedelta(hours=72), missing))
    assert (d is not None) is hidden
    if d is not None:
        assert d.rule == "min_age" and "publication time" in d.reason


def test_min_age_off() -> None:
    """Mode off: even a brand-new version without pubtime is served."""
    rule = MinAgeRule(Mode.OFF, timedelta(days=7), MissingPubtime.HIDE)
    assert _age("2026-11-25T11:59:00Z", rule) is None
    assert _age(None, rule) is None


# -- advisories -----------------------------------------------------------------------------

VULN = Advisory(
    "RUSTSEC-2023-0044",
    "openssl",
    title="over-read",
    patched=(VersionReq.parse(">=0.10.55"),),
    unaffected=(VersionReq.parse("<0.10.0"),),
    url="https://example.invalid/a",
)
UNMAINTAINED = Advisory("RUSTSEC-2020-0071", "openssl", informational="unmaintained")


def _adv(vers: str, found: list[Advisory], rule: AdvisoriesRule) -> Decision | None:
    ln = line("openssl", vers)
    return versions.advisories(ln, versions.parse_version(ln.vers), found, rule)


@pytest.mark.parametrize(("mode", "action"), MODES)
@pytest.mark.parametrize(
    ("vers", "affected"), [("0.10.54", True), ("0.10.55", False), ("0.9.0", False)]
)
def test_advisories_patched_and_unaffected(
    mode: Mode, action: Action, vers: str, affected: bool
) -> None:
    """Versions outside `patched` and `unaffected` match; the others pass."""
    d = _adv(vers, [VULN], AdvisoriesRule(mode))
    assert (d is not None) is affected
    if d is not None:
        assert d.action is action and d.rule == "advisories"
        assert d.details["advisories"] == ["RUSTSEC-2023-0044"]
        assert d.details["patched"] == [">=0.10.55"]
        assert "RUSTSEC-2023-0044" in d.reason


def test_advisories_ignore_list() -> None:
    """An id in `ignore` never matches (the risk was assessed and accepted)."""
    rule = AdvisoriesRule(Mode.BLOCK, ignore=frozenset({"RUSTSEC-2023-0044"}))
    assert _adv("0.10.54", [VULN], rule) is None


def test_advisories_off() -> None:
    """Mode off: advisories are not consulted."""
    assert _adv("0.10.54", [VULN], AdvisoriesRule(Mode.OFF)) is None


def test_informational_ignored_unless_listed() -> None:
    """Unmaintained/unsound/notice advisories count only for the kinds listed."""
    assert _adv("1.0.0", [UNMAINTAINED], AdvisoriesRule(Mode.BLOCK)) is None
    listed = AdvisoriesRule(Mode.BLOCK, informational=frozenset({Informational.UNMAINTAINED}))
    d = _adv("1.0.0", [UNMAINTAINED], listed)
    assert d is not None and d.blocks
    other = AdvisoriesRule(Mode.BLOCK, informational=frozenset({Informational.UNSOUND}))
    assert _adv("1.0.0", [UNMAINTAINED], other) is None


def test_several_advisories_are_all_reported() -> None:
    """Every matching id is in the details, so one `ignore` does not hide the others."""
    second = Advisory("RUSTSEC-2024-0001", "openssl")
    d = _adv("0.10.54", [VULN, second], AdvisoriesRule(Mode.BLOCK))
    assert d is not None and d.details["advisories"] == ["RUSTSEC-2023-0044", "RUSTSEC-2024-0001"]
    assert "1 more" in d.reason


def test_advisories_fail_closed_on_unparseable_version() -> None:
    """A version that does not parse cannot be shown to be patched."""
    assert _adv("1.0", [VULN], AdvisoriesRule(Mode.BLOCK)) is not None


# -- allow ranges ---------------------------------------------------------------------------


def test_exempting_entry_needs_a_range() -> None:
    """Only `name@req` allow entries exempt versions; a name-only entry does not."""
    v = Version.parse("1.2.3")
    assert versions.exempting_entry(line("foo", "1.2.3"), v, [entry("foo")], TODAY) is None
    ranged = entry("foo@=1.2.3")
    assert versions.exempting_entry(line("foo", "1.2.3"), v, [ranged], TODAY) is ranged
    other = Version.parse("1.2.4")
    assert versions.exempting_entry(line("foo", "1.2.4"), other, [ranged], TODAY) is None
    expired = entry("foo@=1.2.3", expires=TODAY - timedelta(days=1))
    assert versions.exempting_entry(line("foo", "1.2.3"), v, [expired], TODAY) is None
