"""The typed shape of a policy: frozen dataclasses the pure rules consume.

`mirror.policy.model` builds these from YAML (and re-exports them); nothing here reads
files. Defaults are the values an omitted rule or setting takes, documented in
docs/policy.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

from mirror.index import canonical_name
from mirror.policy.decision import Mode
from mirror.policy.semver import VersionReq
from mirror.policy.signals import MISSING, default_weights

# 2: `rules.typosquat` (name distance alone) became `rules.risk` (weighed evidence).
SCHEMA_VERSION = 2


class MissingPubtime(StrEnum):
    """What `min_age` does with index lines that carry no `pubtime` (published before 2025)."""

    ALLOW = "allow"
    HIDE = "hide"


class FirstSeen(StrEnum):
    """What `capabilities` does with a crate version that has no entry in the lock yet."""

    TRUST = "trust"
    REQUIRE_APPROVAL = "require-approval"


class Informational(StrEnum):
    """RustSec informational advisory kinds (not vulnerabilities as such)."""

    UNMAINTAINED = "unmaintained"
    UNSOUND = "unsound"
    NOTICE = "notice"


@dataclass(frozen=True)
class CrateSpec:
    """`name` or `name@<cargo version requirement>` from an allow or deny entry."""

    name: str
    req: VersionReq | None = None

    @property
    def canonical(self) -> str:
        return canonical_name(self.name)

    def names(self, crate: str) -> bool:
        """Names compare canonically: `Foo-Bar` and `foo_bar` are the same crate."""
        return canonical_name(crate) == self.canonical

    def __str__(self) -> str:
        return self.name if self.req is None else f"{self.name}@{self.req}"


@dataclass(frozen=True)
class ListEntry:
    """One `allow` or `deny` entry, with where it came from (for messages and audits)."""

    spec: CrateSpec
    reason: str
    expires: date | None = None
    field: str = ""  # e.g. "allow[2]"
    line: int | None = None

    def active(self, today: date) -> bool:
        """An entry applies up to and including its `expires` day."""
        return self.expires is None or today <= self.expires


class ScanBeforeServing(StrEnum):
    """Which versions `risk` scans before an index file that lists them is served."""

    NEW = "new"  # the newest release of a new crate, or one younger than `new_version`
    NEVER = "never"  # only what a download scans anyway: content counts from then on


@dataclass(frozen=True)
class RiskThresholds:
    """Points at which a crate's summed evidence warns, is quarantined, or is blocked."""

    warn: float = 4.5
    quarantine: float = 5.0  # hidden and refused until old enough or approved
    block: float = 8.0  # refused until approved


def _frozen(mapping: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class RiskRule:
    """Malicious-crate detection: name, history, content and dependency evidence, weighed."""

    mode: Mode = Mode.OFF
    corpus: Path | None = None  # popular-crates list; None = popular-crates.txt by the policy
    use_corpus: bool = True  # `corpus: null`: no corpus; name evidence is reported missing
    protect_top: int = 5000  # names others may not imitate: the most downloaded N
    protect: tuple[str, ...] = ()  # internal crate names: imitations, and the names themselves
    thresholds: RiskThresholds = field(default_factory=RiskThresholds)
    new: timedelta = timedelta(days=7)  # a crate first published less than this ago is new
    young: timedelta = timedelta(days=30)  # ... and less than this ago is young
    old: timedelta = timedelta(days=365)  # ... and more than this ago is old
    new_version: timedelta = timedelta(hours=72)  # a release this fresh may be a takeover
    scan: ScanBeforeServing = ScanBeforeServing.NEW
    weights: Mapping[str, float] = field(default_factory=lambda: _frozen(default_weights()))
    missing: Mapping[str, float] = field(
        default_factory=lambda: _frozen({k: v[0] for k, v in MISSING.items()})
    )


@dataclass(frozen=True)
class DenyRule:
    mode: Mode = Mode.BLOCK  # an explicit deny list is applied unless switched off


@dataclass(frozen=True)
class YankedRule:
    mode: Mode = Mode.OFF


@dataclass(frozen=True)
class MinAgeRule:
    mode: Mode = Mode.OFF
    age: timedelta = timedelta(hours=72)
    missing_pubtime: MissingPubtime = MissingPubtime.ALLOW


RUSTSEC_ADVISORY_DB = "https://github.com/rustsec/advisory-db.git"


@dataclass(frozen=True)
class AdvisoriesRule:
    mode: Mode = Mode.OFF
    db: Path | None = None
    ignore: frozenset[str] = frozenset()
    informational: frozenset[Informational] = frozenset()  # kinds treated like vulnerabilities
    # Where `crate-mirror advisories update` clones `db` from: a git URL, or a local path
    # (made absolute against the policy file's directory).
    source: str = RUSTSEC_ADVISORY_DB


@dataclass(frozen=True)
class CapabilitiesRule:
    mode: Mode = Mode.OFF
    lock: Path | None = None
    first_seen: FirstSeen = FirstSeen.TRUST


@dataclass(frozen=True)
class Rules:
    risk: RiskRule = field(default_factory=RiskRule)
    deny: DenyRule = field(default_factory=DenyRule)
    yanked: YankedRule = field(default_factory=YankedRule)
    min_age: MinAgeRule = field(default_factory=MinAgeRule)
    advisories: AdvisoriesRule = field(default_factory=AdvisoriesRule)
    capabilities: CapabilitiesRule = field(default_factory=CapabilitiesRule)


RULE_NAMES = ("risk", "deny", "yanked", "min_age", "advisories", "capabilities")


@dataclass(frozen=True)
class Policy:
    rules: Rules
    allow: tuple[ListEntry, ...]
    deny: tuple[ListEntry, ...]
    path: Path
    digest: str  # sha256 of the file bytes, recorded with every audited decision


_DURATION_RE = re.compile(r"(\d+)\s*(w|d|h|m|s)")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str) -> timedelta:
    """`72h`, `3d`, `1w`, `1d12h`, `90m`: a sum of numbers with units w/d/h/m/s."""
    compact = text.replace(" ", "")
    if not compact or _DURATION_RE.sub("", compact):
        raise ValueError(f"{text!r} is not a duration; write e.g. 72h, 3d, 1w or 1d12h")
    total = timedelta()
    for number, unit in _DURATION_RE.findall(compact):
        total += timedelta(**{_UNITS[unit]: int(number)})
    return total


def describe_duration(delta: timedelta) -> str:
    """A duration as a reason shows it: `3 days`, `5 hours`, `12 minutes`, `40 seconds`."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 2 * 3600:
        return f"{seconds // 3600} hours"
    if seconds >= 120:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"
