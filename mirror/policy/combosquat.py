"""Combosquat detection: a protected name with a word added, removed or replaced.

Attack stopped: combosquatting. The name is not a typo of a popular crate but the popular
name plus a plausible word: `tracing-check`, `chrono_anchor`, `time-sync`, `win-base64-rs`,
`postgresderive`. A reader skimming a Cargo.toml, or an AI assistant suggesting a crate, takes
it for part of the real crate's family.

Legitimate crates are built the same way (`serde-json-core`, `tokio-util`), so a match is
weak evidence on its own: the decision (`mirror.policy.risk`) weighs it together with the
crate's age, history and content. This module only finds the match, and names the crate that
was probably meant.

Words are the `_`-separated parts of the canonical name (crates.io treats `-` and `_` alike).
Every check is a dictionary lookup keyed by a derived form, so `check` costs a few dozen
lookups whatever the number of protected names. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from mirror.index import canonical_name

__all__ = ["ComboIndex", "ComboKind", "ComboMatch"]

MIN_PROTECTED = 3  # chars; shorter protected names (`rs`, `io`) are too common to mean anything
MIN_GLUED = 4  # chars; a protected name glued to a word without a separator (`postgresderive`)
MIN_GLUED_REST = 2  # chars; the word glued on (`tracings` is a plural typo, not a combo)
MAX_WORDS = 8  # words looked at; longer names are cut (no crate name has more in practice)


class ComboKind(StrEnum):
    ADDED = "word-added"  # tracing -> tracing_check
    GLUED = "word-glued"  # postgres -> postgresderive
    REMOVED = "word-removed"  # polymarket_client_sdk -> polymarket_sdk
    REPLACED = "word-replaced"  # libusb1_sys -> libusb1_main


_DESCRIPTIONS = {
    ComboKind.ADDED: "a word added",
    ComboKind.GLUED: "a word glued on",
    ComboKind.REMOVED: "a word removed",
    ComboKind.REPLACED: "a word replaced",
}


_KIND_ORDER = {ComboKind.ADDED: 0, ComboKind.REMOVED: 1, ComboKind.GLUED: 2, ComboKind.REPLACED: 3}


@dataclass(frozen=True)
class ComboMatch:
    requested: str
    protected: str  # the protected crate's real spelling
    kind: ComboKind
    words: tuple[str, ...]  # the words added, removed or replaced (canonical)
    protected_rank: int | None  # rank in the corpus, None for policy-added names

    @property
    def description(self) -> str:
        words = ", ".join(f"`{w}`" for w in self.words)
        return f"{_DESCRIPTIONS[self.kind]} ({words})" if words else _DESCRIPTIONS[self.kind]


class ComboIndex:
    """Protected names, indexed by the derived forms the checks look up."""

    def __init__(self, protected: Sequence[str], *, extra: Iterable[str] = ()) -> None:
        """`protected` in rank order (first = most downloaded); `extra` are policy-added names
        (internal crates: no rank, preferred when choosing among matches)."""
        self._protected: dict[str, tuple[str, int | None]] = {}
        for name in extra:
            self._protected.setdefault(canonical_name(name), (name, None))
        for rank, name in enumerate(protected, start=1):
            self._protected.setdefault(canonical_name(name), (name, rank))
        # compact (separators removed) form -> canonical protected name, for glued words
        self._compact: dict[str, str] = {}
        # Their first and last MIN_GLUED characters: a word that starts (ends) with none of
        # them has no protected name glued at its start (end), so its cuts need no lookup.
        self._heads: set[str] = set()
        self._tails: set[str] = set()
        # words with one left out, joined -> (canonical protected, the word left out)
        self._removed: dict[str, list[tuple[str, str]]] = {}
        # words with one replaced by "*", joined -> (canonical protected, the word replaced)
        self._wildcard: dict[str, list[tuple[str, str]]] = {}
        for canon in self._protected:
            if len(canon) < MIN_PROTECTED:
                continue
            compact = canon.replace("_", "")
            if len(compact) >= MIN_GLUED:
                self._compact.setdefault(compact, canon)
                self._heads.add(compact[:MIN_GLUED])
                self._tails.add(compact[-MIN_GLUED:])
            words = canon.split("_")
            if len(words) < 2 or not all(words):
                continue
            for i, word in enumerate(words):
                if len(words) == 2:
                    # Two two-word names share a word all the time (`async-trait`,
                    # `async-widget`); only a longer name keeps enough to point at one crate.
                    continue
                wild = "_".join([*words[:i], "*", *words[i + 1 :]])
                self._wildcard.setdefault(wild, []).append((canon, word))
                if len(words) >= 3:
                    rest = "_".join(words[:i] + words[i + 1 :])
                    self._removed.setdefault(rest, []).append((canon, word))

    def check(self, name: str) -> ComboMatch | None:
        """The protected name `name` builds on, or None (also for protected names themselves).

        Among several matches the plainest kind wins (a name with a word added says most
        about what was meant), then the longest protected name (`serde_json` over `serde` in
        `serde_json_ext`), then policy-added names, then the more popular one.
        """
        canon = canonical_name(name)
        if canon in self._protected:
            return None
        words = [w for w in canon.split("_") if w][:MAX_WORDS]
        found: list[tuple[str, ComboKind, tuple[str, ...]]] = []
        self._added(words, found)
        if not found:
            self._glued(words, found)
        self._removed_or_replaced(words, found)
        if not found:
            return None
        protected = self._protected

        def preference(
            match: tuple[str, ComboKind, tuple[str, ...]],
        ) -> tuple[int, int, int, int]:
            rank = protected[match[0]][1]
            return (_KIND_ORDER[match[1]], -len(match[0]), 0 if rank is None else 1, rank or 0)

        canon_p, kind, changed = min(found, key=preference)
        spelling, rank = protected[canon_p]
        return ComboMatch(name, spelling, kind, changed, rank)

    def _added(self, words: list[str], found: list[tuple[str, ComboKind, tuple[str, ...]]]) -> None:
        """A contiguous run of the words is a protected name; the rest were added."""
        n = len(words)
        for size in range(n - 1, 0, -1):
            for start in range(n - size + 1):
                candidate = "_".join(words[start : start + size])
                if len(candidate) >= MIN_PROTECTED and candidate in self._protected:
                    added = tuple(words[:start] + words[start + size :])
                    found.append((candidate, ComboKind.ADDED, added))
            if found:
                return  # longer runs say more; shorter ones inside them add nothing

    def _glued(self, words: list[str], found: list[tuple[str, ComboKind, tuple[str, ...]]]) -> None:
        """A word starts or ends with a protected name glued to another word (the protected
        name's own separators dropped: `postgresderive` holds `postgres`)."""
        get = self._compact.get
        for word in words:
            if len(word) < MIN_GLUED + MIN_GLUED_REST:
                continue
            if word[:MIN_GLUED] in self._heads:
                for cut in range(MIN_GLUED, len(word) - MIN_GLUED_REST + 1):
                    head = get(word[:cut])
                    if head is not None:
                        found.append((head, ComboKind.GLUED, (word[cut:],)))
            if word[-MIN_GLUED:] in self._tails:
                for cut in range(MIN_GLUED_REST, len(word) - MIN_GLUED + 1):
                    tail = get(word[cut:])
                    if tail is not None:
                        found.append((tail, ComboKind.GLUED, (word[:cut],)))

    def _removed_or_replaced(
        self, words: list[str], found: list[tuple[str, ComboKind, tuple[str, ...]]]
    ) -> None:
        if len(words) >= 2:
            for canon, word in self._removed.get("_".join(words), ()):
                found.append((canon, ComboKind.REMOVED, (word,)))
            for i, word in enumerate(words):
                wild = "_".join([*words[:i], "*", *words[i + 1 :]])
                for canon, replaced in self._wildcard.get(wild, ()):
                    if replaced != word:
                        found.append((canon, ComboKind.REPLACED, (replaced, word)))
