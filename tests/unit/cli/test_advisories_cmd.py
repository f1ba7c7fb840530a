"""`crate-mirror advisories update`: from a policy's source into its db, and what it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirror.cli import main
from mirror.policy.schema import SCHEMA_VERSION
from mirror.sources.policy_files import PolicyFiles
from tests.fixtures.advisory_repo import advisory_remote, commit, git


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return advisory_remote(tmp_path / "remote")


def _policy(tmp_path: Path, source: Path) -> Path:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: {SCHEMA_VERSION}\nrules:\n  advisories:\n    mode: block\n    db: advisory-db\n"
        f"    source: {source}\n"
    )
    return policy


def test_update_fetches_what_the_policy_needs_to_start(
    remote: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = _policy(tmp_path, remote)
    with pytest.raises(Exception, match="advisories update"):
        PolicyFiles(policy).validate()  # what `serve` checks before it starts
    assert main(["advisories", "update", "--policy", str(policy)]) == 0
    out, err = capsys.readouterr()
    assert f"updated {tmp_path / 'advisory-db'}: 2 advisories for 2 crates" in out
    assert f"fetching advisories from {remote}" in err
    assert "Cloning into" in err  # git's progress, relayed
    PolicyFiles(policy).validate()  # now the server starts


def test_a_failed_update_says_the_old_copy_is_kept(
    remote: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = _policy(tmp_path, remote)
    assert main(["advisories", "update", "--policy", str(policy), "--no-progress"]) == 0
    git(remote, "rm", "-q", "-r", "crates")
    (remote / "README.md").write_text("gone\n")
    commit(remote, "emptied")
    capsys.readouterr()
    assert main(["advisories", "update", "--policy", str(policy), "--no-progress"]) == 1
    _, err = capsys.readouterr()
    assert "is not a usable advisory database" in err
    assert f"({tmp_path / 'advisory-db'} unchanged)" in err
    assert "Cloning into" not in err
    PolicyFiles(policy).validate()  # the old copy still serves


def test_without_a_database_path_it_says_what_to_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["advisories", "update"]) == 2
    assert "give --db DIR, or --policy FILE" in capsys.readouterr().err
