"""Pure version rules: each takes one index line plus policy data and returns a Decision
when it matches, or None. No I/O, no clock: `now`/`today` are parameters.

Rules never rewrite a line. The engine drops whole lines from the served index, so cargo
resolves to the newest version every rule allows, and a direct download of a dropped
version gets the same decision as a 403.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

from mirror.index import IndexLine
from mirror.policy.advisories import Advisory
from mirror.policy.decision import Decision, Mode
from mirror.policy.model import (
    AdvisoriesRule,
    ListEntry,
    MinAgeRule,
    MissingPubtime,
    YankedRule,
)
from mirror.policy.schema import describe_duration
from mirror.policy.semver import Version


def parse_version(vers: str) -> Version | None:
    """The line's version, or None if upstream published something cargo could not parse."""
    try:
        return Version.parse(vers)
    except ValueError:
        return None


def entry_covers(entry: ListEntry, name: str, version: Version | None) -> bool:
    """Does an allow/deny entry cover this crate version?

    A name-only entry covers every version. A range covers versions inside it by version
    ordering, pre-releases included, so `openssl@<0.10.55` also hides `0.10.55-rc.1`
    (cargo's pre-release opt-in would let it slip past). A version that does not parse
    cannot be ruled out, so a range covers it: fail closed.
    """
    if not entry.spec.names(name):
        return False
    if entry.spec.req is None or version is None:
        return True
    return entry.spec.req.covers(version)


def deny_by_range(
    line: IndexLine, version: Version | None, entries: Sequence[ListEntry], mode: Mode, today: date
) -> Decision | None:
    """`deny: [{crate: name@req}]`: versions with a known problem (a CVE, a bad release)."""
    if mode is Mode.OFF:
        return None
    for entry in entries:
        if entry.spec.req is None or not entry.active(today):
            continue
        if entry_covers(entry, line.name, version):
            return Decision.matched(
                mode,
                "deny",
                f"`{line.name}` {line.vers} is denied by policy ({entry.spec}): {entry.reason}",
                _entry_details(entry, line.vers),
            )
    return None


def deny_by_name(
    name: str, entries: Sequence[ListEntry], mode: Mode, today: date
) -> Decision | None:
    """`deny: [{crate: name}]`: the whole crate (a known-malicious or banned name)."""
    if mode is Mode.OFF:
        return None
    for entry in entries:
        if entry.spec.req is None and entry.active(today) and entry.spec.names(name):
            return Decision.matched(
                mode,
                "deny",
                f"`{name}` is denied by policy: {entry.reason}",
                _entry_details(entry, None),
            )
    return None


def exempting_entry(
    line: IndexLine, version: Version | None, entries: Sequence[ListEntry], today: date
) -> ListEntry | None:
    """An active `allow: [{crate: name@req}]` entry covering this version, if any.

    Only entries with a range exempt versions: allowing a *name* (to pass the typosquat
    check) must not also switch off advisories and the cooldown for all its versions.
    """
    for entry in entries:
        if entry.spec.req is None or not entry.active(today):
            continue
        if version is not None and entry_covers(entry, line.name, version):
            return entry
    return None


def yanked(line: IndexLine, rule: YankedRule) -> Decision | None:
    """Yanked versions: the author withdrew them (often a broken or compromised release)."""
    if rule.mode is Mode.OFF or not line.yanked:
        return None
    return Decision.matched(
        rule.mode,
        "yanked",
        f"`{line.name}` {line.vers} was yanked by its publisher",
        {"version": line.vers},
    )


def parse_pubtime(text: str | None) -> datetime | None:
    """crates.io writes RFC 3339 UTC (`2025-01-01T12:34:56Z`); None if absent or unreadable."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def min_age(line: IndexLine, rule: MinAgeRule, now: datetime) -> Decision | None:
    """Cooldown: hide versions younger than `age`.

    Stops the "compromised maintainer publishes a malicious patch release" attack from
    reaching builds before the ecosystem notices and yanks it (most such releases are
    caught within hours to days). A `pubtime` in the future counts as brand new.
    """
    if rule.mode is Mode.OFF:
        return None
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    published = parse_pubtime(line.pubtime)
    minimum = int(rule.age.total_seconds())
    if published is None:
        if rule.missing_pubtime is MissingPubtime.ALLOW:
            return None
        what = "no publication time" if line.pubtime is None else "an unreadable publication time"
        return Decision.matched(
            rule.mode,
            "min_age",
            f"`{line.name}` {line.vers} has {what}, so its age cannot be checked",
            {"version": line.vers, "pubtime": line.pubtime, "min_age_seconds": minimum},
        )
    age = now - published
    if age >= rule.age:
        return None
    available = published + rule.age
    return Decision.matched(
        rule.mode,
        "min_age",
        f"`{line.name}` {line.vers} was published {describe_duration(age)} ago; this mirror waits "
        f"{describe_duration(rule.age)} before serving new versions",
        {
            "version": line.vers,
            "pubtime": line.pubtime,
            "age_seconds": int(age.total_seconds()),
            "min_age_seconds": minimum,
            "available_at": available.isoformat().replace("+00:00", "Z"),
        },
    )


def advisories(
    line: IndexLine, version: Version | None, found: Iterable[Advisory], rule: AdvisoriesRule
) -> Decision | None:
    """RustSec advisories: hide versions with a published vulnerability.

    Informational advisories (unmaintained, unsound, notice) count only for the kinds
    listed in `informational`. Ignored ids (`ignore:`) never count. A version that does
    not parse is treated as affected (fail closed).
    """
    if rule.mode is Mode.OFF:
        return None
    hits = [
        a
        for a in found
        if a.id not in rule.ignore
        and (a.informational is None or a.informational in rule.informational)
        and (version is None or a.affects(version))
    ]
    if not hits:
        return None
    ids = [a.id for a in hits]
    first = hits[0]
    title = f" ({first.title})" if first.title else ""
    more = f" and {len(hits) - 1} more" if len(hits) > 1 else ""
    return Decision.matched(
        rule.mode,
        "advisories",
        f"`{line.name}` {line.vers} is affected by {first.id}{title}{more}",
        {
            "version": line.vers,
            "advisories": ids,
            "urls": [a.url for a in hits if a.url],
            "patched": sorted({str(r) for a in hits for r in a.patched}),
        },
    )


def _entry_details(entry: ListEntry, version: str | None) -> dict[str, object]:
    details: dict[str, object] = {"entry": str(entry.spec), "field": entry.field}
    if entry.line is not None:
        details["line"] = entry.line
    if entry.expires is not None:
        details["expires"] = entry.expires.isoformat()
    if version is not None:
        details["version"] = version
    return details
