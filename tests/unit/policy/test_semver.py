"""Cargo's semver: the examples of the Cargo book's "Specifying Dependencies" chapter, the
pre-release opt-in rule, ordering (semver.org rule 11) and parse errors."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirror.policy.semver import STAR, Op, Version, VersionReq

# A grid of versions around the boundaries the Cargo book's examples talk about.
GRID = [
    Version(major, minor, patch)
    for major, minor, patch in itertools.product(range(3), range(4), range(5))
]


def _same_set(left: str, right: str) -> None:
    a, b = VersionReq.parse(left), VersionReq.parse(right)
    for v in GRID:
        assert a.matches(v) == b.matches(v), f"{left} vs {right} disagree on {v}"


@pytest.mark.parametrize(
    ("req", "expanded"),
    [
        # Caret requirements (and the default, which is caret).
        ("^1.2.3", ">=1.2.3, <2.0.0"),
        ("^1.2", ">=1.2.0, <2.0.0"),
        ("^1", ">=1.0.0, <2.0.0"),
        ("^0.2.3", ">=0.2.3, <0.3.0"),
        ("^0.2", ">=0.2.0, <0.3.0"),
        ("^0.0.3", ">=0.0.3, <0.0.4"),
        ("^0.0", ">=0.0.0, <0.1.0"),
        ("^0", ">=0.0.0, <1.0.0"),
        ("1.2.3", ">=1.2.3, <2.0.0"),
        ("0.2", ">=0.2.0, <0.3.0"),
        # Tilde requirements.
        ("~1.2.3", ">=1.2.3, <1.3.0"),
        ("~1.2", ">=1.2.0, <1.3.0"),
        ("~1", ">=1.0.0, <2.0.0"),
        # Wildcards.
        ("*", ">=0.0.0"),
        ("1.*", ">=1.0.0, <2.0.0"),
        ("1.2.*", ">=1.2.0, <1.3.0"),
        ("1.x", ">=1.0.0, <2.0.0"),
        ("1.2.X", ">=1.2.0, <1.3.0"),
        # Partial comparison requirements.
        ("=1.2", ">=1.2.0, <1.3.0"),
        ("=1", ">=1.0.0, <2.0.0"),
        (">1.2", ">=1.3.0"),
        (">1", ">=2.0.0"),
        ("<=1.2", "<1.3.0"),
        ("<1", "<1.0.0"),
        (">= 1.2, < 1.5", ">=1.2.0, <1.5.0"),
    ],
)
def test_cargo_book_examples(req: str, expanded: str) -> None:
    """Each requirement matches exactly the versions of its documented expansion."""
    _same_set(req, expanded)


@pytest.mark.parametrize(
    ("req", "version", "expected"),
    [
        ("1.2.3", "1.9.9", True),
        ("1.2.3", "2.0.0", False),
        ("1.2.3", "1.2.2", False),
        ("=1.2.3", "1.2.3+build.5", True),  # build metadata never matters
        ("<0.10.55", "0.10.54", True),
        ("<0.10.55", "0.10.55", False),
        (">=1.0", "2.0.0-rc.1", False),  # pre-release is opt-in
        (">=1.0.0-alpha", "1.0.0-beta", True),  # same major.minor.patch opted in
        (">=1.0.0-alpha", "1.0.1-beta", False),  # other triple: not opted in
        ("^1.2.3-beta.2", "1.2.3-beta.4", True),
        ("^1.2.3-beta.2", "1.2.3-alpha", False),
        ("^1.2.3-beta.2", "1.2.4", True),
        ("~1.2.3-beta", "1.2.3", True),
        ("=1.0.0-rc.1", "1.0.0-rc.1", True),
        ("=1.0.0-rc.1", "1.0.0", False),
        ("<1.0.0", "1.0.0-rc.1", False),  # even though rc.1 sorts below 1.0.0
        ("*", "1.0.0-alpha", False),
        ("*", "0.0.0", True),
        (">1.2.3-alpha, <2", "1.2.3-alpha.1", True),
    ],
)
def test_matches(req: str, version: str, expected: bool) -> None:
    """Single requirement/version pairs, including cargo's pre-release rules."""
    assert VersionReq.parse(req).matches(version) is expected
    assert VersionReq.parse(req).matches(Version.parse(version)) is expected


def test_ordering_follows_semver_rule_11() -> None:
    """Pre-releases sort by identifiers, numerically where numeric, before the release."""
    expected = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "1.10.0",
        "2.0.0",
    ]
    shuffled = list(reversed(expected))
    assert [str(v) for v in sorted(map(Version.parse, shuffled))] == expected


