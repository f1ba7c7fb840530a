"""The RustSec advisory database: reading a local copy into an `AdvisoryDb`, and updating it.

Layout: `crates/<crate>/RUSTSEC-YYYY-NNNN.md` (or the older `.toml`). Parsing each file is
pure (`mirror.policy.advisories`); this module finds the files and reports every bad one.

`update_advisory_db` clones the configured source next to the database, checks the new copy
the way the server will read it, and only then puts it in place of the old one: a failed or
hostile fetch (no advisories, a malformed file) leaves the database the server uses as it was.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from mirror.errors import ConfigError, MirrorError, Problem
from mirror.files import exclusive_lock, fsync_directory
from mirror.index import canonical_name
from mirror.policy.advisories import Advisory, AdvisoryDb, AdvisoryError, parse_advisory
from mirror.upstream.git import clone


def load_advisories(db: Path) -> AdvisoryDb:
    """Load every crate advisory under `db/crates/`; raise ConfigError naming each bad file."""
    crates_dir = db / "crates"
    if not crates_dir.is_dir():
        what = "is not an advisory-db checkout (no crates/)" if db.exists() else "does not exist"
        raise ConfigError([Problem(str(db), None, "advisories.db", what)])
    problems: list[Problem] = []
    found: dict[str, list[Advisory]] = {}
    withdrawn = 0
    files = sorted([*crates_dir.glob("*/RUSTSEC-*.md"), *crates_dir.glob("*/RUSTSEC-*.toml")])
    for path in files:
        try:
            advisory = parse_advisory(path.read_bytes(), toml_only=path.suffix == ".toml")
        except AdvisoryError as e:
            problems.append(Problem(str(path), e.line, e.field, str(e)))
            continue
        except OSError as e:
            problems.append(Problem(str(path), None, "", f"cannot read: {e.strerror}"))
            continue
        if advisory is None:
            withdrawn += 1
            continue
        found.setdefault(canonical_name(advisory.package), []).append(advisory)
    if problems:
        raise ConfigError(problems)
    return AdvisoryDb(db, {k: tuple(v) for k, v in found.items()}, withdrawn)


class AdvisoryUpdateError(MirrorError):
    """The new copy could not be fetched or is not a usable database; the old one is kept."""


def update_advisory_db(
    source: str, db: Path, *, progress: Callable[[str], None] | None = None
) -> AdvisoryDb:
    """Clone `source` and, once the clone loads cleanly, put it where `db` was.

    One update at a time per database (a lock file next to it); leftovers of an update that
    was killed are removed first. Raises AdvisoryUpdateError (nothing changed) or, for the
    clone itself, UpstreamUnavailable.
    """
    db = db.absolute()
    db.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(db.parent / f".{db.name}.lock"):
        for leftover in db.parent.glob(f".{db.name}.*-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        stage = db.parent / f".{db.name}.new-{os.getpid()}"
        try:
            clone(source, stage, progress=progress)
            fresh = _usable(stage, source)
            _swap(stage, db)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return dataclasses.replace(fresh, root=db)


def _usable(stage: Path, source: str) -> AdvisoryDb:
    """The new copy, loaded exactly as the server loads it; every problem is a refusal."""
    try:
        fresh = load_advisories(stage)
    except ConfigError as e:
        # Name files as they are in the source: the staging copy is deleted right after.
        where = [
            dataclasses.replace(p, file=os.path.relpath(p.file, stage)) for p in e.problems[:5]
        ]
        raise AdvisoryUpdateError(
            f"{source} is not a usable advisory database: {'; '.join(map(str, where))}"
        ) from e
    if len(fresh) == 0:
        # An emptied repository would silently switch the advisories rule off.
        raise AdvisoryUpdateError(f"{source} holds no advisories")
    return fresh


def _swap(stage: Path, db: Path) -> None:
    """Put `stage` where `db` is: two renames; the old copy is deleted afterwards."""
    old = db.parent / f".{db.name}.old-{os.getpid()}"
    if db.exists():
        os.replace(db, old)
    os.replace(stage, db)
    fsync_directory(db.parent)
    shutil.rmtree(old, ignore_errors=True)
