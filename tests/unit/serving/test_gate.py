"""The Gate on its own, with a fake clock: name verdicts kept per day, views kept per content
and decision generation, blocks explained, everything worth a look audited."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from mirror.audit import AuditEvent
from mirror.errors import Blocked
from mirror.index import IndexFile, IndexLine
from mirror.policy.decision import Action, Decision
from mirror.policy.engine import PolicyEngine
from mirror.policy.model import parse_policy
from mirror.serving import gate as gate_module
from mirror.serving.downloads import CrateFile
from mirror.serving.gate import Gate, Request
from mirror.serving.index_cache import IndexEntry
from mirror.serving.views import RiskView

LAST_SECOND = dt.datetime(2030, 1, 15, 23, 59, 59, tzinfo=dt.UTC).timestamp()
POLICY = """\
version: 2
rules:
  deny: {mode: block}
deny:
  - crate: evil
    reason: known bad
  - crate: retired
    reason: replaced by new-thing
    expires: 2030-01-15
  - crate: "itoa@=1.0.1"
    reason: broken release
"""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Audit:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class CountingEngine(PolicyEngine):
    """The real engine, counting how often a name is decided (memo hits are not)."""

    names_decided = 0

    def decide_name(self, name: str, today: dt.date) -> Decision:
        self.names_decided += 1
        return super().decide_name(name, today)


class FakeGuard:
    """A capability check whose verdicts the test sets."""

    def __init__(self) -> None:
        self.generation = 0
        self.verdicts: dict[str, Decision] = {}
        self.scans_made = 0
        self.scanned: dict[str, int] = {}  # cksum -> scans_made right after its scan

    def scan(self, cksum: str) -> None:
        """What the guard sees when a scan of this crate is made."""
        self.scans_made += 1
        self.scanned[cksum] = self.scans_made

    def scanned_since(self, mark: int, index: IndexFile) -> bool:
        return any(self.scanned.get(line.cksum, 0) > mark for line in index.lines)

    def known_verdicts(self, index: IndexFile) -> Mapping[str, Decision]:
        return dict(self.verdicts)

    async def decide(self, line: IndexLine, crate: CrateFile) -> Decision:
        return self.verdicts.get(line.vers, Decision.allow())

    async def settle(self) -> None:
        pass

    async def scan_ahead(self, entry: IndexEntry, fetch: object) -> None:
        pass

    def reviewer(self, name: str, version: str | None = None) -> str | None:
        return None  # nobody has looked at any crate

    def approve_command(self, name: str, version: str) -> str:
        return f"crate-mirror approve {name}@{version}"


def engine(text: str = POLICY) -> CountingEngine:
    return CountingEngine(
        parse_policy(text.encode(), Path("/etc/crate-mirror/policy.yaml")), None, None
    )


def entry(name: str, *versions: str, first: int = 1) -> IndexEntry:
    """Versions' cksums count up from `first`."""
    lines = [
        json.dumps({"name": name, "vers": v, "deps": [], "cksum": f"{i:064x}", "features": {}})
        for i, v in enumerate(versions, start=first)
    ]
    body = ("\n".join(lines) + "\n").encode()
    return IndexEntry(name, IndexFile.parse(body), None, None, fresh_until=0.0)


def request(crate: str, version: str | None = None) -> Request:
    return Request("rid-1", "10.0.0.1", "index" if version is None else "download", crate, version)


def test_name_verdicts_are_decided_once_per_name_and_day() -> None:
    """A warm build asks for the same names thousands of times: one decision each."""
    eng, audit = engine(), Audit()
    gate = Gate(audit, eng, clock=Clock(LAST_SECOND - 3600))
    for _ in range(100):
        gate.check_name(request("serde"))
        gate.check_name(request("itoa"))
    assert eng.names_decided == 2
    assert audit.events == []  # plain allows are recorded by `allowed`, once per request
    assert gate.quietly_allowed("serde")


def test_a_new_day_decides_again_so_entries_expire_at_midnight() -> None:
    """`expires: 2030-01-15` still applies on its last second and no longer a second later."""
    clock = Clock(LAST_SECOND)
    eng = engine()
    gate = Gate(Audit(), eng, clock=clock)
    with pytest.raises(Blocked, match="replaced by new-thing"):
        gate.check_name(request("retired"))
    clock.now += 2  # 2030-01-16 00:00:01 UTC
    gate.check_name(request("retired"))  # allowed: the entry has expired
    assert eng.names_decided == 2


def test_the_name_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random names cannot grow memory without bound: past MAX_MEMO the memo starts over."""
    monkeypatch.setattr(gate_module, "MAX_MEMO", 10)
    eng = engine()
    gate = Gate(Audit(), eng, clock=Clock(LAST_SECOND - 3600))
    for i in range(25):
        gate.check_name(request(f"crate-{i}"))
    assert len(gate._names) <= 11
    gate.check_name(request("crate-24"))  # still remembered after the last reset
    assert eng.names_decided == 25


def test_a_block_is_explained_and_audited() -> None:
    audit = Audit()
    gate = Gate(audit, engine(), clock=Clock(LAST_SECOND - 3600))
    with pytest.raises(Blocked) as info:
        gate.check_name(request("evil"))
    assert "known bad" in str(info.value) and "rid-1" in str(info.value)
    assert info.value.rule == "deny"
    (event,) = audit.events
    assert (event.action, event.rule, event.crate, event.client) == (
        "block",
        "deny",
        "evil",
        "10.0.0.1",
    )
    assert event.policy_digest == gate.policy_digest
    assert not gate.quietly_allowed("evil")


def test_views_are_kept_per_content_and_generation() -> None:
    """The filtered index is computed once per content and decision generation; a new policy
    or a capability verdict makes the next request compute it again."""
    clock, guard = Clock(LAST_SECOND - 3600), FakeGuard()
    gate = Gate(Audit(), engine(), guard, clock=clock)
    published: list[tuple[str, bytes]] = []
    gate.on_served = lambda name, body: published.append((name, body))
    itoa = entry("itoa", "1.0.0", "1.0.1", "1.0.2")
    gate.check_name(request("itoa"))  # the core decides the name first, as every request does
    first = gate.served_index(itoa)
    assert gate.served_index(itoa) is first
    assert set(first.hidden) == {"1.0.1"} and b'"1.0.1"' not in first.body
    assert first.summary == {"versions": 3, "served": 2, "hidden": {"1.0.1": "deny"}}
    assert gate.still_serves(itoa, first, offline=False)
    assert len(published) == 1

    guard.verdicts["1.0.2"] = Decision(Action.BLOCK, "capabilities", "adds net")
    guard.generation += 1  # what the guard does when it learns a verdict
    assert not gate.still_serves(itoa, first, offline=False)
    second = gate.served_index(itoa)
    assert second is not first and set(second.hidden) == {"1.0.1", "1.0.2"}

    gate.replace_policy(engine("version: 2\n"), guard)
    gate.check_name(request("itoa"))
    third = gate.served_index(itoa)
    assert set(third.hidden) == {"1.0.2"}  # the deny entry is gone, the verdict stays
    assert len(published) == 3


def test_a_scan_recomputes_only_the_views_of_its_own_crate() -> None:
    """A scan made anywhere used to make every index view be computed again: during a cold
    build with the shipped policy, the scans of its three locked crates recomputed the views
    of most of the others, on their downloads. Now only the scanned crate's views are."""
    clock, guard = Clock(LAST_SECOND - 3600), FakeGuard()
    gate = Gate(Audit(), engine(), guard, clock=clock)
    itoa, ryu = entry("itoa", "1.0.0", "1.0.2"), entry("ryu", "1.0.5", first=10)
    for e in (itoa, ryu):
        gate.check_name(request(e.name))  # the core decides the name first, as always
    views = {e.name: gate.served_index(e) for e in (itoa, ryu)}
    guard.scan(ryu.index.lines[0].cksum)  # a scan of ryu 1.0.5 ...
    assert gate.still_serves(itoa, views["itoa"], offline=False)  # ... leaves itoa's
    assert gate.served_index(itoa) is views["itoa"]
    assert not gate.still_serves(ryu, views["ryu"], offline=False)  # ... not its own
    again = gate.served_index(ryu)
    assert again is not views["ryu"]
    assert gate.served_index(ryu) is again  # then kept again

    guard.scan(itoa.index.lines[1].cksum)
    guard.scan("f" * 64)  # a crate neither index lists
    assert gate.served_index(ryu) is again
    assert gate.served_index(itoa) is not views["itoa"]

    guard.generation += 1  # the lock changed (an approval): every view again
    assert not gate.still_serves(ryu, again, offline=False)


def test_offline_and_full_views_are_kept_side_by_side() -> None:
    gate = Gate(Audit(), None, clock=Clock(LAST_SECOND - 3600))
    itoa = entry("itoa", "1.0.0", "1.0.1")
    have = {f"{1:064x}"}  # only 1.0.0's crate is stored
    offline = gate.served_index(itoa, lambda cksum: cksum in have)
    full = gate.served_index(itoa)
    assert offline.summary["served"] == 1 and full.summary["served"] == 2
    assert gate.served_index(itoa, lambda cksum: cksum in have) is offline
    assert gate.served_index(itoa) is full
    assert gate.still_serves(itoa, offline, offline=True)
    assert not gate.still_serves(itoa, offline, offline=False)


