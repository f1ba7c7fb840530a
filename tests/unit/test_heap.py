"""mirror.heap: what start-up built is frozen out of full collections; a reload re-settles."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirror import heap
from mirror.audit import AuditLog
from mirror.config import load_settings
from mirror.serving import reload
from mirror.serving.gate import Gate
from mirror.serving.scans import Scans
from mirror.sources.policy_files import PolicyFiles
from mirror.store import FilesystemStore


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test run collects as usual


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> Node:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a


def test_settle_freezes_what_exists_and_full_collections_skip_it() -> None:
    kept = [Node() for _ in range(1000)]
    heap.settle()
    assert gc.get_freeze_count() >= len(kept)
    assert all(gc.is_tracked(n) for n in kept)  # still objects; only the collector skips them


def test_a_cycle_dropped_after_settle_is_freed_by_the_next_settle() -> None:
    """What a policy reload drops: frozen while it was in use, so no collection frees a
    cycle in it, until the reload settles again."""
    old_policy = cycle()
    ref = weakref.ref(old_policy)
    heap.settle()
    del old_policy  # the reload replaced it
    gc.collect()
    assert ref() is not None  # frozen: even a full collection leaves it
    heap.settle()
    assert ref() is None


POLICY = "version: 2\nrules:\n  deny: {mode: block}\n"


def test_a_policy_reload_settles_the_heap_and_a_rejected_one_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settled: list[str] = []
    monkeypatch.setattr(heap, "settle", lambda: settled.append("settled"))
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    settings = load_settings(None, env={}, overrides={"cache_dir": tmp_path / "cache"})
    audit = AuditLog(tmp_path / "audit")
    files = PolicyFiles(policy)
    gate = Gate(audit, files.load())
    reloader = reload.PolicyReloader(
        files, gate, Scans(FilesystemStore(tmp_path / "cache")), audit, settings
    )
    try:
        reloader.reload("test")
        assert settled == ["settled"] and reloader.rejected is None
        policy.write_text(POLICY.replace("mode: block", "mode: sometimes"))
        reloader.reload("test")
        assert settled == ["settled"] and reloader.rejected is not None
    finally:
        audit.close()
