"""HotCrates: small crates in memory within a byte budget; large ones never loaded."""

from __future__ import annotations

from pathlib import Path

from mirror.serving.downloads import HotCrates


def _file(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(bytes([len(name)]) * size)
    return path


def test_small_crates_are_kept_and_large_ones_are_not(tmp_path: Path) -> None:
    hot = HotCrates(budget=1000, max_file=300)
    assert hot.load("a", _file(tmp_path, "a", 200)) == b"\x01" * 200
    assert hot.get("a") == b"\x01" * 200
    assert hot.load("big", _file(tmp_path, "big", 301)) is None
    assert hot.get("big") is None


def test_least_recently_used_is_evicted_past_the_budget(tmp_path: Path) -> None:
    hot = HotCrates(budget=500, max_file=300)
    hot.load("a", _file(tmp_path, "a", 200))
    hot.load("b", _file(tmp_path, "b", 200))
    assert hot.get("a") is not None  # now "b" is the least recently used
    hot.load("c", _file(tmp_path, "c", 200))
    assert hot.get("b") is None
    assert hot.get("a") is not None and hot.get("c") is not None


def test_zero_budget_disables_and_missing_files_are_none(tmp_path: Path) -> None:
    assert HotCrates(budget=0, max_file=300).load("a", _file(tmp_path, "a", 10)) is None
    assert HotCrates(budget=100, max_file=300).load("x", tmp_path / "missing") is None
