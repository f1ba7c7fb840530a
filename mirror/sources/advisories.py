"""Reading a local checkout of the RustSec advisory database into an `AdvisoryDb`.

Layout: `crates/<crate>/RUSTSEC-YYYY-NNNN.md` (or the older `.toml`). Parsing each file is
pure (`mirror.policy.advisories`); this module finds the files and reports every bad one.
"""

from __future__ import annotations

from pathlib import Path

from mirror.errors import ConfigError, Problem
from mirror.index import canonical_name
from mirror.policy.advisories import Advisory, AdvisoryDb, AdvisoryError, parse_advisory


def load_advisories(db: Path) -> AdvisoryDb:
    """Load every crate advisory under `db/crates/`; raise ConfigError naming each bad file."""
    crates_dir = db / "crates"
    if not crates_dir.is_dir():
        raise ConfigError(
            [Problem(str(db), None, "advisories.db", "not an advisory-db checkout (no crates/)")]
        )
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
