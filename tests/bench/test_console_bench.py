"""The console benchmark's harness on a small log: the chain it writes verifies, the index is
built from it, and every page it times answers 200."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.console_bench import PAGES, generate, main
from mirror.audit import verify_chain


def test_generated_chain_verifies(tmp_path: Path) -> None:
    """Written with the real hashing: `audit verify` accepts it."""
    generate(tmp_path, 2000)
    result = verify_chain(tmp_path)
    assert result.ok and result.events == 2000


def test_every_page_is_timed_and_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--events", "3000", "--repeat", "1", "--dir", str(tmp_path / "audit")]) == 0
    out = capsys.readouterr().out
    assert "3,000 events; 3,000 verified and indexed" in out and "chain intact" in out
    for name, _ in PAGES:
        assert name in out
    assert "a review" in out and "slowest page" in out
