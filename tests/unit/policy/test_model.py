"""The policy file: typed parsing, defaults, and every kind of error located by line and field."""

from __future__ import annotations

import argparse
import hashlib
import io
import textwrap
from datetime import date, timedelta
from pathlib import Path

import pytest

from mirror.cli import policy_cmd
from mirror.errors import ConfigError, Problem
from mirror.policy.decision import Mode
from mirror.policy.model import (
    FirstSeen,
    Informational,
    MissingPubtime,
    Policy,
    parse_duration,
)
from mirror.policy.semver import VersionReq
from mirror.sources.policy_files import PolicyFiles, load_policy
from tests import REPO

POLICIES = REPO / "policies"

FULL = """\
version: 2
rules:
  risk:        {mode: block, protect_top: 5000, corpus: popular-crates.txt, protect: [acme-core]}
  deny:        {mode: block}
  yanked:      {mode: off}
  min_age:     {mode: warn, age: 72h, missing_pubtime: hide}
  advisories:  {mode: block, db: /var/lib/advisory-db, ignore: [RUSTSEC-2020-0071],
                informational: [unsound]}
  capabilities: {mode: block, lock: capabilities.lock.yaml, first_seen: require-approval}
allow:
  - crate: rustdecimal
    reason: "internal fork, reviewed in SEC-123"
    expires: 2027-06-30
deny:
  - crate: "openssl@<0.10.55"
    reason: "CVE-2023-..."
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _load(tmp_path: Path, text: str) -> Policy:
    return load_policy(_write(tmp_path, text))


def _problems(tmp_path: Path, text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert info.value.problems, "ConfigError must carry problems"
    return info.value.problems


def _located(problems: list[Problem]) -> set[tuple[int | None, str]]:
    return {(p.line, p.field) for p in problems}


def test_full_policy_parses_into_typed_rules(tmp_path: Path) -> None:
    """The documented schema parses: modes, settings, paths, lists, digest."""
    path = _write(tmp_path, FULL)
    policy = load_policy(path)
    rules = policy.rules
    assert rules.risk.mode is Mode.BLOCK and rules.risk.protect_top == 5000
    assert rules.risk.corpus == tmp_path.resolve() / "popular-crates.txt"
    assert rules.risk.protect == ("acme-core",)
    assert rules.yanked.mode is Mode.OFF  # `off` is a YAML 1.1 boolean; still read as a mode
    assert rules.min_age.mode is Mode.WARN
    assert rules.min_age.age == timedelta(hours=72)
    assert rules.min_age.missing_pubtime is MissingPubtime.HIDE
    assert rules.advisories.db == Path("/var/lib/advisory-db")
    assert rules.advisories.ignore == frozenset({"RUSTSEC-2020-0071"})
    assert rules.advisories.informational == frozenset({Informational.UNSOUND})
    assert rules.capabilities.lock == tmp_path.resolve() / "capabilities.lock.yaml"
    assert rules.capabilities.first_seen is FirstSeen.REQUIRE_APPROVAL
    (allow,) = policy.allow
    assert allow.spec.name == "rustdecimal" and allow.spec.req is None
    assert allow.expires == date(2027, 6, 30) and allow.line == 11 and allow.field == "allow[0]"
    (deny,) = policy.deny
    assert deny.spec.name == "openssl" and deny.spec.req == VersionReq.parse("<0.10.55")
    assert policy.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert policy.path == path.resolve()


def test_omitted_rules_take_documented_defaults(tmp_path: Path) -> None:
    """Only `version` is required; deny applies, the automatic rules are off."""
    policy = _load(tmp_path, "version: 2\n")
    assert policy.rules.deny.mode is Mode.BLOCK
    for name in ("risk", "yanked", "min_age", "advisories", "capabilities"):
        assert getattr(policy.rules, name).mode is Mode.OFF
    assert policy.allow == () and policy.deny == ()


def test_digest_changes_with_bytes(tmp_path: Path) -> None:
    """A comment change is a new policy version for the audit log."""
    a = _load(tmp_path, "version: 2\n").digest
    b = _load(tmp_path, "version: 2  # changed\n").digest
    assert a != b


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("version: 2\nextra: 1\n", 2, "extra", "unknown key"),
        (
            "version: 2\nrules:\n  risks: {mode: block}\n",
            3,
            "rules.risks",
            "did you mean 'risk'",
        ),
        (
            "version: 2\nrules:\n  min_age: {mode: warn, ages: 3h}\n",
            3,
            "rules.min_age.ages",
            "unknown setting",
        ),
        (
            "version: 2\nrules:\n  min_age: {mode: sometimes}\n",
            3,
            "rules.min_age.mode",
            "block, warn, off",
        ),
        (
            "version: 2\nrules:\n  min_age:\n    mode: warn\n    age: 3 days\n",
            5,
            "rules.min_age.age",
            "not a duration",
        ),
        (
            "version: 2\nrules:\n  min_age: {mode: warn, age: 72}\n",
            3,
            "rules.min_age.age",
            "expected a duration",
        ),
        (
            "version: 2\nrules:\n  min_age: {mode: warn, missing_pubtime: maybe}\n",
            3,
            "rules.min_age.missing_pubtime",
            "allow, hide",
        ),
        ("version: 2\nrules:\n  yanked: {}\n", 3, "rules.yanked.mode", "missing"),
        ("version: 2\nrules:\n  yanked: block\n", 3, "rules.yanked", "expected a mapping"),
        (
            "version: 2\nrules:\n  yanked: {mode: warn}\n  yanked: {mode: off}\n",
            4,
            "rules.yanked",
            "duplicate key",
        ),
        (
            "version: 2\nrules:\n  risk: {mode: block, protect_top: many}\n",
            3,
            "rules.risk.protect_top",
            "expected an integer",
        ),
        (
            "version: 2\nrules:\n  risk: {mode: block, protect_top: -1}\n",
            3,
            "rules.risk.protect_top",
            "at least 0",
        ),
        (
            "version: 2\nrules:\n  risk: {mode: block, protect: [ok, 'bad name']}\n",
            3,
            "rules.risk.protect[1]",
            "crate names",
        ),
        (
            "version: 2\nrules:\n  risk: {mode: block, corpus: 5}\n",
            3,
            "rules.risk.corpus",
            "expected a string",
        ),
        (
            "version: 2\nrules:\n  advisories: {mode: block, ignore: [CVE-2020-1]}\n",
            3,
            "rules.advisories.ignore[0]",
            "RUSTSEC",
        ),
        (
            "version: 2\nrules:\n  advisories: {mode: block, ignore: RUSTSEC-2020-0071}\n",
            3,
            "rules.advisories.ignore",
            "expected a list",
        ),
        (
            "version: 2\nrules:\n  advisories: {mode: block, informational: [stale]}\n",
            3,
            "rules.advisories.informational[0]",
            "unmaintained",
        ),
        (
            "version: 2\nrules:\n  capabilities: {mode: block, first_seen: always}\n",
            3,
            "rules.capabilities.first_seen",
            "require-approval",
        ),
        ("version: 3\n", 1, "version", "unsupported"),
        ("version: one\n", 1, "version", "expected an integer"),
        ("rules: {}\n", 1, "version", "missing"),
        (
            "version: 2\nallow:\n  - crate: 'ser de'\n    reason: x\n",
            3,
            "allow[0].crate",
            "crate names",
        ),
        (
            "version: 2\ndeny:\n  - crate: 'openssl@>>1'\n    reason: x\n",
            3,
            "deny[0].crate",
            "bad version range",
        ),
        (
            "version: 2\ndeny:\n  - crate: 'openssl@'\n    reason: x\n",
            3,
            "deny[0].crate",
            "bad version range",
        ),
        ("version: 2\ndeny:\n  - crate: serde\n", 3, "deny[0].reason", "needs a reason"),
        (
            "version: 2\ndeny:\n  - crate: serde\n    reason: ''\n",
            3,
            "deny[0].reason",
            "needs a reason",
        ),
        ("version: 2\ndeny:\n  - reason: x\n", 3, "deny[0].crate", "missing"),
        (
            "version: 2\ndeny:\n  - crate: serde\n    reason: 5\n",
            4,
            "deny[0].reason",
            "expected a string",
        ),
        (
            "version: 2\nallow:\n  - crate: serde\n    reason: x\n    expires: soon\n",
            5,
            "allow[0].expires",
            "expected a date",
        ),
        (
            "version: 2\nallow:\n  - crate: serde\n    reason: x\n    expires: 2027-02-30\n",
            5,
            "allow[0].expires",
            "expected a date",
        ),
        (
            "version: 2\nallow:\n  - crate: serde\n    reason: x\n    until: 2027-01-01\n",
            5,
            "allow[0].until",
            "unknown field",
        ),
        (
            "version: 2\nallow:\n  - crate: a\n    reason: x\n  - crate: A\n    reason: y\n",
            5,
            "allow[1]",
            "duplicate of allow[0]",
        ),
        ("version: 2\nallow: {serde: ok}\n", 2, "allow", "expected a list"),
        ("version: 2\nallow:\n  - serde\n", 3, "allow[0]", "expected a mapping"),
        ("- 1\n", 1, "", "expected a mapping"),
    ],
)
def test_problem_is_located(tmp_path: Path, text: str, line: int, field: str, words: str) -> None:
    """Each kind of mistake is reported at its line and field path, in words that help."""
    problems = _problems(tmp_path, text)
    matching = [p for p in problems if p.line == line and p.field == field]
    assert matching, f"expected a problem at {line}:{field}, got {problems}"
    assert any(words in p.message for p in matching), matching
    assert all(p.file == str(tmp_path / "policy.yaml") for p in problems)


def test_all_problems_are_collected(tmp_path: Path) -> None:
    """Validation does not stop at the first mistake; problems come sorted by line."""
    problems = _problems(
        tmp_path,
        """\
        version: 2
        rules:
          yanked: {mode: maybe}
          min_age: {mode: warn, age: soon}
        deny:
          - crate: "x@nope"
            reason: r
        bogus: true
        """,
    )
    assert _located(problems) == {
        (3, "rules.yanked.mode"),
        (4, "rules.min_age.age"),
        (6, "deny[0].crate"),
        (8, "bogus"),
    }
    assert [p.line for p in problems] == sorted(p.line or 0 for p in problems)
    assert str(problems[0]).startswith(f"{tmp_path / 'policy.yaml'}:3: rules.yanked.mode: ")


@pytest.mark.parametrize(
    ("text", "line"),
    [("version: 2\nrules: [\n", 3), ("version: 2\n  bad indent: x\n", 2), ("a: b\n---\nc: d\n", 2)],
)
def test_yaml_syntax_errors_are_located(tmp_path: Path, text: str, line: int) -> None:
    """Broken YAML is one located problem, not a traceback."""
    (problem,) = _problems(tmp_path, text)
    assert problem.line == line and "invalid YAML" in problem.message


def test_unreadable_empty_and_binary_files(tmp_path: Path) -> None:
    """Missing, empty and non-UTF-8 files raise ConfigError with a message."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="empty"):
        _load(tmp_path, "")
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"version: 2\nx: \xff\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_policy(path)


def test_null_sections_are_empty(tmp_path: Path) -> None:
    """`rules:`, `allow:` and `deny:` left empty mean "nothing here", not a type error."""
    policy = _load(tmp_path, "version: 2\nrules:\nallow:\ndeny:\n")
    assert policy.allow == () and policy.deny == ()


def test_entries_keep_canonical_names_and_ranges(tmp_path: Path) -> None:
    """`Foo-Bar@1.2` keeps its spelling, compares canonically, and carries a caret range."""
    policy = _load(
        tmp_path,
        "version: 2\ndeny:\n  - crate: 'Foo-Bar@1.2'\n    reason: r\n    expires: '2030-01-01'\n",
    )
    (entry,) = policy.deny
    assert entry.spec.canonical == "foo_bar"
    assert entry.spec.names("foo_bar") and entry.spec.names("FOO-BAR")
    assert not entry.spec.names("foobar")
    assert str(entry.spec) == "Foo-Bar@^1.2"
    assert entry.expires == date(2030, 1, 1)
    assert entry.active(date(2030, 1, 1)) and not entry.active(date(2030, 1, 2))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("72h", timedelta(hours=72)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("90m", timedelta(minutes=90)),
        ("30s", timedelta(seconds=30)),
        ("0h", timedelta(0)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    """Durations are sums of numbers with units w, d, h, m, s."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "72", "h", "3 days", "1.5h", "-1h", "72h!"])
def test_bad_durations(text: str) -> None:
    """Anything else is refused with an example of the right form."""
    with pytest.raises(ValueError, match="72h"):
        parse_duration(text)


@pytest.mark.parametrize("name", ["default.yaml", "strict.yaml"])
def test_shipped_policies_validate(name: str) -> None:
    """Both policies shipped in policies/ load without problems and enable their rules."""
    policy = load_policy(POLICIES / name)
    assert policy.rules.deny.mode is Mode.BLOCK
    assert policy.rules.risk.mode is not Mode.OFF
    assert policy.rules.min_age.mode is not Mode.OFF


def test_strict_is_stricter_than_default() -> None:
    """strict.yaml blocks where default.yaml may only warn, and waits at least as long."""
    default = load_policy(POLICIES / "default.yaml").rules
    strict = load_policy(POLICIES / "strict.yaml").rules
    for name in ("risk", "yanked", "min_age", "advisories", "capabilities"):
        assert getattr(strict, name).mode is Mode.BLOCK, name
    assert strict.min_age.age >= default.min_age.age
    assert strict.min_age.missing_pubtime is MissingPubtime.HIDE


# -- `crate-mirror policy check` --------------------------------------------------------------


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="crate-mirror")
    policy_cmd.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_policy_check_prints_located_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid file: every problem as FILE:LINE: FIELD: MESSAGE, exit status 1."""
    path = _write(tmp_path, "version: 2\nrules:\n  min_age: {mode: warn, age: soon}\nfoo: 1\n")
    args = _cli(["policy", "check", str(path)])
    assert args.func(args) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}:3: rules.min_age.age: ")
    assert out[1].startswith(f"{path}:4: foo: unknown key")
    assert out[-1] == f"{path}: invalid (2 problems)"


def test_policy_check_valid_file_summary_and_warnings(tmp_path: Path) -> None:
    """A valid file exits 0, summarises rule modes and warns about expired entries."""
    path = _write(
        tmp_path,
        "version: 2\nrules:\n  risk: {mode: block, corpus: missing.txt}\n"
        "allow:\n  - crate: foo\n    reason: r\n    expires: 2020-01-01\n",
    )
    out = io.StringIO()
    assert policy_cmd.check_policy(path, date(2026, 1, 1), out=out) == 0
    text = out.getvalue()
    assert f"warning: {path.resolve()}:5: allow[0]: `foo` expired on 2020-01-01" in text
    assert "rules.risk.corpus" in text and "does not exist" in text
    assert "risk          block" in text and text.count("OK: ") == 1


def test_policy_check_loads_the_advisory_db(tmp_path: Path) -> None:
    """With advisories on, a malformed advisory file makes the check fail."""
    bad = tmp_path / "db" / "crates" / "x" / "RUSTSEC-2024-0001.md"
    bad.parent.mkdir(parents=True)
    bad.write_text("no front matter\n")
    path = _write(tmp_path, "version: 2\nrules:\n  advisories: {mode: block, db: db}\n")
    out = io.StringIO()
    assert policy_cmd.check_policy(path, out=out) == 1
    assert str(bad) in out.getvalue()
    bad.write_text('```toml\n[advisory]\nid = "RUSTSEC-2024-0001"\npackage = "x"\n```\n')
    assert policy_cmd.check_policy(path, out=io.StringIO()) == 0


def test_policy_check_reads_the_capability_lock_and_corpus_as_the_server_does(
    tmp_path: Path,
) -> None:
    """A lock that is invalid YAML passed `policy check`, and `serve` refused it."""
    (tmp_path / "c.yaml").write_text("version: 1\ncrates: {foo: [\n")
    path = _write(tmp_path, "version: 2\nrules:\n  capabilities: {mode: block, lock: c.yaml}\n")
    out = io.StringIO()
    assert policy_cmd.check_policy(path, out=out) == 1
    assert f"{tmp_path / 'c.yaml'}:" in out.getvalue() and "OK:" not in out.getvalue()
    (tmp_path / "c.yaml").write_text("version: 1\ncrates: {}\n")
    assert policy_cmd.check_policy(path, out=io.StringIO()) == 0
    (tmp_path / "corpus.txt").write_text("not a corpus\x00\n")
    path = _write(tmp_path, "version: 2\nrules:\n  risk: {mode: block, corpus: corpus.txt}\n")
    with pytest.raises(ConfigError):
        PolicyFiles(path).validate()  # what `serve` runs
    assert policy_cmd.check_policy(path, out=io.StringIO()) == 1


@pytest.mark.parametrize("name", ["default.yaml", "strict.yaml"])
def test_policy_check_accepts_shipped_policies(name: str) -> None:
    """`crate-mirror policy check` passes on both shipped policies."""
    assert policy_cmd.check_policy(POLICIES / name, quiet=True, out=io.StringIO()) == 0
