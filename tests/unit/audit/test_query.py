"""Reading the log back: filters, --since parsing, tables, and the audit CLI commands."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mirror.audit import AuditEvent, AuditLog, EventFilter, parse_since, read_events, select
from mirror.audit.query import event_rows, format_table
from mirror.cli import audit_cmd

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def event(action: str, crate: str, rule: str, hours_ago: float) -> dict[str, Any]:
    stamp = (NOW - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"time": stamp, "action": action, "crate": crate, "rule": rule, "reason": "r"}


EVENTS = [
    event("allow", "serde", "default", 30),
    event("block", "serde_", "typosquat", 5),
    event("warn", "Serde-Json", "age", 1.5),
    event("block", "rand", "deny", 0.5),
    event("allow", "serde_json", "default", 0.1),
]


def test_parse_since_durations_and_iso_times() -> None:
    """Relative durations count back from now; ISO times without a zone are UTC."""
    assert parse_since("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_since("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since("2026-11-25T14:00:00Z") == datetime(2026, 11, 25, 14, tzinfo=UTC)
    assert parse_since("2026-11-25T14:00") == datetime(2026, 11, 25, 14, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a duration"):
        parse_since("yesterday")


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        (EventFilter(action="block"), ["serde_", "rand"]),
        (EventFilter(rule="default"), ["serde", "serde_json"]),
        (EventFilter(crate="serde-json"), ["Serde-Json", "serde_json"]),
        (EventFilter(since=NOW - timedelta(hours=2)), ["Serde-Json", "rand", "serde_json"]),
        (EventFilter(action="block", since=NOW - timedelta(hours=2)), ["rand"]),
        (EventFilter(action="approve"), []),
    ],
)
def test_filters_select_the_right_events(wanted: EventFilter, expected: list[str]) -> None:
    """Each filter keeps exactly the events it names, in chain order."""
    assert [e["crate"] for e in select(EVENTS, wanted)] == expected


def test_limit_keeps_the_most_recent() -> None:
    """--limit N shows the newest N matches, still oldest first."""
    assert [e["crate"] for e in select(EVENTS, EventFilter(), limit=2)] == ["rand", "serde_json"]


def test_table_is_aligned_and_escapes_control_characters() -> None:
    """Columns line up, and a crafted name cannot inject terminal escape sequences."""
    rows = event_rows([{**EVENTS[1], "version": "1.0.0"}, {**EVENTS[3], "crate": "x\x1b[2Jy"}])
    text = format_table(rows)
    assert "\x1b" not in text and "x\\x1b[2Jy" in text
    lines = text.splitlines()
    assert lines[0].split() == ["TIME", "ACTION", "RULE", "CRATE", "CLIENT", "REASON"]
    starts = {line.index("typosquat" if "typosquat" in line else "deny") for line in lines[1:]}
    assert len(starts) == 1 and lines[0].index("RULE") in starts
    assert "serde_@1.0.0" in lines[1]


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="crate-mirror")
    audit_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def audit_dir(tmp_path: Path) -> Path:
    """A log with allows, a block and near-name events."""
    log = AuditLog(tmp_path / "audit", fsync=False)
    near = {"near_name": {"protected": "serde", "check": "levenshtein", "distance": 1}}
    log.record(AuditEvent("allow", "default", "ok", crate="serde", version="1.0.0", client="c1"))
    log.record(AuditEvent("block", "typosquat", "near serde", crate="serd", details=near))
    log.record(AuditEvent("allow", "allow-list", "allowed", crate="sered", details=near))
    log.close()
    return tmp_path / "audit"


def test_cli_query_json_and_table(audit_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`audit query --action block --json` prints the block; the table names the crate."""
    assert run_cli(["audit", "query", "--dir", str(audit_dir), "--action", "block", "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["crate"] == "serd"
    assert run_cli(["audit", "query", "--dir", str(audit_dir), "--since", "1h"]) == 0
    out = capsys.readouterr().out
    assert "serde@1.0.0" in out and "c1" in out and len(out.splitlines()) == 4


def test_cli_verify_ok_then_broken(audit_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """verify exits 0 with the last hash, and 1 naming the first broken link."""
    assert run_cli(["audit", "verify", "--dir", str(audit_dir)]) == 0
    last_hash = list(read_events(audit_dir))[-1]["hash"]
    assert f"OK: 3 events in 1 files, last seq 3, last hash {last_hash}" in capsys.readouterr().out
    path = audit_dir / "audit-000001.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"block"', b'"allow"'))
    assert run_cli(["audit", "verify", "--dir", str(audit_dir)]) == 1
    assert "BROKEN: audit-000001.jsonl:2 (seq 2): edited" in capsys.readouterr().out


def test_cli_near_names_print_and_export(
    audit_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """near-names prints the feed, and --out writes it as JSON lines."""
    assert run_cli(["audit", "near-names", "--dir", str(audit_dir)]) == 0
    out = capsys.readouterr().out
    assert "serd" in out and "sered" in out and "levenshtein" in out
    export = tmp_path / "feed.jsonl"
    assert run_cli(["audit", "near-names", "--dir", str(audit_dir), "--out", str(export)]) == 0
    entries = [json.loads(line) for line in export.read_text().splitlines()]
    assert [(e["crate"], e["action"]) for e in entries] == [("serd", "block"), ("sered", "allow")]


def test_cli_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing directory or an unreadable --since is an error (exit 2), not an empty result."""
    assert run_cli(["audit", "verify", "--dir", str(tmp_path / "nope")]) == 2
    assert run_cli(["audit", "query", "--dir", str(tmp_path), "--since", "soon"]) == 2
    assert "--since" in capsys.readouterr().err


def test_cli_finds_the_directory_from_settings(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --dir, the audit directory comes from the mirror's settings (audit_dir)."""
    monkeypatch.setenv("CRATE_MIRROR_AUDIT_DIR", str(audit_dir))
    assert run_cli(["audit", "verify"]) == 0
    assert "OK: 3 events" in capsys.readouterr().out


def test_since_skips_files_that_end_before_it(tmp_path: Path) -> None:
    """Files whose last event is older than --since are not read; newer ones are."""
    log = AuditLog(tmp_path, max_file_bytes=1, fsync=False)  # one event per file
    log.record(AuditEvent("allow", "default", "old"))
    log.record(AuditEvent("allow", "default", "new"))
    log.close()
    old_file = tmp_path / "audit-000001.jsonl"
    text = old_file.read_text()
    old_file.write_text(re.sub(r'"time":"[0-9-]{10}', '"time":"2001-01-01', text))
    assert json.loads(old_file.read_text())["time"].startswith("2001-01-01")
    since = datetime.now(UTC) - timedelta(hours=1)
    assert [e["reason"] for e in read_events(tmp_path, since)] == ["new"]
    assert [e["reason"] for e in read_events(tmp_path)] == ["old", "new"]


def test_cli_bad_numbers_outputs_and_unreadable_chains_are_errors(
    audit_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--limit -1` said "no matching events" (exit 0); `--out DIR` and a chain file that is
    a directory were tracebacks."""
    base = ["audit", "query", "--dir", str(audit_dir)]
    for limit in ("0", "-1"):
        with pytest.raises(SystemExit) as info:
            run_cli([*base, "--limit", limit])
        assert info.value.code == 2 and "must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        run_cli(["audit", "near-names", "--dir", str(audit_dir), "--out", str(tmp_path)])
    assert info.value.code == 2 and "is a directory" in capsys.readouterr().err
    (first,) = sorted(audit_dir.glob("audit-*.jsonl"))[:1]
    first.unlink()
    first.mkdir()
    assert run_cli(["audit", "verify", "--dir", str(audit_dir)]) == 2
    assert f"cannot read {first}" in capsys.readouterr().err


def test_cli_verify_refuses_an_anchor_that_is_not_a_hash(
    audit_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--anchor banana` printed OK for the chain and then "the anchor is not in it"."""
    with pytest.raises(SystemExit) as info:
        run_cli(["audit", "verify", "--dir", str(audit_dir), "--anchor", "banana"])
    assert info.value.code == 2 and "expected a sha256" in capsys.readouterr().err
