"""Every benchmark command starts and explains itself (`--help`): a bench module that no
longer imports (a type moved, a module renamed) is found here, not by the next person who
needs the numbers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests import REPO

COMMANDS = sorted(
    path.stem
    for path in (REPO / "bench").glob("*.py")
    if 'if __name__ == "__main__"' in path.read_text()
)


def test_the_commands_are_found() -> None:
    assert {"run", "detection", "names_bench", "scan_bench", "replicas"} <= set(COMMANDS)


@pytest.mark.parametrize("module", COMMANDS)
def test_each_command_has_help(module: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout
