"""Reading a RustSec advisory-db checkout: the format, withdrawn advisories, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirror.errors import ConfigError
from mirror.policy.advisories import Advisory, parse_advisory
from mirror.policy.semver import Version, VersionReq
from mirror.sources.advisories import load_advisories
from tests.fixtures.advisory_repo import write_advisory


def test_reads_the_advisory_db_format(tmp_path: Path) -> None:
    """Front matter in a ```toml fence: id, package, patched/unaffected ranges, url."""
    write_advisory(
        tmp_path,
        "openssl",
        "RUSTSEC-2023-0044",
        patched=[">= 0.10.55"],
        unaffected=["< 0.10.0"],
        extra='title = "set_host over-read"\naliases = ["CVE-2023-1"]',
    )
    db = load_advisories(tmp_path)
    (advisory,) = db.for_crate("openssl")
    assert advisory.id == "RUSTSEC-2023-0044" and advisory.package == "openssl"
    assert advisory.patched == (VersionReq.parse(">=0.10.55"),)
    assert advisory.unaffected == (VersionReq.parse("<0.10.0"),)
    assert advisory.title == "set_host over-read" and advisory.aliases == ("CVE-2023-1",)
    assert advisory.url == "https://example.invalid/issue"
    assert advisory.informational is None
    assert len(db) == 1 and db.for_crate("serde") == []


def test_crate_lookup_is_canonical(tmp_path: Path) -> None:
    """`Foo-Bar` and `foo_bar` find the same advisories."""
    write_advisory(tmp_path, "foo_bar", "RUSTSEC-2024-0001")
    db = load_advisories(tmp_path)
    assert [a.id for a in db.for_crate("Foo-Bar")] == ["RUSTSEC-2024-0001"]


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("0.9.9", False),  # unaffected
        ("0.10.0", True),
        ("0.10.54", True),
        ("0.10.55-rc.1", True),  # a pre-release of the fix is before the fix
        ("0.10.55", False),  # patched
        ("0.11.0-alpha", False),
        ("1.0.0", False),
    ],
)
def test_affected_versions(version: str, affected: bool) -> None:
    """Affected = covered by neither `patched` nor `unaffected`, by version ordering."""
    advisory = Advisory(
        "RUSTSEC-2023-0044",
        "openssl",
        patched=(VersionReq.parse(">= 0.10.55"),),
        unaffected=(VersionReq.parse("< 0.10.0"),),
    )
    assert advisory.affects(Version.parse(version)) is affected


def test_no_patched_versions_means_all_affected() -> None:
    """An advisory without a fix (e.g. unmaintained crates) affects every version."""
    advisory = Advisory("RUSTSEC-2020-0071", "x")
    assert advisory.affects(Version.parse("0.0.1")) and advisory.affects(Version.parse("9.9.9"))


def test_multiple_patched_ranges(tmp_path: Path) -> None:
    """Backported fixes: each patched range is independent."""
    write_advisory(tmp_path, "tokio", "RUSTSEC-2023-0001", patched=["~1.18.4", ">= 1.20.3"])
    (advisory,) = load_advisories(tmp_path).for_crate("tokio")
    affects = {v: advisory.affects(Version.parse(v)) for v in ("1.18.3", "1.18.4", "1.19.0")}
    assert affects == {"1.18.3": True, "1.18.4": False, "1.19.0": True}
    assert not advisory.affects(Version.parse("1.20.3"))


def test_withdrawn_advisories_are_skipped(tmp_path: Path) -> None:
    """An advisory filed in error (`withdrawn = date`) never hides anything."""
    write_advisory(tmp_path, "foo", "RUSTSEC-2024-0002", extra='withdrawn = "2024-02-01"')
    write_advisory(tmp_path, "foo", "RUSTSEC-2024-0003")
    db = load_advisories(tmp_path)
    assert [a.id for a in db.for_crate("foo")] == ["RUSTSEC-2024-0003"]
    assert db.withdrawn == 1


def test_informational_kind_is_kept(tmp_path: Path) -> None:
    """`informational = "unmaintained"` is recorded so the policy can choose to act on it."""
    write_advisory(tmp_path, "foo", "RUSTSEC-2024-0004", extra='informational = "unmaintained"')
    (advisory,) = load_advisories(tmp_path).for_crate("foo")
    assert advisory.informational == "unmaintained"


def test_old_toml_format(tmp_path: Path) -> None:
    """The older all-TOML files with `patched_versions` are read too."""
    path = tmp_path / "crates" / "old" / "RUSTSEC-2018-0001.toml"
    path.parent.mkdir(parents=True)
    path.write_text(
        '[advisory]\nid = "RUSTSEC-2018-0001"\npackage = "old"\npatched_versions = [">= 1.0.1"]\n'
    )
    (advisory,) = load_advisories(tmp_path).for_crate("old")
    assert advisory.patched == (VersionReq.parse(">=1.0.1"),)


def test_not_a_checkout(tmp_path: Path) -> None:
    """A directory without crates/ is reported, not silently treated as empty."""
    with pytest.raises(ConfigError, match="not an advisory-db checkout"):
        load_advisories(tmp_path)


@pytest.mark.parametrize(
    ("content", "field", "words"),
    [
        ("# no front matter\n", "", "no ```toml front matter"),
        ("```toml\n[advisory\n```\n", "", "invalid TOML"),
        ("```toml\n[versions]\npatched = []\n```\n", "advisory", "missing [advisory]"),
        ('```toml\n[advisory]\npackage = "x"\n```\n', "advisory.id", "missing"),
        ('```toml\n[advisory]\nid = "CVE-1"\npackage = "x"\n```\n', "advisory.id", "RUSTSEC"),
        (
            '```toml\n[advisory]\nid = "RUSTSEC-2024-0001"\npackage = "x"\n'
            '[versions]\npatched = [">>1"]\n```\n',
            "versions.patched[0]",
            "not a cargo version requirement",
        ),
        (
            '```toml\n[advisory]\nid = "RUSTSEC-2024-0001"\npackage = "x"\n'
            '[versions]\npatched = ">= 1"\n```\n',
            "versions.patched",
            "must be a list",
        ),
    ],
)
def test_malformed_files_are_problems(tmp_path: Path, content: str, field: str, words: str) -> None:
    """A bad file is a located ConfigError problem naming the file, not a crash."""
    path = tmp_path / "crates" / "x" / "RUSTSEC-2024-0001.md"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    write_advisory(tmp_path, "fine", "RUSTSEC-2024-0009")
    with pytest.raises(ConfigError) as info:
        load_advisories(tmp_path)
    (problem,) = info.value.problems
    assert problem.file == str(path) and problem.field == field
    assert words in problem.message


def test_toml_error_line_points_into_the_markdown_file() -> None:
    """Line numbers of TOML errors count the fence line, so they match the .md file."""
    with pytest.raises(ValueError) as info:
        parse_advisory(b'```toml\n[advisory]\nid = \npackage = "x"\n```\n')
    assert getattr(info.value, "line", None) == 3
