"""The review workflow's bugs from issue 13, each driven through the HTTP API and the CLI the
way a person meets them: every test here failed before its fix."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from mirror.audit import read_events
from mirror.audit.index import AuditIndex
from mirror.cli import main
from mirror.http.routes import HANDLERS
from mirror.index import index_path
from mirror.sources.capability_lockfile import load_lock, lock_in_use
from tests import REPO
from tests.fixtures.pytest_plugin import MirrorClient
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream

RUNS_SH = b'fn main() { std::process::Command::new("sh").status().ok(); }\n'
PLAIN = b"pub fn f() {}\n"


def policy_file(
    directory: Path, first_seen: str = "trust", lock: str | None = None, mode: str = "block"
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    where = f", lock: {lock}" if lock else ""
    path = directory / "policy.yaml"
    path.write_text(
        f"version: 2\nrules:\n  capabilities: {{mode: {mode}, first_seen: {first_seen}{where}}}\n"
    )
    return path


def gizmo_reviewed_plain(directory: Path) -> None:
    """The lock beside the policy: gizmo may do nothing, as reviewed at 1.0.0."""
    (directory / "capabilities.lock.yaml").write_text(
        "version: 1\ncrates:\n  gizmo:\n    - capabilities: []\n      approved_by: reviewer\n"
        '      approved_at: "2026-01-01T00:00:00Z"\n      reason: plain\n'
        '      reviewed: "1.0.0"\n'
    )


async def settled(client: Any) -> None:
    """First sightings are recorded after their answer, and what was answered from memory
    reaches the store after it too: wait for both, as the console does before it reads."""
    await client.app[HANDLERS].core.settle()


async def versions_served(client: Any, name: str) -> list[str]:
    resp = await client.get("/index/" + index_path(name))
    assert resp.status == 200
    return [json.loads(line)["vers"] for line in (await resp.read()).splitlines()]


async def test_a_revoked_crate_stays_blocked_and_is_never_trusted_on_first_use_again(
    mirror_client: MirrorClient,
    small_upstream: FakeUpstream,
    small_registry: Registry,
    tmp_path: Path,
) -> None:
    """The issue's reproduction: approve cfg-if, publish a cfg-if whose build.rs runs `sh`,
    revoke cfg-if, download it. It was 200 (re-recorded as trust-on-first-use); now 403."""
    policy = policy_file(tmp_path / "policies")
    lock = tmp_path / "policies" / "capabilities.lock.yaml"
    cache = tmp_path / "cache"
    client = await mirror_client(small_upstream, policy=policy, index_ttl=0)
    old = small_registry.versions("cfg-if")[-1]
    assert (await client.get(f"/api/v1/crates/cfg-if/{old}/download")).status == 200
    await settled(client)
    flags = ["--lock", str(lock), "--cache-dir", str(cache)]
    assert main(["approve", f"cfg-if@{old}", "--reason", "tiny macro crate", *flags]) == 0
    small_registry.add_crate("cfg-if", "99.0.0", {"build.rs": RUNS_SH})
    assert main(["revoke", "cfg-if", "--reason", "maintainer account lost", *flags]) == 0

    resp = await client.get("/api/v1/crates/cfg-if/99.0.0/download")
    assert resp.status == 403
    assert "approvals were revoked" in await resp.text()
    assert "cfg-if" not in (cache / "state" / "capabilities.tofu.yaml").read_text()
    # The version it had, with no capabilities, still needs nothing approved.
    assert (await client.get(f"/api/v1/crates/cfg-if/{old}/download")).status == 200


async def test_the_printed_approve_command_acts_on_the_servers_lock_and_applies_at_once(
    mirror_client: MirrorClient,
    small_upstream: FakeUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a lock at a non-default path, the command in the 403 used to write
    policies/capabilities.lock.yaml wherever it was run and exit 0 while the crate stayed
    blocked; and an approval took ~2 s to apply. Now it names the lock and cache the server
    uses, is said once, and the very next request is served."""
    policy = policy_file(tmp_path / "conf", "require-approval", lock="approvals/held.yaml")
    client = await mirror_client(small_upstream, policy=policy)
    version = small_upstream.registry.versions("itoa")[-1]
    resp = await client.get(f"/api/v1/crates/itoa/{version}/download")
    assert resp.status == 403
    body = await resp.text()
    assert body.count("crate-mirror approve") == 1  # it was said twice
    command = re.search(r"`(crate-mirror approve [^`]+)`", body)
    assert command is not None, body
    argv = shlex.split(command.group(1).replace('"..."', '"reviewed: plain integer printing"'))
    lock = (tmp_path / "conf" / "approvals" / "held.yaml").resolve()
    assert argv[argv.index("--lock") + 1] == str(lock)
    assert argv[argv.index("--cache-dir") + 1] == str((tmp_path / "cache").resolve())
    assert lock_in_use(tmp_path / "cache" / "state") == lock  # what a mistyped --lock meets

    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # copied into another shell, in another directory
    assert main(argv[1:]) == 0
    assert not (elsewhere / "policies").exists()
    assert load_lock(lock).approved_for("itoa", version) is not None
    resp = await client.get(f"/api/v1/crates/itoa/{version}/download")  # no waiting
    assert resp.status == 200


