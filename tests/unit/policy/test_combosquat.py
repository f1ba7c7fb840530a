"""Combosquats: a protected name with a word added, glued, removed or replaced."""

from __future__ import annotations

import pytest

from mirror.policy.combosquat import ComboIndex, ComboKind

PROTECTED = [
    "serde",
    "tracing",
    "chrono",
    "time",
    "serde_json",
    "base64",
    "postgres",
    "polymarket-client-sdk",
    "libusb1-sys-extra",
    "async-trait",
    "rs",
]


@pytest.fixture(scope="module")
def combos() -> ComboIndex:
    return ComboIndex(PROTECTED, extra=["acme-billing"])


@pytest.mark.parametrize(
    ("name", "protected", "kind", "words"),
    [
        ("tracing-check", "tracing", ComboKind.ADDED, ("check",)),
        ("chrono_anchor", "chrono", ComboKind.ADDED, ("anchor",)),
        ("time-sync", "time", ComboKind.ADDED, ("sync",)),
        ("win-base64-rs", "base64", ComboKind.ADDED, ("win", "rs")),
        ("Serde-JSON-ext", "serde_json", ComboKind.ADDED, ("ext",)),
        ("postgresderive", "postgres", ComboKind.GLUED, ("derive",)),
        ("fastchrono", "chrono", ComboKind.GLUED, ("fast",)),
        ("polymarket-sdk", "polymarket-client-sdk", ComboKind.REMOVED, ("client",)),
        ("libusb1-main-extra", "libusb1-sys-extra", ComboKind.REPLACED, ("sys", "main")),
        ("acme-billing-client", "acme-billing", ComboKind.ADDED, ("client",)),
    ],
)
def test_finds_the_protected_name_and_the_change(
    combos: ComboIndex, name: str, protected: str, kind: ComboKind, words: tuple[str, ...]
) -> None:
    """Each kind of combosquat names the crate that was meant and the words changed."""
    match = combos.check(name)
    assert match is not None
    assert (match.protected, match.kind, match.words) == (protected, kind, words)
    assert match.requested == name


@pytest.mark.parametrize(
    "name",
    [
        "serde",  # protected itself
        "serde-json",  # the same crate as serde_json on crates.io
        "tracings",  # a plural typo: glued words need two letters at least
        "rpc-check",  # shares no protected name
        "async-widget",  # two two-word names sharing one word say nothing
        "rs-foo",  # two-letter protected names are too common to count
        "times",  # `time` + one letter: a plural typo, not a word glued on
    ],
)
def test_no_match(combos: ComboIndex, name: str) -> None:
    """Protected names themselves, typos and unrelated words are not combosquats."""
    assert combos.check(name) is None


def test_ordinary_words_glued_on_are_weak_matches_still_reported(combos: ComboIndex) -> None:
    """`timely` really is `time` + `ly`: reported (the decision gives it little weight)."""
    match = combos.check("timely")
    assert match is not None and (match.protected, match.kind) == ("time", ComboKind.GLUED)


def test_policy_added_names_win_among_equals() -> None:
    """An internal name (no rank) is preferred to a ranked one of the same length."""
    index = ComboIndex(["widget"], extra=["gadget"])
    match = index.check("gadget-widget")
    assert match is not None and match.protected == "gadget" and match.protected_rank is None


def test_longest_protected_name_wins() -> None:
    """`serde_json_derive2` is about serde_json, not serde."""
    match = ComboIndex(["serde", "serde_json"]).check("serde_json_derive2")
    assert match is not None and match.protected == "serde_json"


def test_description_is_human() -> None:
    match = ComboIndex(["tracing"]).check("tracing-check")
    assert match is not None
    assert match.description == "a word added (`check`)"


@pytest.mark.parametrize(
    ("name", "protected", "rest"),
    [
        ("postgresxy", "postgres", "xy"),  # the shortest word glued on at the end
        ("xypostgres", "postgres", "xy"),  # ... and at the start
        ("toml_edit_abcdzz", "abcd", "zz"),  # the shortest protected name, in a later word
        ("zzabcd", "abcd", "zz"),
    ],
)
def test_glued_words_at_the_length_limits_are_found(name: str, protected: str, rest: str) -> None:
    """A word is only cut where it starts or ends like some protected name (most names are
    never cut at all): the shortest names and words glued on must still be found."""
    match = ComboIndex(["postgres", "abcd"]).check(name)
    assert match is not None
    assert (match.protected, match.kind, match.words) == (protected, ComboKind.GLUED, (rest,))
