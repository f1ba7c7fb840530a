"""`update_advisory_db`: clone, check, then replace; the old copy survives every failure.

The "remote" is a local git repository (no network), changed between updates the way the
RustSec repository changes: new advisories, and (for the attacks) broken or hostile ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirror.errors import ConfigError, UpstreamUnavailable
from mirror.policy.schema import SCHEMA_VERSION
from mirror.sources.advisories import AdvisoryUpdateError, load_advisories, update_advisory_db
from mirror.sources.policy_files import PolicyFiles
from tests.fixtures.advisory_repo import advisory_remote, commit, git, write_advisory


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return advisory_remote(tmp_path / "remote")


def snapshot(db: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(db)): p.read_bytes()
        for p in sorted(db.rglob("*"))
        if p.is_file() and ".git" not in p.parts
    }


def test_first_update_clones_the_database(remote: Path, tmp_path: Path) -> None:
    db = tmp_path / "data" / "advisory-db"
    fresh = update_advisory_db(str(remote), db)
    assert len(fresh) == 2 and fresh.root == db.absolute()
    assert {a.id for a in load_advisories(db).for_crate("openssl")} == {"RUSTSEC-2023-0044"}
    assert sorted(p.name for p in db.parent.iterdir()) == [".advisory-db.lock", "advisory-db"]


def test_a_later_update_brings_new_advisories_and_leaves_nothing_behind(
    remote: Path, tmp_path: Path
) -> None:
    db = tmp_path / "advisory-db"
    update_advisory_db(str(remote), db)
    write_advisory(remote, "smallvec", "RUSTSEC-2021-0003", patched=[">= 1.6.1"])
    commit(remote, "a third")
    progress: list[str] = []
    fresh = update_advisory_db(str(remote), db, progress=progress.append)
    assert len(fresh) == 3
    assert load_advisories(db).for_crate("smallvec")
    assert "Cloning into" in "".join(progress)  # git's own progress reached the caller
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".advisory-db")) == [
        ".advisory-db.lock"
    ]


@pytest.mark.parametrize(
    "damage",
    ["malformed advisory", "no advisories left", "symlink out of the database"],
)
def test_a_bad_new_copy_is_refused_and_the_old_one_kept(
    remote: Path, tmp_path: Path, damage: str
) -> None:
    db = tmp_path / "advisory-db"
    update_advisory_db(str(remote), db)
    before = snapshot(db)
    secret = tmp_path / "outside.md"  # a file of the host that parses as an advisory
    write_advisory(secret.parent / "elsewhere", "stolen", "RUSTSEC-2099-0001").rename(secret)
    if damage == "malformed advisory":
        bad = remote / "crates" / "openssl" / "RUSTSEC-2023-0099.md"
        bad.write_text("```toml\n[advisory]\nid = 'RUSTSEC-2023-0099'\n```\n")  # no package
    elif damage == "no advisories left":
        git(remote, "rm", "-q", "-r", "crates")
        (remote / "README.md").write_text("moved\n")
    else:
        # A hostile source points an advisory at a file of the mirror's host.
        os.symlink(secret, remote / "crates" / "time" / "RUSTSEC-2020-0072.md")
    commit(remote, damage)
    with pytest.raises(AdvisoryUpdateError) as caught:
        update_advisory_db(str(remote), db)
    assert "stolen" not in str(caught.value)  # the outside file was never read
    assert ".new-" not in str(caught.value)  # problems are named as in the source
    assert snapshot(db) == before
    assert not [p for p in tmp_path.iterdir() if ".new-" in p.name or ".old-" in p.name]


def test_a_failed_clone_keeps_the_old_copy(remote: Path, tmp_path: Path) -> None:
    db = tmp_path / "advisory-db"
    update_advisory_db(str(remote), db)
    before = snapshot(db)
    with pytest.raises(UpstreamUnavailable, match=r"git clone of .* failed"):
        update_advisory_db(str(tmp_path / "no-such-repo"), db)
    assert snapshot(db) == before


def test_leftovers_of_a_killed_update_are_removed(remote: Path, tmp_path: Path) -> None:
    db = tmp_path / "advisory-db"
    (tmp_path / ".advisory-db.new-99999" / "crates").mkdir(parents=True)
    (tmp_path / ".advisory-db.old-99999").mkdir()
    update_advisory_db(str(remote), db)
    assert not [p for p in tmp_path.iterdir() if "-99999" in p.name]


def test_a_missing_database_says_how_to_fetch_it(tmp_path: Path) -> None:
    """`serve --policy policies/strict.yaml` used to stop at "not an advisory-db checkout
    (no crates/)" with no hint."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: {SCHEMA_VERSION}\nrules:\n  advisories:\n    mode: block\n    db: advisory-db\n"
        "    source: https://git.example.invalid/advisory-db.git\n"
    )
    with pytest.raises(ConfigError) as caught:
        PolicyFiles(policy).validate()
    message = str(caught.value)
    assert f"does not exist: {tmp_path / 'advisory-db'}" in message
    assert f"crate-mirror advisories update --policy {policy}" in message
    assert "https://git.example.invalid/advisory-db.git" in message
    assert "rules.advisories.mode: off" in message
    (tmp_path / "advisory-db").mkdir()  # an empty directory: not a checkout, same advice
    with pytest.raises(ConfigError, match="advisories update"):
        PolicyFiles(policy).load()


def test_a_running_policy_notices_the_new_copy(remote: Path, tmp_path: Path) -> None:
    """The server's reloader polls `changed()`: the swapped-in directory counts as a change."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: {SCHEMA_VERSION}\nrules:\n"
        f"  advisories: {{mode: block, db: db, source: {remote}}}\n"
    )
    update_advisory_db(str(remote), tmp_path / "db")
    files = PolicyFiles(policy)
    engine = files.load()
    assert engine.advisories is not None and len(engine.advisories) == 2
    assert not files.changed()
    write_advisory(remote, "smallvec", "RUSTSEC-2021-0003", patched=[">= 1.6.1"])
    commit(remote, "a third")
    update_advisory_db(str(remote), tmp_path / "db")
    assert files.changed()
    engine = files.load()
    assert engine.advisories is not None and len(engine.advisories) == 3
