"""Typosquat detection: is a requested crate name a near-copy of a popular (protected) one?

Attack stopped: typosquatting. An attacker publishes `serde_jsno`, `rustdecimal` or `tokioo`
and waits for a typo in someone's Cargo.toml; the malicious build script runs on the first
`cargo build`. Names are compared canonically (lowercase, `-` == `_`), as crates.io does.

Two kinds of evidence, as in crates.io's typosquat checks (the typomania crate):
- named transformations (generate-and-look-up): look-alike characters, swapped words,
  separators, affixes, version digits, plural `s`, repeated / omitted / swapped characters,
  keyboard neighbours, bit flips. Each is an index lookup built at construction.
- plain Damerau-Levenshtein distance, only for longer names, where a 1- or 2-edit neighbour
  is unlikely to be a legitimate different crate (`url` and `curl` are both real).

Speed: everything is precomputed into dictionaries keyed by derived forms (deletion
neighbourhood, compact form, sorted words, skeleton, ...), so `check` does a few dozen
dictionary lookups and rapidfuzz only verifies the handful of candidates they return.
Pure: no I/O; `mirror.sources.corpus` loads the names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein

from mirror.index import canonical_name

__all__ = ["AFFIXES", "SquatMatch", "SquatThresholds", "TyposquatIndex"]

# Affixes squatters bolt onto a popular name (`serde-rs`, `rust-tokio`, `libserde`).
AFFIXES: tuple[str, ...] = ("rs", "rust", "sys", "cli", "core", "lib", "api")

_KEYBOARD_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> frozenset[tuple[str, str]]:
    """Pairs of keys that touch on a QWERTY keyboard (rows staggered by half a key)."""
    pos = {ch: (r, c) for r, row in enumerate(_KEYBOARD_ROWS) for c, ch in enumerate(row)}
    pairs: set[tuple[str, str]] = set()
    for ch, (r, c) in pos.items():
        for other, (r2, c2) in pos.items():
            if (r2 == r and abs(c2 - c) == 1) or (r2 == r - 1 and c2 in (c, c + 1)):
                pairs.add((ch, other))
                pairs.add((other, ch))
    return frozenset(pairs)


_NEIGHBOURS = _keyboard_neighbours()
# Single characters that look alike in common fonts (and leetspeak digits: `s3rde`).
_LOOKALIKE_PAIRS = frozenset(
    p
    for a, b in (("0", "o"), ("1", "l"), ("1", "i"), ("3", "e"), ("5", "s"))
    for p in ((a, b), (b, a))
)
# Skeleton: every look-alike (including multi-character `rn`/`m`, `vv`/`w`) folded to one form.
_SKELETON_TABLE = str.maketrans({"0": "o", "1": "l", "3": "e", "5": "s"})
_TRAILING_DIGITS = re.compile(r"(.*?[a-z])(_?v?)(\d{1,3})\Z")
_TRAILING_NUMBER = re.compile(r"(.*?[a-z])(_?v?)(\d{1,6})\Z")

# How specific a check is: lower wins when one protected name matches several ways.
_CHECKS: dict[str, tuple[int, str]] = {
    "look-alike": (0, "look-alike characters substituted"),
    "swapped-words": (1, "words swapped"),
    "separator-removed": (2, "separators removed"),
    "separator-added": (2, "separators added"),
    "separator-moved": (2, "separators moved"),
    "version-suffix": (3, "version suffix added"),
    "version-digits": (3, "version digits changed"),
    "number-changed": (3, "trailing number off by one"),
    "number-dropped": (3, "trailing number dropped"),
    "affix": (4, "affix added, removed or changed"),
    "plural": (5, "plural 's' added or removed"),
    "repeated-character": (6, "character repeated"),
    "swapped-characters": (6, "adjacent characters swapped"),
    "keyboard-neighbour": (7, "keyboard-neighbour character substituted"),
    "bit-flip": (7, "one bit of a character flipped"),
    "omitted-character": (8, "character omitted"),
    "edit-distance": (9, "within edit distance"),
}


@dataclass(frozen=True)
class SquatMatch:
    requested: str  # as requested
    protected: str  # the protected crate's real spelling, e.g. "rust_decimal"
    check: str  # machine id, e.g. "separator-removed", "edit-distance", "swapped-words"
    description: str  # human words, e.g. "separators removed"
    distance: int  # Damerau-Levenshtein distance between canonical forms
    protected_rank: int | None  # rank in the corpus (1 = most downloaded), None for policy-added


@dataclass(frozen=True)
class SquatThresholds:
    """Minimum canonical length of the *protected* name for each kind of evidence.

    Short names are dense: `url`/`curl`, `log`/`slog`, `rand`/`rune` are all real crates, so
    generic edits only count on longer names; named transformations are more specific and
    start earlier.
    """

    distance1_min_length: int = 5  # chars; any single edit (insert/delete/substitute)
    distance2_min_length: int = 10  # chars; any two edits
    typo_min_length: int = 5  # chars; omitted character, keyboard neighbour, bit flip
    swap_min_length: int = 4  # chars; adjacent characters swapped (`rnad`)
    plural_min_length: int = 4  # chars; `reqwests`, `byte` for `bytes`
    repeated_min_length: int = 4  # chars; `tokioo` (`logg` is left alone)
    lookalike_min_length: int = 3  # chars; `rnio` for `mio`, `s3rde`
    separator_min_length: int = 4  # chars without separators; `bit-flags`, `rustdecimal`
    affix_min_base_length: int = 3  # chars; the name left after removing `rs`, `sys`, ...
    version_min_base_length: int = 3  # chars; `serde2`, `proc-macro1`
    # A trailing number off by one (`base65`, `ed25520`, `pyo4`) or dropped (`proc-macro`).
    # Off on names alone: `base32`/`base64`-like pairs are common among real crates; the risk
    # rule turns it on, because it weighs a match together with the crate's age and history.
    number_step: bool = False
    number_min_base_length: int = 2  # chars before the number (`fs2`, `lz4`)


def _deletions(s: str) -> Iterator[str]:
    return (s[:i] + s[i + 1 :] for i in range(len(s)))


def _skeleton(s: str) -> str:
    return s.replace("rn", "m").replace("vv", "w").translate(_SKELETON_TABLE)


def _words_key(s: str) -> str | None:
    if "_" not in s:
        return None
    words = [w for w in s.split("_") if w]
    return "_".join(sorted(words)) if len(words) > 1 else None


_AFFIX_STARTS = frozenset(a[:2] for a in AFFIXES)  # every affix is 2+ characters
_AFFIX_ENDS = frozenset(a[-2:] for a in AFFIXES)


def _affix_bases(s: str, min_base: int) -> list[str]:
    """`s` without one known affix (`serde_rs` -> `serde`, `libgit` -> `git`)."""
    bases: list[str] = []
    if s[:2] not in _AFFIX_STARTS and s[-2:] not in _AFFIX_ENDS:
        return bases  # most names: no affix to try
    for a in AFFIXES:
        if s.startswith(a):
            rest = s[len(a) :]
            if rest.startswith("_"):
                rest = rest[1:]
            elif len(rest) < min_base + 1:  # glued affixes need a longer base (`libc`)
                continue
            if len(rest) >= min_base:
                bases.append(rest)
        if s.endswith(a):
            rest = s[: -len(a)]
            if rest.endswith("_"):
                rest = rest[:-1]
            elif len(rest) < min_base + 1:
                continue
            if len(rest) >= min_base:
                bases.append(rest)
    return bases


def _single_edit(r: str, p: str) -> str | None:
    """Name the single edit turning protected `p` into requested `r`, or None if not one."""
    lr, lp = len(r), len(p)
    if lr == lp + 1 or lr == lp - 1:
        longer, shorter = (r, p) if lr > lp else (p, r)
        i = 0
        while i < len(shorter) and longer[i] == shorter[i]:
            i += 1
        if longer[i + 1 :] != shorter[i:]:
            return None
        c = longer[i]
        if c == "_":
            return "separator-added" if lr > lp else "separator-removed"
        if c == "s" and i == len(shorter):
            return "plural"
        if (i > 0 and longer[i - 1] == c) or (i + 1 < len(longer) and longer[i + 1] == c):
            return "repeated-character"
        return "edit-distance" if lr > lp else "omitted-character"
    if lr != lp:
        return None
    diffs = [i for i in range(lr) if r[i] != p[i]]
    if len(diffs) == 2:
        i, j = diffs
        if j == i + 1 and r[i] == p[j] and r[j] == p[i]:
            return "swapped-characters"
        return None
    if len(diffs) != 1:
        return None
    pair = (p[diffs[0]], r[diffs[0]])
    if pair in _LOOKALIKE_PAIRS:
        return "look-alike"
    if pair in _NEIGHBOURS:
        return "keyboard-neighbour"
    if (ord(pair[0]) ^ ord(pair[1])).bit_count() == 1:
        return "bit-flip"
    return "edit-distance"


Names = tuple[str, ...]  # protected names sharing a derived form


# Shifts of the middle part worth looking up, by (requested length - protected length):
# two edits move it by at most two, and every edit spent on the shift is not spent elsewhere.
_MIDDLE_SHIFTS = {
    diff: tuple(s for s in range(-2, 3) if abs(s) + abs(diff - s) <= 2) for diff in range(-2, 3)
}


class TyposquatIndex:
    """Protected names, precomputed so that `check` is a few dictionary lookups."""

    def __init__(
        self,
        protected: Sequence[str],
        *,
        extra: Iterable[str] = (),
        allow: Iterable[str] = (),
        thresholds: SquatThresholds | None = None,
    ) -> None:
        """`protected` in rank order (first = most downloaded); `extra` are policy-added
        names (no rank; preferred over ranked ones when choosing a match); `allow` are names
        that are never reported."""
        t = self.thresholds = thresholds or SquatThresholds()
        # canonical form -> (real spelling, rank or None); first spelling (best rank) wins
        self._protected: dict[str, tuple[str, int | None]] = {}
        for rank, name in enumerate(protected, start=1):
            self._protected.setdefault(canonical_name(name), (name, rank))
        for name in extra:
            self._protected.setdefault(canonical_name(name), (name, None))
        self._allow = frozenset(canonical_name(n) for n in allow)

        # Derived form -> canonical protected names having it.
        self._deletes: dict[str, Names] = {}  # the name and its 1-deletions
        self._segments: dict[int, tuple[dict[str, Names], ...]] = {}  # length -> 3 parts
        self._plans: dict[int, list[tuple[dict[str, Names], int, int]]] = {}  # lazily
        self._compact: dict[str, Names] = {}  # separators removed
        self._words: dict[str, Names] = {}  # words sorted
        self._skeletons: dict[str, Names] = {}  # look-alikes folded
        self._affixed: dict[str, Names] = {}  # the name and its affix-stripped bases
        self._digits: dict[str, Names] = {}  # the name minus one trailing digit
        self._numbers: dict[str, list[tuple[int, str]]] = {}  # the name minus its number
        self._unnumbered: dict[str, Names] = {}  # the name without its trailing number
        self._ones: dict[str, Names] = {}  # one shared 1-tuple per protected name (`_add`)
        for canon in self._protected:
            self._index_one(canon, t)

    def _index_one(self, canon: str, t: SquatThresholds) -> None:
        self._add(self._deletes, canon, canon)
        for d in _deletions(canon):
            self._add(self._deletes, d, canon)
        n = len(canon)
        if n >= t.distance2_min_length:
            parts = self._segments.setdefault(n, ({}, {}, {}))
            a, b = n // 3, 2 * n // 3
            self._add(parts[0], canon[:a], canon)
            self._add(parts[1], canon[a:b], canon)
            self._add(parts[2], canon[b:], canon)
        compact = canon.replace("_", "")
        if len(compact) >= t.separator_min_length:
            self._add(self._compact, compact, canon)
        words = _words_key(canon)
        if words is not None:
            self._add(self._words, words, canon)
        if n >= t.lookalike_min_length:
            self._add(self._skeletons, _skeleton(canon), canon)
        self._add(self._affixed, canon, canon)
        for base in _affix_bases(canon, t.affix_min_base_length):
            self._add(self._affixed, base, canon)
        m = _TRAILING_DIGITS.match(canon)
        if m and len(m[3]) == 1 and len(m[1]) >= t.version_min_base_length + 1:
            self._add(self._digits, m[1] + m[2], canon)
        numbered = _TRAILING_NUMBER.match(canon) if t.number_step else None
        if numbered and len(numbered[1]) >= t.number_min_base_length:
            self._numbers.setdefault(numbered[1] + numbered[2], []).append(
                (int(numbered[3]), canon)
            )
            if len(numbered[1]) >= t.version_min_base_length:
                self._add(self._unnumbered, numbered[1], canon)

    def _add(self, index: dict[str, Names], key: str, canon: str) -> None:
        """Most forms name one protected crate: those all share that crate's 1-tuple, never
        a list each. At 20,000 names the deletion neighbourhood alone has 250,000 keys; a list
        per key cost about 25 MB in every serving process."""
        names = index.get(key)
        if names is None:
            one = self._ones.get(canon)
            if one is None:
                one = self._ones[canon] = (canon,)
            index[key] = one
        elif canon not in names:
            index[key] = (*names, canon)

    def __len__(self) -> int:
        return len(self._protected)

    def is_protected(self, name: str) -> bool:
        return canonical_name(name) in self._protected

    def rank(self, name: str) -> int | None:
        """Corpus rank of a protected name (None if policy-added or not protected)."""
        entry = self._protected.get(canonical_name(name))
        return None if entry is None else entry[1]

    def check(self, name: str) -> SquatMatch | None:
        """The protected name that `name` imitates, or None (also for protected and allowed
        names). Several matches: named transformations beat plain edit distance (and one
        edit beats two), then the more popular protected crate (policy-added first), then
        the more specific check."""
        r = canonical_name(name)
        if r in self._protected or r in self._allow:
            return None
        found: list[tuple[str, str]] = []  # (canonical protected name, check id)
        self._transformations(r, found)
        self._edits(r, found)
        if not found:
            return None
        protected = self._protected
        canon, check = min(
            found,
            key=lambda f: (
                f[1] == "edit-distance",  # named checks first
                protected[f[0]][1] or 0,  # then popularity, policy-added names first
                _CHECKS[f[1]][0],  # then the more specific check
            ),
        )
        spelling, rank = protected[canon]
        return SquatMatch(
            requested=name,
            protected=spelling,
            check=check,
            description=_CHECKS[check][1],
            distance=int(DamerauLevenshtein.distance(r, canon)),
            protected_rank=rank,
        )

    def _transformations(self, r: str, found: list[tuple[str, str]]) -> None:
        """Generate-and-look-up checks that do not depend on a small edit distance."""
        t = self.thresholds
        if lookalikes := self._skeletons.get(_skeleton(r)):
            found.extend((p, "look-alike") for p in lookalikes)
        for p in self._compact.get(r.replace("_", ""), ()):
            have, want = r.count("_"), p.count("_")
            check = "separator-removed" if have < want else "separator-added"
            found.append((p, check if have != want else "separator-moved"))
        words = _words_key(r)
        if words is not None and (swapped := self._words.get(words)):
            found.extend((p, "swapped-words") for p in swapped)
        affixed = self._affixed.get
        for base in _affix_bases(r, t.affix_min_base_length):
            if bases := affixed(base):
                found.extend((p, "affix") for p in bases)
        # `openssl` when only `openssl-sys` is protected (r itself is never protected here)
        if bases := affixed(r):
            found.extend((p, "affix") for p in bases)
        # Both patterns end in a digit: most names are spared the (backtracking) match.
        ends_in_digit = r[-1:].isdigit()
        m = _TRAILING_DIGITS.match(r) if ends_in_digit else None
        if m and len(m[1]) >= t.version_min_base_length:
            if m[1] in self._protected and not m[1][-1].isdigit():
                found.append((m[1], "version-suffix"))  # `serde2`, `serde_v2`
            if len(m[3]) == 1:  # `proc-macro1`; multi-digit numbers (base64) mean something
                found.extend((p, "version-digits") for p in self._digits.get(m[1] + m[2], ()))
        if t.number_step:
            numbered = _TRAILING_NUMBER.match(r) if ends_in_digit else None
            if numbered:
                n = int(numbered[3])
                for number, p in self._numbers.get(numbered[1] + numbered[2], ()):
                    if abs(number - n) == 1:
                        found.append((p, "number-changed"))
            elif dropped := self._unnumbered.get(r):
                found.extend((p, "number-dropped") for p in dropped)

    def _edits(self, r: str, found: list[tuple[str, str]]) -> None:
        """Neighbours within one edit (named by `_single_edit`, gated by length) and, for
        long names, within two edits (verified by rapidfuzz)."""
        get = self._deletes.get
        hits = [ps for d in [r[:i] + r[i + 1 :] for i in range(len(r))] if (ps := get(d))]
        if own := get(r):
            hits.append(own)
        named: set[str] = set()
        for ps in hits:
            for p in ps:
                if p in named:
                    continue
                check = _single_edit(r, p)
                if check is not None:
                    named.add(p)
                    if len(p) >= self._min_length(check):
                        found.append((p, check))
        if len(r) < self.thresholds.distance2_min_length - 2 or found:
            return  # whatever matched so far outranks a two-edit neighbour: skip the search
        far = self._segment_candidates(r) - named
        if len(far) > 8:  # one call into rapidfuzz beats many small ones
            found.extend(
                (p, "edit-distance")
                for p, _, _ in process.extract(
                    r, far, scorer=DamerauLevenshtein.distance, score_cutoff=2, limit=None
                )
            )
        else:
            distance = DamerauLevenshtein.distance
            found.extend((p, "edit-distance") for p in far if distance(r, p, score_cutoff=2) <= 2)

    def _segment_plan(self, lr: int) -> list[tuple[dict[str, Names], int, int]]:
        """For a requested name of length `lr`: which slice of it to look up in which part
        index. Pigeonhole: each long protected name is cut in three parts; two edits leave
        one part intact, at the start, at the end, or in the middle shifted by at most two."""
        plan = self._plans.get(lr)
        if plan is None:
            plan = []
            for n in range(lr - 2, lr + 3):
                parts = self._segments.get(n)
                if parts is None:
                    continue
                a, b = n // 3, 2 * n // 3
                plan.append((parts[0], 0, a))
                plan.append((parts[2], lr - n + b, lr))
                plan.extend((parts[1], a + s, b + s) for s in _MIDDLE_SHIFTS[lr - n])
            self._plans[lr] = plan
        return plan

    def _segment_candidates(self, r: str) -> set[str]:
        """Protected names of length >= distance2_min_length possibly within two edits."""
        return {
            p
            for part, start, end in self._segment_plan(len(r))
            if (ps := part.get(r[start:end]))
            for p in ps
        }

    def _min_length(self, check: str) -> int:
        t = self.thresholds
        if check == "edit-distance":
            return t.distance1_min_length
        if check == "repeated-character":
            return t.repeated_min_length
        if check == "swapped-characters":
            return t.swap_min_length
        if check == "plural":
            return t.plural_min_length
        if check == "look-alike":
            return t.lookalike_min_length
        if check.startswith("separator"):
            return t.separator_min_length
        return t.typo_min_length
