"""The legitimate near-name and typo dev sets are well-formed and mean what they claim.

The relation checks re-derive "edit" and "combo" from the definitions in
bench/devset/README.md with code written here, not with bench/devset/near_names.py, so a bug
in the builder cannot vouch for itself.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.devset import make_typos
from mirror.index import validate_name
from mirror.policy.semver import Version
from mirror.sources.corpus import DEFAULT_CORPUS, load_corpus

DEVSET = Path(__file__).resolve().parent.parent / "bench" / "devset"
TYPO_KINDS = {
    "omitted_letter",
    "doubled_letter",
    "transposed",
    "adjacent_key",
    "separator_omitted",
    "separator_inserted",
    "plural",
    "version_suffix",
}
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def canon(name: str) -> str:
    return name.lower().replace("-", "_")


def osa_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance (Damerau-Levenshtein with adjacent transpositions)."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def is_combo_of(name: str, top: str) -> bool:
    """The brief's combo definition, for one (name, top name) pair."""
    words, top_words = canon(name).split("_"), canon(top).split("_")
    n = len(top_words)
    if len(words) > n and any(words[i : i + n] == top_words for i in range(len(words) - n + 1)):
        return True
    flat, top_flat = canon(name).replace("_", ""), canon(top).replace("_", "")
    return (
        len(top_flat) >= 4
        and len(flat) >= len(top_flat) + 2
        and (flat.startswith(top_flat) or flat.endswith(top_flat))
    )


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    """The shipped top-20k list (same names and order as the 2024-03-18 CSV)."""
    return load_corpus(DEFAULT_CORPUS)


@pytest.fixture(scope="module")
def legit() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEVSET / "legit.yaml").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def typos() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEVSET / "typos.yaml").read_text(encoding="utf-8"))
    return data


def test_legit_header_names_sources_and_sampling(legit: dict[str, Any]) -> None:
    """The file says where its data came from, when, and how it was sampled."""
    head = (DEVSET / "legit.yaml").read_text(encoding="utf-8").split("\nsource:")[0]
    for needle in ("build_legit", "JustFrederik/crates.io-index-minfied @", "population", "Seed"):
        assert needle in head
    assert re.fullmatch(r"JustFrederik/crates\.io-index-minfied @ [0-9a-f]{40}", legit["source"])
    assert legit["crates_in_snapshot"] > 100_000


def test_legit_entries_are_well_formed(legit: dict[str, Any]) -> None:
    """Every entry has a legal name, versions that parse, RFC 3339 or null pubtimes."""
    crates = legit["crates"]
    assert crates
    for c in crates:
        validate_name(c["name"])
        assert c["group"] in ("popular", "longtail")
        assert c["relation"] in ("edit", "combo")
        assert c["versions"], c["name"]
        for v in c["versions"]:
            Version.parse(v["vers"])
            assert v["pubtime"] is None or _RFC3339.fullmatch(v["pubtime"]), v


def test_legit_has_no_duplicates(legit: dict[str, Any]) -> None:
    """No crate appears twice, counting `-`/`_` and case as crates.io does."""
    counts = Counter(canon(c["name"]) for c in legit["crates"])
    assert [n for n, k in counts.items() if k > 1] == []


def test_legit_publish_times_lie_in_the_history_window(legit: dict[str, Any]) -> None:
    """A pubtime is the first commit listing the version: after the history starts, no later
    than the snapshot; versions older than the history have none."""

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    start, snapshot = parse(legit["history_from"]), parse(legit["snapshot_date"])
    times = [parse(v["pubtime"]) for c in legit["crates"] for v in c["versions"] if v["pubtime"]]
    assert times and all(start < t <= snapshot for t in times)
    assert any(v["pubtime"] is None for c in legit["crates"] for v in c["versions"])


def test_legit_groups_match_the_top20k_list(legit: dict[str, Any], corpus: list[str]) -> None:
    """popular = in the top-20k list at its rank; longtail = not in it."""
    rank = {canon(n): i for i, n in enumerate(corpus, start=1)}
    for c in legit["crates"]:
        if c["group"] == "popular":
            assert rank.get(canon(c["name"])) == c["rank"], c["name"]
        else:
            assert c["rank"] is None and canon(c["name"]) not in rank, c["name"]


def test_legit_relation_matches_the_definitions(legit: dict[str, Any], corpus: list[str]) -> None:
    """edit = OSA distance 1 from the recorded top-3000 name; combo = words or affix rule."""
    top = {canon(n): i for i, n in enumerate(corpus[:3000], start=1)}
    for c in legit["crates"]:
        name, near = c["name"], c["near"]
        assert top.get(canon(near)) == c["near_rank"], (name, near)
        if c["relation"] == "edit":
            assert osa_distance(canon(name), canon(near)) == 1, (name, near)
        else:
            assert canon(name) not in top, name
            assert is_combo_of(name, near), (name, near)


