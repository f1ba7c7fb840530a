"""`rules.risk` in the policy file: parsed, defaulted, and every mistake located."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from mirror.errors import ConfigError, Problem
from mirror.policy.decision import Mode
from mirror.policy.model import parse_policy
from mirror.policy.schema import RiskRule, ScanBeforeServing
from mirror.policy.signals import SIGNALS


def parse(text: str) -> RiskRule:
    return parse_policy(textwrap.dedent(text).encode(), Path("/etc/mirror/policy.yaml")).rules.risk


def problems(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        parse_policy(textwrap.dedent(text).encode(), Path("/etc/mirror/policy.yaml"))
    return info.value.problems


def test_every_setting() -> None:
    rule = parse(
        """\
        version: 2
        rules:
          risk:
            mode: block
            corpus: popular-crates.txt
            protect_top: 20000
            protect: [acme-billing]
            thresholds: {warn: 3, quarantine: 6.5, block: 9}
            new: 3d
            young: 14d
            old: 2w
            new_version: 24h
            scan: never
            weights: {typo: 4, established: -6}
            missing: {scan: 2}
        """
    )
    assert rule.mode is Mode.BLOCK
    assert rule.corpus == Path("/etc/mirror/popular-crates.txt")
    assert (rule.protect_top, rule.protect) == (20000, ("acme-billing",))
    assert (rule.thresholds.warn, rule.thresholds.quarantine, rule.thresholds.block) == (3, 6.5, 9)
    assert (rule.new, rule.young, rule.old) == (
        timedelta(days=3),
        timedelta(days=14),
        timedelta(weeks=2),
    )
    assert rule.new_version == timedelta(hours=24)
    assert rule.scan is ScanBeforeServing.NEVER
    assert rule.weights["typo"] == 4 and rule.weights["established"] == -6
    assert rule.weights["combo"] == SIGNALS["combo"].weight  # the rest keep their defaults
    assert rule.missing["scan"] == 2 and rule.missing["corpus"] == 0


def test_defaults() -> None:
    rule = parse("version: 2\nrules:\n  risk: {mode: warn}\n")
    default = RiskRule()
    assert rule.mode is Mode.WARN
    assert (rule.thresholds, rule.weights, rule.missing) == (
        default.thresholds,
        default.weights,
        default.missing,
    )


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ("weights: {typoo: 3}", "rules.risk.weights.typoo", "did you mean 'typo'"),
        ("weights: {typo: lots}", "rules.risk.weights.typo", "expected a number"),
        ("weights: {typo: .inf}", "rules.risk.weights.typo", "finite"),
        ("missing: {scans: 1}", "rules.risk.missing.scans", "did you mean 'scan'"),
        ("thresholds: {warn: 6, quarantine: 5}", "rules.risk.thresholds", "must grow"),
        ("thresholds: {block: -1}", "rules.risk.thresholds.block", ">= 0"),
        ("thresholds: {maybe: 3}", "rules.risk.thresholds.maybe", "unknown threshold"),
        ("new: 60d", "rules.risk", "ages must grow"),
        ("young: soon", "rules.risk.young", "not a duration"),
        ("scan: always", "rules.risk.scan", "not one of new, never"),
        ("protect: [Bad Name]", "rules.risk.protect[0]", "crate names"),
        ("protect_top: -5", "rules.risk.protect_top", "at least 0"),
    ],
)
def test_mistakes_are_located(body: str, field: str, words: str) -> None:
    found = problems(f"version: 2\nrules:\n  risk:\n    mode: block\n    {body}\n")
    assert any(p.field == field and words in p.message for p in found), found
    assert all(p.line is not None for p in found)


def test_version_1_policies_get_a_migration_hint() -> None:
    found = problems("version: 1\nrules:\n  typosquat: {mode: block}\n")
    assert any(p.field == "version" and "rules.risk" in p.message for p in found)
    assert any("did you mean 'risk'" in p.message for p in found)
