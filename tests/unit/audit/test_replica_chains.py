"""One chain per replica (a subdirectory named by its id); `audit verify` checks each,
`audit query` and `near-names` read them all together in time order."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mirror.audit import AuditEvent, AuditLog
from mirror.audit.files import chain_directories
from mirror.cli import main as run_cli
from mirror.config import load_settings
from mirror.errors import ConfigError


def _write(directory: Path, events: list[tuple[float, str]]) -> None:
    log = AuditLog(directory)
    for stamp, crate in events:
        log.record_at(stamp, AuditEvent("allow", "default", "ok", crate=crate, route="index"))
    log.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    now = time.time()
    _write(tmp_path / "audit" / "replica-a", [(now - 30, "a1"), (now - 10, "a2")])
    _write(tmp_path / "audit" / "replica-b", [(now - 20, "b1"), (now - 5, "b2")])
    return tmp_path / "audit"


def test_the_chains_are_found_by_replica(root: Path) -> None:
    assert [name for name, _ in chain_directories(root)] == ["replica-a", "replica-b"]


def test_verify_checks_every_chain_and_names_the_broken_one(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["audit", "verify", "--dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "[replica-a] OK: 2 events" in out and "[replica-b] OK: 2 events" in out
    chain = root / "replica-b" / "audit-000001.jsonl"
    chain.write_text(chain.read_text().replace('"b1"', '"bX"'))
    assert run_cli(["audit", "verify", "--dir", str(root)]) == 1
    out = capsys.readouterr().out
    assert "[replica-a] OK" in out and "[replica-b] BROKEN: audit-000001.jsonl:1" in out


def test_an_anchor_from_any_replica_is_found(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    last = json.loads((root / "replica-a" / "audit-000001.jsonl").read_text().splitlines()[-1])
    assert run_cli(["audit", "verify", "--dir", str(root), "--anchor", last["hash"]]) == 0
    assert run_cli(["audit", "verify", "--dir", str(root), "--anchor", "0" * 64]) == 1
    assert "in none of the chains" in capsys.readouterr().out


def test_query_reads_all_chains_in_time_order(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["audit", "query", "--dir", str(root), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["crate"], e["replica"]) for e in events] == [
        ("a1", "replica-a"),
        ("b1", "replica-b"),
        ("a2", "replica-a"),
        ("b2", "replica-b"),
    ]
    assert run_cli(["audit", "query", "--dir", str(root), "--crate", "b2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["TIME", "REPLICA"] and "replica-b" in table[1]


def test_replica_ids_name_the_directory_safely(tmp_path: Path) -> None:
    """The id becomes a path: separators and dot-dot are refused (path traversal)."""
    settings = load_settings(None, env={}, overrides={"cache_dir": tmp_path, "replica_id": "r-1"})
    assert settings.audit_directory == tmp_path / "audit" / "r-1"
    assert settings.audit_root == tmp_path / "audit"
    for bad in ("../x", "a/b", ".hidden", "", "x" * 65):
        with pytest.raises(ConfigError, match="replica_id"):
            load_settings(None, env={}, overrides={"replica_id": bad})
