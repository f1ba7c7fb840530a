"""`crate-mirror token add|list|revoke`: the token is shown once and stored only hashed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mirror.sources.tokens import TokenStore
from tests import REPO


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mirror", "token", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


def test_cli_add_list_revoke(tmp_path: Path) -> None:
    """The token is printed once on stdout and never again (not by list, not in the file)."""
    file = str(tmp_path / "t.json")
    added = _cli("add", "ci", "--file", file)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert TokenStore(Path(file)).authenticate(token) is not None
    listed = _cli("list", "--file", file)
    assert listed.returncode == 0 and "ci" in listed.stdout
    assert token not in listed.stdout + listed.stderr
    assert _cli("revoke", "ci", "--file", file).returncode == 0
    assert TokenStore(Path(file)).authenticate(token) is None
    assert _cli("revoke", "ci", "--file", file).returncode == 1
    assert _cli("--help").returncode == 0