async def test_trust_on_first_use_never_writes_the_checkouts_lock(
    mirror_client: MirrorClient, small_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """First sightings go to the cache directory (settings.tofu_lock), never into the
    tracked policies/capabilities.lock.yaml, and leave nothing untracked beside it."""
    policies = tmp_path / "checkout" / "policies"
    policy = policy_file(policies)
    tracked = policies / "capabilities.lock.yaml"
    tracked.write_text(
        "version: 1\ncrates:\n  serde:\n    - capabilities: []\n      approved_by: alice\n"
        '      approved_at: "2026-01-01T00:00:00Z"\n      reason: reviewed\n'
    )
    before = tracked.read_bytes()
    client = await mirror_client(small_upstream, policy=policy)
    version = small_upstream.registry.versions("itoa")[-1]
    assert (await client.get(f"/api/v1/crates/itoa/{version}/download")).status == 200
    await settled(client)
    assert tracked.read_bytes() == before
    assert sorted(p.name for p in policies.iterdir()) == ["capabilities.lock.yaml", "policy.yaml"]
    recorded = load_lock(tmp_path / "cache" / "state" / "capabilities.tofu.yaml")
    assert recorded.approved_for("itoa", version) is not None


async def test_every_unscanned_new_version_is_hidden_and_nothing_waits_for_the_scans(
    mirror_client: MirrorClient,
    small_upstream: FakeUpstream,
    small_registry: Registry,
    tmp_path: Path,
) -> None:
    """Four evil versions published at once: before, three were scanned while cargo waited
    and the fourth was served unscanned (cargo locked it, then hit a 403). Now none is
    served, the index answers before any scan, and scans finish in the background."""
    small_registry.add_crate("gizmo", "1.0.0", {"src/lib.rs": PLAIN})
    policy = policy_file(tmp_path / "policies")
    gizmo_reviewed_plain(tmp_path / "policies")
    for patch in range(1, 5):
        small_registry.add_crate("gizmo", f"1.0.{patch}", {"build.rs": RUNS_SH})
    small_registry.add_crate("gizmo", "1.0.5", {"src/lib.rs": PLAIN})
    client = await mirror_client(small_upstream, policy=policy)
    small_upstream.faults.add("delay", match="/gizmo/", seconds=1.0)

    assert await versions_served(client, "gizmo") == ["1.0.0"]
    assert small_upstream.requests.count("download") == 0  # answered before any scan

    async def scanned() -> bool:
        return small_upstream.requests.count("download") >= 5

    for _ in range(100):
        if await scanned():
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    assert await versions_served(client, "gizmo") == ["1.0.0", "1.0.5"]  # the plain one
    index = AuditIndex(tmp_path / "cache" / "audit")
    await asyncio.sleep(0.2)
    index.refresh()
    held = sorted((h.crate, h.version) for h in index.pending())
    assert held == [("gizmo", f"1.0.{p}") for p in range(1, 5)]


async def test_a_dry_run_serves_a_new_version_at_once_and_records_what_its_scan_finds(
    mirror_client: MirrorClient,
    small_upstream: FakeUpstream,
    small_registry: Registry,
    tmp_path: Path,
) -> None:
    """`mode: warn` serves everything: a new version of a crate in the lock is not held back
    while it is scanned; what the scan finds beyond the lock is on the record as a warning."""
    small_registry.add_crate("gizmo", "1.0.0", {"src/lib.rs": PLAIN})
    policy = policy_file(tmp_path / "policies", mode="warn")
    gizmo_reviewed_plain(tmp_path / "policies")
    small_registry.add_crate("gizmo", "1.1.0", {"build.rs": RUNS_SH})
    client = await mirror_client(small_upstream, policy=policy)
    small_upstream.faults.add("delay", match="/gizmo/", seconds=0.5, times=1)
    assert await versions_served(client, "gizmo") == ["1.0.0", "1.1.0"]  # not held back
    events: list[dict[str, Any]] = []
    for _ in range(100):  # the scan runs in the background
        client.app[HANDLERS].core.gate.audit.flush()
        events = [
            e
            for e in read_events(tmp_path / "cache" / "audit")
            if e.get("crate") == "gizmo" and e.get("version") == "1.1.0"
        ]
        if any(e["action"] == "warn" for e in events):
            break
        await asyncio.sleep(0.1)
    warned = [e for e in events if e["action"] == "warn"]
    assert warned and "process" in warned[0]["reason"]
    resp = await client.get("/api/v1/crates/gizmo/1.1.0/download")
    assert resp.status == 200


async def test_a_download_of_a_version_hidden_until_scanned_is_scanned_on_the_spot(
    mirror_client: MirrorClient,
    small_upstream: FakeUpstream,
    small_registry: Registry,
    tmp_path: Path,
) -> None:
    """Hiding is for resolution only: a Cargo.lock naming the new version still downloads it
    (scanned then), with no 403 for "not scanned yet"."""
    small_registry.add_crate("gizmo", "1.0.0", {"src/lib.rs": PLAIN})
    policy = policy_file(tmp_path / "policies")
    gizmo_reviewed_plain(tmp_path / "policies")
    small_registry.add_crate("gizmo", "1.1.0", {"src/lib.rs": PLAIN})
    client = await mirror_client(small_upstream, policy=policy)
    small_upstream.faults.add("delay", match="/gizmo/", seconds=0.5, times=1)
    assert await versions_served(client, "gizmo") == ["1.0.0"]
    resp = await client.get("/api/v1/crates/gizmo/1.1.0/download")
    assert resp.status == 200


async def test_a_hold_learnt_from_another_rules_scan_is_on_the_record_for_review(
    mirror_client: MirrorClient,
    small_upstream: FakeUpstream,
    small_registry: Registry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The shipped default policy with `capabilities: block`: its risk rule scans a fresh
    release before serving it, so the capability guard had nothing left to scan ahead, and
    only its own scans audited a hold. The release that adds `process` was kept out of the
    index with nobody told: nothing pending, no alert, no explanation. A revoke changes why
    it is held: that is said again."""
    policies = tmp_path / "policies"
    policies.mkdir()
    shipped = (REPO / "policies" / "default.yaml").read_text()
    assert "  capabilities:\n    mode: warn\n" in shipped
    (policies / "default.yaml").write_text(
        shipped.replace("  capabilities:\n    mode: warn\n", "  capabilities:\n    mode: block\n")
    )
    (policies / "popular-crates.txt").write_bytes(
        (REPO / "policies" / "popular-crates.txt").read_bytes()
    )
    gizmo_reviewed_plain(policies)
    small_registry.add_crate("gizmo", "1.0.0", {"src/lib.rs": PLAIN})
    small_registry.add_crate("gizmo", "1.0.1", {"src/lib.rs": RUNS_SH})
    client = await mirror_client(small_upstream, policy=policies / "default.yaml", index_ttl=0)
    index = AuditIndex(tmp_path / "cache" / "audit")

    async def pending() -> list[tuple[str, str]]:
        client.app[HANDLERS].core.gate.audit.flush()
        await asyncio.sleep(0.2)  # the writer's batch
        index.refresh()
        return sorted((h.crate, h.version) for h in index.pending())

    assert await versions_served(client, "gizmo") == ["1.0.0"]
    assert await pending() == [("gizmo", "1.0.1")]
    assert await versions_served(client, "gizmo") == ["1.0.0"]
    events = [e for e in read_events(tmp_path / "cache" / "audit") if e.get("version") == "1.0.1"]
    assert [e["action"] for e in events] == ["block"]  # said once, not on every request
    assert "crate-mirror approve gizmo@1.0.1 --caps process" in events[0]["details"]["approve"]
    await settled(client)
    explain = ["explain", "gizmo@1.0.1", "--policy", str(policies / "default.yaml"),
               "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert await asyncio.to_thread(main, explain) == 0
    said = capsys.readouterr().out
    assert "also held back by capabilities" in said
    assert "to approve after review: crate-mirror approve gizmo@1.0.1 --caps process" in said

    assert (await client.get("/api/v1/crates/gizmo/1.0.0/download")).status == 200
    await settled(client)
    flags = ["--lock", str(policies / "capabilities.lock.yaml"), "--cache-dir",
             str(tmp_path / "cache")]  # fmt: skip
    assert main(["revoke", "gizmo", "--reason", "maintainer account lost", *flags]) == 0
    assert await versions_served(client, "gizmo") == ["1.0.0"]  # it needs nothing approved
    assert await pending() == [("gizmo", "1.0.1")]
    events = [e for e in read_events(tmp_path / "cache" / "audit") if e.get("version") == "1.0.1"]
    assert {e["action"] for e in events} == {"block"}  # once per process (explain has one)
    assert len({e["reason"] for e in events}) == 2  # the hold, then why it is held now
    assert "approvals were revoked" in events[-1]["reason"]
