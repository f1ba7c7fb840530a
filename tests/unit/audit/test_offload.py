"""ProcessAuditLog: events recorded in the server process end up in one valid chain."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mirror import logs
from mirror.audit import AuditEvent, AuditLog, ProcessAuditLog, offload, read_events, verify_chain
from tests import REPO


def test_events_are_chained_by_the_child_in_order(tmp_path: Path) -> None:
    log = ProcessAuditLog(tmp_path)
    for i in range(500):
        log.record(AuditEvent("allow", "default", "allowed", crate=f"c{i}", details={"i": i}))
    log.flush()
    assert [e["details"]["i"] for e in read_events(tmp_path)] == list(range(500))
    log.record(AuditEvent("block", "typosquat", "looks like serde", crate="serd"))
    log.close()
    events = list(read_events(tmp_path))
    assert events[-1]["crate"] == "serd"
    assert verify_chain(tmp_path).ok


def test_interleaves_with_a_threaded_writer_into_one_chain(tmp_path: Path) -> None:
    """A CLI command (thread writer) and a server (process writer) share one chain."""
    server = ProcessAuditLog(tmp_path)
    cli = AuditLog(tmp_path)
    for i in range(100):
        server.record(AuditEvent("allow", "default", "allowed", details={"i": i}))
        cli.record(AuditEvent("approve", "capabilities", "ok", details={"i": i}))
    server.close()
    cli.close()
    result = verify_chain(tmp_path)
    assert result.ok and result.events == 200


def test_killed_server_loses_at_most_the_unshipped_tail(tmp_path: Path) -> None:
    """kill -9 of the serving process: the child writes what it received and exits."""
    script = textwrap.dedent(
        f"""
        import os, signal, time
        from pathlib import Path
        from mirror.audit import AuditEvent, ProcessAuditLog
        log = ProcessAuditLog(Path({str(tmp_path)!r}))
        for i in range(50):
            log.record(AuditEvent("allow", "default", "allowed", details={{"i": i}}))
        log.flush()
        print(log._child.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=60,
    )
    child = int(proc.stdout.strip())
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        import time

        time.sleep(0.1)
    else:
        raise AssertionError("the audit writer outlived its server")
    assert [e["details"]["i"] for e in read_events(tmp_path)] == list(range(50))
    assert verify_chain(tmp_path).ok


def test_writer_survives_a_signal_to_the_whole_process_group(tmp_path: Path) -> None:
    """Ctrl-C or `timeout` signal every process in the group; the server's last events
    still reach the chain because the writer waits for the server to close the pipe."""
    script = textwrap.dedent(
        f"""
        import os, signal, time
        from pathlib import Path
        from mirror.audit import AuditEvent, ProcessAuditLog
        signal.signal(signal.SIGTERM, lambda *a: None)  # the server handles it by closing
        log = ProcessAuditLog(Path({str(tmp_path)!r}))
        os.killpg(os.getpgid(0), signal.SIGTERM)
        time.sleep(0.5)
        log.record(AuditEvent("allow", "default", "after the signal"))
        log.close()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=60,
        start_new_session=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert [e["reason"] for e in read_events(tmp_path)] == ["after the signal"]


def test_the_writer_logs_in_the_servers_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `log_format: json`, the writer process printed console-format lines among the
    server's JSON (it never configured its logging)."""
    monkeypatch.setattr(logs, "configured", ("json", "warning"))
    log = ProcessAuditLog(tmp_path / "audit")
    try:
        assert log._child is not None
        assert list(log._child.args)[-2:] == ["json", "warning"]  # type: ignore[arg-type]
    finally:
        log.close()
    said: list[tuple[str, ...]] = []
    monkeypatch.setattr(logs, "configure_logging", lambda *a: said.append(a))
    monkeypatch.setattr(offload, "_child_main", lambda *a: None)
    offload.child_entry(["d", "0", "r", "p", "", "json", "warning"])  # what the child runs
    assert said == [("json", "warning")]
