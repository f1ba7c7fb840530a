"""The facts a malicious-crate decision weighs, gathered from data the mirror already holds.

Four sources, each a frozen value built by a pure function (the serving layer does the I/O):
- `NameFacts`: the requested name against the popularity corpus and the policy's internal
  names (look-alike matches, the name's own rank).
- `CrateHistory`: the crate's index file (publish times, versions, yanks).
- `ContentFacts`: the capability scan of one version's `.crate` (what its code can do and
  which suspicious patterns it contains), grouped by where the code runs.
- `DependencyFacts`: a dependency's own name and history, for versions that add one.

`mirror.policy.risk` turns them into weighted signals and a decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from mirror.index import IndexFile, IndexLine
from mirror.policy.combosquat import ComboMatch
from mirror.policy.typosquat import SquatMatch
from mirror.policy.versions import parse_pubtime

__all__ = [
    "ContentFacts",
    "CrateHistory",
    "DependencyFacts",
    "NameFacts",
    "RunsAt",
    "VersionFacts",
]


class RunsAt(StrEnum):
    """Where a piece of a crate's code runs, which decides how much a capability means."""

    BUILD = "build"  # build script: runs on every machine that builds a dependent
    MACRO = "macro"  # proc-macro: runs inside the compiler, same reach as a build script
    RUNTIME = "runtime"  # library code: runs inside the program that uses the crate
    OTHER = "other"  # tests, examples, benches: only the crate's own developers run them


@dataclass(frozen=True)
class NameFacts:
    name: str
    rank: int | None  # the name's own place in the popularity corpus (None: not in it)
    internal: bool  # one of the policy's `protect` names (an internal crate)
    typo: SquatMatch | None  # a typo-like near-name of a protected crate
    combo: ComboMatch | None  # a protected name with a word added, removed or replaced
    corpus: bool  # False when no corpus was loaded: name evidence is missing
    downloads: int | None = None  # all-time downloads, where the corpus has them

    @property
    def meant(self) -> str | None:
        """The crate the requester probably meant, if the name imitates one."""
        if self.typo is not None:
            return self.typo.protected
        return self.combo.protected if self.combo is not None else None


@dataclass(frozen=True)
class CrateHistory:
    """What the index file says about the crate as a whole."""

    versions: int
    yanked: int
    # Earliest `pubtime`; None when the crate predates crates.io recording publish times
    # (any line without one) or when no line has a readable one.
    first_published: datetime | None
    last_published: datetime | None
    predates_pubtime: bool  # some version has no `pubtime`: published before 2025
    stale: bool = False  # the index came from the cache because upstream was unreachable

    @classmethod
    def from_index(cls, index: IndexFile, *, stale: bool = False) -> CrateHistory:
        times = [t for line in index.lines if (t := parse_pubtime(line.pubtime)) is not None]
        # crates.io started writing `pubtime` in 2025; a line without one was published
        # before that. Its absence is evidence of age, but weak: any registry may omit it.
        predates = any(line.pubtime is None for line in index.lines)
        return cls(
            versions=len(index.lines),
            yanked=sum(1 for line in index.lines if line.yanked),
            first_published=None if predates or not times else min(times),
            last_published=max(times) if times else None,
            predates_pubtime=predates,
            stale=stale,
        )


@dataclass(frozen=True)
class ContentFacts:
    """A version's scan, reduced to (kind, where it runs) -> evidence lines.

    `kind` is a capability (`net`, `process`, `fs`, `env`, `binary`, ...) or a suspicious
    pattern the scanner found (`url`, `encoded_blob`, `sensitive_path`, ...).
    """

    version: str
    items: Mapping[tuple[str, RunsAt], tuple[str, ...]] = field(default_factory=dict)

    def evidence(self, kind: str, where: Iterable[RunsAt]) -> tuple[str, ...]:
        out: list[str] = []
        for place in where:
            out.extend(self.items.get((kind, place), ()))
        return tuple(out)

    def has(self, kind: str, where: Iterable[RunsAt]) -> bool:
        return any((kind, place) in self.items for place in where)


@dataclass(frozen=True)
class DependencyFacts:
    """A dependency a version adds, as far as the mirror knows it."""

    name: str
    typo: SquatMatch | None  # the dependency's own name imitates a protected crate
    established: bool  # in the corpus, or old enough to rule out a fresh look-alike
    history: CrateHistory | None  # None: its index file could not be had (missing evidence)


@dataclass(frozen=True)
class VersionFacts:
    """One version: its publish time, its content and the dependencies it adds."""

    line: IndexLine
    published: datetime | None
    content: ContentFacts | None  # None: not scanned (see `scan_problem`)
    scan_problem: str | None = None  # why there is no scan, when one was wanted
    earlier: ContentFacts | None = None  # a scanned earlier version: what the crate always did
    added: tuple[DependencyFacts, ...] = ()  # dependencies this version adds
    first_seen: datetime | None = None  # when this mirror first served the crate


def added_dependencies(index: IndexFile, line: IndexLine) -> tuple[str, ...]:
    """Dependencies `line` has that the version published before it did not.

    For a crate's first version every dependency is new. "Before" is index order, which is
    publish order on crates.io; a takeover adds a dependency in its malicious release (the
    2026 `arrayref` 0.3.10 added `proc-macro1`).
    """
    previous: IndexLine | None = None
    for candidate in index.lines:
        if candidate is line or candidate.vers == line.vers:
            break
        previous = candidate
    before = set(previous.deps) if previous is not None else set()
    return tuple(d for d in line.deps if d not in before)
