"""What counts as a near-name of a top crate, defined independently of the mirror's detector.

The dev set must measure the detector, so it is never selected with it
(`mirror/policy/typosquat.py` is not imported here). The definitions (issue 11, brief L):

- canonical name: lowercase, `-` -> `_` (crates.io treats both separators as one).
- edit near-name: canonical Damerau-Levenshtein distance exactly 1 (one insertion, deletion,
  substitution or transposition of adjacent characters) from a top name, and not that name.
- combo near-name: not a top name itself, and either its canonical `_`-separated words contain
  every word of a top name as a contiguous run plus at least one more word (`serde_json_core`
  has `serde_json`: kind `words`), or its separator-free form starts or ends with the
  separator-free form of a top name of >= 4 characters plus >= 2 more characters
  (`postgresderive` has `postgres`: kind `affix`).

When a name is near several top names, an edit relation wins over a combo; among edits the
best-ranked top name is recorded; among combos the most specific one (most words, then the
longest, then the best-ranked), so `serde_json_core` records `serde_json`, not `serde`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_TOP_CSV",
    "Near",
    "NearFinder",
    "canonical",
    "edit_neighbours",
    "load_top_csv",
]

DEFAULT_TOP_CSV = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "crates-top20k-2024-03-18.csv"
)
TOP_COUNT = 3_000  # names that count as "top" (ranks 1..3000)
AFFIX_MIN_TOP = 4  # characters a top name needs before it counts as an affix
AFFIX_MIN_EXTRA = 2  # characters a combo adds beyond the affix
CANONICAL_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"


def canonical(name: str) -> str:
    """crates.io's identity of a name: case-insensitive, `-` and `_` the same character."""
    return name.lower().replace("-", "_")


def load_top_csv(path: Path) -> list[str]:
    """Crate names of the popularity CSV (`name,latest version,repository`), rank order."""
    with path.open(newline="", encoding="utf-8") as f:
        return [row[0] for row in csv.reader(f) if row]


def edit_neighbours(name: str) -> set[str]:
    """Every canonical string at Damerau-Levenshtein (adjacent transposition) distance 1."""
    out: set[str] = set()
    for i in range(len(name) + 1):
        for c in CANONICAL_ALPHABET:
            out.add(name[:i] + c + name[i:])
    for i in range(len(name)):
        out.add(name[:i] + name[i + 1 :])
        for c in CANONICAL_ALPHABET:
            if c != name[i]:
                out.add(name[:i] + c + name[i + 1 :])
        if i + 1 < len(name) and name[i] != name[i + 1]:
            out.add(name[:i] + name[i + 1] + name[i] + name[i + 2 :])
    out.discard(name)
    return out


@dataclass(frozen=True)
class Near:
    """How a name relates to a top name: `relation` edit|combo, `kind` edit|words|affix."""

    top: str  # the top name as the CSV spells it
    top_rank: int  # its line number in the CSV
    relation: str
    kind: str


class NearFinder:
    """Answers "is this name near a top name, and which one" for the definitions above."""

    def __init__(self, top_names: list[str]) -> None:
        self._rank: dict[str, int] = {}
        self._spelling: dict[str, str] = {}
        for rank, name in enumerate(top_names, start=1):
            key = canonical(name)
            if key not in self._rank:
                self._rank[key] = rank
                self._spelling[key] = name
        self._edit: dict[str, str] = {}  # neighbour -> best-ranked top name it is near
        for key in sorted(self._rank, key=self._rank.__getitem__, reverse=True):
            for n in edit_neighbours(key):
                self._edit[n] = key  # best rank last, so it wins
        self._words: dict[tuple[str, ...], str] = {tuple(k.split("_")): k for k in self._rank}
        self._max_words = max(len(w) for w in self._words)
        self._affix: dict[str, str] = {}
        for key in sorted(self._rank, key=self._rank.__getitem__, reverse=True):
            flat = key.replace("_", "")
            if len(flat) >= AFFIX_MIN_TOP:
                self._affix[flat] = key

    def is_top(self, name: str) -> bool:
        return canonical(name) in self._rank

    def find(self, name: str) -> Near | None:
        """The recorded relation of `name` to the top names, or None if it is near none."""
        key = canonical(name)
        top = self._edit.get(key)
        if top is not None:
            return self._near(top, "edit", "edit")
        if key in self._rank:
            return None
        best: tuple[tuple[int, int, int], str, str] | None = None
        for top, kind in self._combo_candidates(key):
            score = (-len(top.split("_")), -len(top), self._rank[top])
            if best is None or score < best[0]:
                best = (score, top, kind)
        return None if best is None else self._near(best[1], "combo", best[2])

    def _combo_candidates(self, key: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        words = tuple(key.split("_"))
        for size in range(1, min(len(words) - 1, self._max_words) + 1):
            for start in range(len(words) - size + 1):
                top = self._words.get(words[start : start + size])
                if top is not None:
                    found.append((top, "words"))
        flat = key.replace("_", "")
        for cut in range(AFFIX_MIN_TOP, len(flat) - AFFIX_MIN_EXTRA + 1):
            for part in (flat[:cut], flat[len(flat) - cut :]):
                top = self._affix.get(part)
                if top is not None:
                    found.append((top, "affix"))
        return found

    def _near(self, key: str, relation: str, kind: str) -> Near:
        return Near(self._spelling[key], self._rank[key], relation, kind)
