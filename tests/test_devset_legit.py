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

from bench.devset import build_legit, make_typos
from mirror.corpus import DEFAULT_CORPUS, load_corpus
from mirror.index import index_path, validate_name
from mirror.policy.semver import Version

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
_SOURCE = re.compile(r"rust-lang/crates\.io-index (\S+) @ ([0-9a-f]{40})")


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


def test_legit_header_names_sources_and_sampling() -> None:
    """The file says where its data came from, when, and how it was sampled."""
    head = (DEVSET / "legit.yaml").read_text(encoding="utf-8").split("\ncrates:")[0]
    for needle in (
        "Read date: 2026-11-27",
        "snapshot_date",
        "kornelski/crates.io-index @",
        "rust-lang/crates.io-index",
        "Sampling:",
        "Dropped",
    ):
        assert needle in head


def test_legit_entries_are_well_formed(legit: dict[str, Any]) -> None:
    """Every entry has a legal name, parseable versions, RFC 3339 or null pubtimes, deps."""
    crates = legit["crates"]
    assert crates
    for c in crates:
        validate_name(c["name"])
        assert c["group"] in ("popular", "longtail")
        assert c["relation"] in ("edit", "combo")
        assert isinstance(c["truncated"], bool)
        m = _SOURCE.fullmatch(c["index_source"])
        assert m is not None, c["index_source"]
        assert m.group(1) == index_path(c["name"])
        assert c["versions"], c["name"]
        for v in c["versions"]:
            Version.parse(v["vers"])
            assert v["pubtime"] is None or _RFC3339.fullmatch(v["pubtime"]), v
            assert isinstance(v["yanked"], bool)
            for dep in v["deps"]:
                validate_name(dep)


def test_legit_has_no_duplicates(legit: dict[str, Any]) -> None:
    """No crate appears twice, counting `-`/`_` and case as crates.io does."""
    counts = Counter(canon(c["name"]) for c in legit["crates"])
    assert [n for n, k in counts.items() if k > 1] == []


def test_legit_snapshot_date_is_newest_pubtime(legit: dict[str, Any]) -> None:
    """snapshot_date is the newest pubtime in the file."""
    times = [
        datetime.fromisoformat(v["pubtime"].replace("Z", "+00:00"))
        for c in legit["crates"]
        for v in c["versions"]
        if v["pubtime"]
    ]
    assert times
    snapshot = datetime.fromisoformat(legit["snapshot_date"].replace("Z", "+00:00"))
    assert snapshot == max(times)


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
        assert strata[key] >= 20, strata


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
    """No typo is a known crate: top-20k, legit set (and its deps), known_real.txt."""
    real = {canon(n) for n in corpus}
    known = (DEVSET / "known_real.txt").read_text(encoding="utf-8").splitlines()
    real.update(canon(n) for n in known if n and not n.startswith("#"))
    for c in legit["crates"]:
        real.add(canon(c["name"]))
        real.update(canon(d) for v in c["versions"] for d in v["deps"])
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


def test_extract_parser_rejects_bad_lines() -> None:
    """A transcription mistake in the index extract stops the build with its line number."""
    good = "@ a 0123456789abcdef0123456789abcdef01234567 chars=10\n1.0.0 - n -\n"
    assert build_legit.parse_extract(good)[0].versions[0]["vers"] == "1.0.0"
    for bad, why in [
        ("@ a 0123456789abcdef0123456789abcdef01234567 chars=10\n1.0 - n -\n", "semver"),
        ("@ a 0123456789abcdef0123456789abcdef01234567 chars=10\n1.0.0 2024 n -\n", "RFC"),
        ("@ a 0123456789abcdef0123456789abcdef01234567 chars=10\n1.0.0 - x -\n", "yanked"),
        ("@ a 0123456789abcdef0123456789abcdef01234567 chars=10\n1.0.0 - n =\n", "first"),
        ("1.0.0 - n -\n", "outside"),
        ("@ a nothex chars=10\n1.0.0 - n -\n", "COMMIT"),
    ]:
        with pytest.raises(build_legit.ExtractError, match=why):
            build_legit.parse_extract(bad)


def test_extract_same_deps_marker_copies_the_line_before() -> None:
    """`=` repeats the previous version's dependency names."""
    text = (
        "@ a 0123456789abcdef0123456789abcdef01234567 chars=10 more\n"
        "1.0.0 - n x,y\n1.0.1 2025-01-02T03:04:05Z y =\n"
    )
    [entry] = build_legit.parse_extract(text)
    assert entry.truncated
    assert entry.versions[1] == {
        "vers": "1.0.1",
        "pubtime": "2025-01-02T03:04:05Z",
        "yanked": True,
        "deps": ["x", "y"],
    }