def test_kept_answers_end_with_the_day() -> None:
    """A view judged today is not repeated tomorrow: entries may have expired at midnight."""
    clock = Clock(LAST_SECOND - 10)
    gate = Gate(Audit(), engine(), clock=clock)
    itoa = entry("itoa", "1.0.0")
    view = gate.served_index(itoa)
    assert not gate.still_serves(itoa, view, offline=False)  # no day judged yet: never reuse
    gate.check_name(request("itoa"))
    assert gate.still_serves(itoa, view, offline=False)
    clock.now = LAST_SECOND + 5
    assert not gate.still_serves(itoa, view, offline=False)


def test_version_rules_apply_to_downloads_with_the_view_they_came_from() -> None:
    audit = Audit()
    gate = Gate(audit, engine(), clock=Clock(LAST_SECOND - 3600))
    itoa = entry("itoa", "1.0.0", "1.0.1")
    line = itoa.index.find("1.0.0")
    assert line is not None
    view = gate.check_version(request("itoa", "1.0.0"), itoa, line)
    assert view is gate.served_index(itoa)
    broken = itoa.index.find("1.0.1")
    assert broken is not None
    with pytest.raises(Blocked, match="broken release"):
        gate.check_version(request("itoa", "1.0.1"), itoa, broken)
    assert [e.version for e in audit.events] == ["1.0.1"]


async def test_capability_verdicts_are_enforced_and_failures_audited(tmp_path: Path) -> None:
    audit, guard = Audit(), FakeGuard()
    gate = Gate(audit, None, guard, clock=Clock(LAST_SECOND - 3600))
    itoa = entry("itoa", "1.0.0", "1.0.1")
    crate = CrateFile(tmp_path / "x.crate", b"", was_cached=True)
    ok, new = itoa.index.find("1.0.0"), itoa.index.find("1.0.1")
    assert ok is not None and new is not None
    assert await gate.check_capabilities(request("itoa", "1.0.0"), ok, crate) is True
    guard.verdicts["1.0.1"] = Decision(Action.BLOCK, "capabilities", "adds net")
    with pytest.raises(Blocked, match="adds net"):
        await gate.check_capabilities(request("itoa", "1.0.1"), new, crate)
    gate.failed(request("itoa", "1.0.0"), "checksum", "checksum mismatch")
    assert [(e.action, e.rule) for e in audit.events] == [
        ("block", "capabilities"),
        ("block", "checksum"),
    ]
    gate.allowed(request("itoa", "1.0.0"), {"cksum": ok.cksum, "count": 3})
    assert audit.events[-1].cksum == ok.cksum and audit.events[-1].details == {"count": 3}


RISK_POLICY = "version: 2\nrules:\n  risk: {mode: block}\n"


async def test_a_risk_view_is_gathered_once_for_requests_arriving_meanwhile() -> None:
    """Concurrent requests for one index file share one gathering of its evidence, run by
    the first of them (no task, whose start and end each waited for a turn of the loop);
    a failure is theirs too, and is not kept: the next request gathers again."""
    gate = Gate(Audit(), engine(RISK_POLICY), FakeGuard())
    itoa = entry("itoa", "1.0.0")
    release = asyncio.Event()
    calls: list[str] = []

    async def gather(e: IndexEntry, eng: PolicyEngine, reviewer: object) -> RiskView | None:
        calls.append(e.name)
        await release.wait()
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return None

    first = [asyncio.ensure_future(gate.risk_view(itoa, gather)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*first, return_exceptions=True)
    assert calls == ["itoa"]
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await gate.risk_view(itoa, gather) is None  # gathered again, and kept
    assert await gate.risk_view(itoa, gather) is None
    assert calls == ["itoa", "itoa"]


async def test_when_the_gathering_request_goes_away_a_waiting_one_gathers() -> None:
    """The gathering runs in the first request: if that request is cancelled (its client
    went away), the requests waiting for it must neither be cancelled with it nor wait
    forever; one of them gathers instead."""
    gate = Gate(Audit(), engine(RISK_POLICY), FakeGuard())
    itoa = entry("itoa", "1.0.0")
    started = asyncio.Event()
    calls: list[str] = []

    async def gather(e: IndexEntry, eng: PolicyEngine, reviewer: object) -> RiskView | None:
        calls.append(e.name)
        if len(calls) == 1:
            started.set()
            await asyncio.sleep(3600)  # until cancelled
        return None

    gathering = asyncio.ensure_future(gate.risk_view(itoa, gather))
    await started.wait()
    waiting = asyncio.ensure_future(gate.risk_view(itoa, gather))
    await asyncio.sleep(0)
    gathering.cancel()
    assert await asyncio.wait_for(waiting, 5) is None
    assert gathering.cancelled()
    assert calls == ["itoa", "itoa"]