def test_version_fields_and_prerelease_flag() -> None:
    """Parsing fills every field; is_prerelease reflects the pre-release part only."""
    v = Version.parse("1.2.3-rc.1+git.abc")
    assert (v.major, v.minor, v.patch, v.pre, v.build) == (1, 2, 3, "rc.1", "git.abc")
    assert v.is_prerelease
    assert not Version.parse("1.2.3+build").is_prerelease
    assert str(v) == "1.2.3-rc.1+git.abc"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "1.2",
        "v1.2.3",
        "01.2.3",
        "1.02.3",
        "1.2.3-",
        "1.2.3-01",
        "1.2.3-a..b",
        "1.2.3+",
        " 1.2.3",
        "1.2.3 ",
        "1.2.3.4",
        "1.2.3-é",
        "18446744073709551616.0.0",
    ],
)
def test_invalid_versions(text: str) -> None:
    """Malformed versions raise ValueError (leading zeros, empty segments, overflow)."""
    with pytest.raises(ValueError):
        Version.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "abc",
        ">=",
        "1.2.3.4",
        "1.*.3",
        "*, 1.0",
        "* 1.0",
        ">=1.0 <2.0",
        "1.2.3-",
        "01.2",
        "=>1.0",
        "1.0,",
        ",".join(["1"] * 33),
    ],
)
def test_invalid_requirements(text: str) -> None:
    """Malformed requirements raise ValueError with the requirement in the message."""
    with pytest.raises(ValueError) as info:
        VersionReq.parse(text)
    assert str(info.value)


def test_requirement_structure_and_display() -> None:
    """Parsed comparators keep op and omitted parts; str() gives a parseable requirement."""
    req = VersionReq.parse(">= 1.2, <1.5.0-rc.1")
    assert [c.op for c in req.comparators] == [Op.GREATER_EQ, Op.LESS]
    assert req.comparators[0].patch is None
    assert str(req) == ">=1.2, <1.5.0-rc.1"
    assert VersionReq.parse("*") == STAR
    assert str(VersionReq.parse("1.2.*")) == "1.2.*"
    assert str(VersionReq.parse("1.2")) == "^1.2"


_versions = st.builds(
    Version,
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    st.sampled_from(["", "alpha", "alpha.1", "beta", "rc.1"]),
)


@given(_versions)
def test_display_roundtrip_of_requirements(v: Version) -> None:
    """For every op, str(req) parses back to a requirement that matches the same versions."""
    for op in ("=", ">", ">=", "<", "<=", "~", "^"):
        req = VersionReq.parse(f"{op}{v}")
        again = VersionReq.parse(str(req))
        for other in GRID:
            assert req.matches(other) == again.matches(other)


@given(_versions, _versions)
def test_ordering_agrees_with_comparators(a: Version, b: Version) -> None:
    """`<` and `>=` comparators agree with Version ordering (pre-releases opted in)."""
    assert VersionReq.parse(f"<{b}").comparators[0].matches(a) == (a < b)
    assert VersionReq.parse(f">={b}").comparators[0].matches(a) == (a >= b)


_reqs = st.builds(
    lambda op, v, partial: (
        f"{op}{'.'.join(str(v).split('-')[0].split('.')[:partial])}" if partial < 3 else f"{op}{v}"
    ),
    st.sampled_from(["", "=", ">", ">=", "<", "<=", "~", "^"]),
    _versions,
    st.integers(1, 3),
)


@given(_reqs, _versions)
def test_covers_agrees_with_matches_on_releases(req: str, v: Version) -> None:
    """For releases, range coverage (used by deny lists and advisories) equals cargo matching."""
    release = Version(v.major, v.minor, v.patch)
    parsed = VersionReq.parse(req)
    assert parsed.covers(release) == parsed.matches(release)


@pytest.mark.parametrize(
    ("req", "version", "expected"),
    [
        ("<0.10.55", "0.10.55-rc.1", True),  # a pre-release of the fix is still before it
        (">=0.10.55", "0.11.0-rc.1", True),
        (">=0.10.55", "0.10.55-rc.1", False),
        ("=1.2", "1.2.3-alpha", True),
        ("=1.2", "1.2.0-alpha", False),
        ("^0.3", "0.3.1-beta", True),
        ("*", "1.0.0-alpha", True),
    ],
)
def test_covers_prereleases_by_ordering(req: str, version: str, expected: bool) -> None:
    """covers() places pre-releases by ordering, so they cannot slip past a range."""
    assert VersionReq.parse(req).covers(version) is expected
