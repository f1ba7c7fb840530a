"""What a crate's name says: compared with the popularity corpus and the internal names. Pure.

One `NameIndex` per loaded corpus and policy; `facts(name)` is the name part of every
malicious-crate decision (`mirror.policy.risk`). Built once per corpus and `protect` list
(construction takes about a second at 20,000 names) and reused across policy reloads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mirror.index import canonical_name
from mirror.policy.combosquat import ComboIndex
from mirror.policy.evidence import NameFacts
from mirror.policy.typosquat import SquatThresholds, TyposquatIndex

# Looser than a name check alone can afford: a match here is one signal among many, weighed
# with the crate's age, history and content, so short names and numbers can be looked at.
EVIDENCE_THRESHOLDS = SquatThresholds(
    distance1_min_length=4,
    typo_min_length=4,
    swap_min_length=3,
    plural_min_length=3,
    repeated_min_length=3,
    number_step=True,
)

__all__ = ["NameIndex"]


class NameIndex:
    def __init__(
        self,
        corpus: Sequence[str] | None,
        *,
        protect_top: int,
        internal: Sequence[str] = (),
        downloads: Mapping[str, int] | None = None,
    ) -> None:
        """`corpus`: crate names, most downloaded first (None: no corpus could be loaded);
        the first `protect_top` are the names others may not imitate; every name in it is
        established. `internal`: the company's own crate names (policy `protect`).
        `downloads`: all-time download counts by name, where the corpus has them."""
        names = list(corpus or ())
        self.has_corpus = corpus is not None
        self._rank: dict[str, int] = {}
        for rank, name in enumerate(names, start=1):
            self._rank.setdefault(canonical_name(name), rank)
        self._internal = frozenset(canonical_name(n) for n in internal)
        self._downloads = {canonical_name(k): v for k, v in (downloads or {}).items()}
        protected = names[:protect_top]
        self.typos = TyposquatIndex(protected, extra=internal, thresholds=EVIDENCE_THRESHOLDS)
        self.combos = ComboIndex(protected, extra=internal)

    def __len__(self) -> int:
        return len(self.typos)

    def rank(self, name: str) -> int | None:
        return self._rank.get(canonical_name(name))

    def is_internal(self, name: str) -> bool:
        return canonical_name(name) in self._internal

    def facts(self, name: str) -> NameFacts:
        internal = self.is_internal(name)
        typo = None if internal else self.typos.check(name)
        combo = None if internal or typo is not None else self.combos.check(name)
        return NameFacts(
            name=name,
            rank=self.rank(name),
            downloads=self._downloads.get(canonical_name(name)),
            internal=internal,
            typo=typo,
            combo=combo,
            corpus=self.has_corpus,
        )