def test_legit_covers_every_stratum(legit: dict[str, Any]) -> None:
    """Both groups and both relations are represented."""
    strata = Counter((c["group"], c["relation"]) for c in legit["crates"])
    for key in (
        ("popular", "edit"),
        ("popular", "combo"),
        ("longtail", "edit"),
        ("longtail", "combo"),
    ):
        assert strata[key] >= 500, strata


def test_typos_are_well_formed(typos: dict[str, Any], corpus: list[str]) -> None:
    """Legal names, targets in the top 1,000 at their rank, known kinds, no duplicates."""
    rank = {n: i for i, n in enumerate(corpus, start=1)}
    entries = typos["typos"]
    assert len(entries) >= 250
    assert {t["error_kind"] for t in entries} == TYPO_KINDS
    for t in entries:
        validate_name(t["name"])
        assert rank.get(t["target"]) == t["target_rank"] <= 1000, t
        assert canon(t["name"]) != canon(t["target"]), t
    counts = Counter(canon(t["name"]) for t in entries)
    assert [n for n, k in counts.items() if k > 1] == []


def test_typos_are_not_real_crates(
    typos: dict[str, Any], legit: dict[str, Any], corpus: list[str]
) -> None:
    """No typo is a known crate: top-20k, the legit set, known_real.txt. (The generator also
    checks every name of the 2024 index, which is not kept in the repository.)"""
    real = {canon(n) for n in corpus}
    known = (DEVSET / "known_real.txt").read_text(encoding="utf-8").splitlines()
    real.update(canon(n) for n in known if n and not n.startswith("#"))
    real.update(canon(c["name"]) for c in legit["crates"])
    assert [t["name"] for t in typos["typos"] if canon(t["name"]) in real] == []


def test_typos_are_the_error_they_claim(typos: dict[str, Any]) -> None:
    """Each typo differs from its target by exactly the recorded kind of slip."""
    for t in typos["typos"]:
        name, target, kind = t["name"], t["target"], t["error_kind"]
        if kind in ("omitted_letter", "doubled_letter", "transposed", "adjacent_key"):
            assert osa_distance(name, target) == 1, t
            assert (
                len(name) - len(target)
                == {"omitted_letter": -1, "doubled_letter": 1, "transposed": 0, "adjacent_key": 0}[
                    kind
                ]
            ), t
        elif kind == "separator_omitted":
            assert any(
                target[:i] + target[i + 1 :] == name for i, ch in enumerate(target) if ch in "-_"
            ), t
        elif kind == "separator_inserted":
            assert any(
                name[:i] + name[i + 1 :] == target for i, ch in enumerate(name) if ch in "-_"
            ), t
        elif kind == "plural":
            assert name == target + "s" or name + "s" == target, t
        else:
            assert re.search(r"\d$", target), t
            assert name.rstrip("0123456789").rstrip("-_") == target.rstrip("0123456789").rstrip(
                "-_"
            ), t


def test_generators_make_the_documented_slips() -> None:
    """Each generator yields the example its docstring promises."""
    assert "sede" in set(make_typos.omitted_letter("serde"))
    assert "serrde" in set(make_typos.doubled_letter("serde"))
    assert "sedre" in set(make_typos.transposed("serde"))
    assert "swrde" in set(make_typos.adjacent_key("serde"))
    assert list(make_typos.separator_omitted("rust_decimal")) == ["rustdecimal"]
    assert "ser_de_json" in set(make_typos.separator_inserted("serde_json"))
    assert list(make_typos.plural_changed("bytes")) == ["byte"]
    assert list(make_typos.plural_changed("regex")) == ["regexs"]
    assert list(make_typos.version_suffix_changed("proc-macro2")) == [
        "proc-macro1",
        "proc-macro3",
        "proc-macro",
    ]
    assert list(make_typos.version_suffix_changed("serde")) == []


def test_candidates_drop_real_crates_and_separator_swaps() -> None:
    """A typo that is a real crate, or only swaps '-' and '_', is never a candidate."""
    got = make_typos.candidates("serde-json", real={"serde_jsn"})
    assert "serde-jsn" not in got["omitted_letter"]
    assert all(canon(o) != "serde_json" for opts in got.values() for o in opts)
    assert "serde_json" not in got.get("separator_omitted", [])
    assert "ae" not in make_typos.candidates("aes", real=set()).get("omitted_letter", [])


def test_sampling_is_deterministic_and_stratified() -> None:
    """Same seed, same sample; every kind gets its quota when candidates allow."""
    top = ["serde", "serde_json", "base64", "tokio", "rand_core", "bytes", "proc-macro-error"]
    first = make_typos.sample(top, real=set(), per_kind=3, seed=5)
    assert first == make_typos.sample(top, real=set(), per_kind=3, seed=5)
    kinds = Counter(str(t["error_kind"]) for t in first)
    assert all(kinds[k] == 3 for k in TYPO_KINDS), kinds
