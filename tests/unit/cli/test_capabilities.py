"""`crate-mirror scan|approve|revoke|pending|diff` end to end, on temporary directories."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mirror.audit import AuditEvent, AuditLog, read_events
from mirror.cli import capabilities as capabilities_cmd
from mirror.cli import main
from mirror.cli.capabilities import load_report
from mirror.errors import StorageError
from mirror.index import CrateRef
from mirror.policy.capability_lock import CapabilityRule, decide_capabilities
from mirror.policy.decision import Mode
from mirror.scan.capabilities import Capability
from mirror.sources.capability_lockfile import load_lock, record_lock_in_use
from mirror.store import CachedIndex, FilesystemStore
from tests.fixtures.crates import debian_crate_dir, pack_crate
from tests.unit.scan.test_capabilities import make_crate

C = Capability


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, str]:
    """Command-line options pointing the cache, lock and audit log into tmp_path."""
    return {
        "cache": str(tmp_path / "cache"),
        "lock": str(tmp_path / "capabilities.lock.yaml"),
        "audit": str(tmp_path / "audit"),
    }


def store_crate(cache: Path, data: bytes, name: str, version: str) -> None:
    """Put a crate where the mirror's store keeps it: index line -> cksum -> crates/."""
    sha = hashlib.sha256(data).hexdigest()
    store = FilesystemStore(cache)
    store.put_crate_bytes(sha, data)
    line = {"name": name, "vers": version, "deps": [], "cksum": sha, "features": {}}
    old = store.read_index(name)
    body = (old.body if old is not None else b"") + json.dumps(line).encode() + b"\n"
    store.write_index(name, CachedIndex(body, None, None, 0.0))


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["scan", "approve", "revoke", "pending", "diff"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`crate-mirror COMMAND --help` prints usage and exits 0."""
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: crate-mirror " + command in capsys.readouterr().out


def test_scan_file_text_and_json(
    tmp_path: Path, dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Scanning a .crate file prints capabilities with file:line evidence, or JSON."""
    crate = tmp_path / "cc.crate"
    crate.write_bytes(pack_crate(debian_crate_dir("cc")))
    code, out, _ = run(["scan", str(crate), "--cache-dir", dirs["cache"]], capsys)
    assert code == 0
    assert "  process\n" in out and "src/lib.rs:" in out and "use std::process::Command" in out
    code, out, _ = run(["scan", str(crate), "--json", "--cache-dir", dirs["cache"]], capsys)
    report = json.loads(out)
    assert report["name"] == "cc" and "process" in report["capabilities"]
    first = report["capabilities"]["process"][0]
    assert set(first) == {"file", "line", "item"}


def test_scanning_a_file_without_a_cache_dir_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`scan FILE.crate` needs no cache: it must not leave a mirror-data/ (or anything) behind
    in the current directory; with --cache-dir the report is kept in that cache."""
    crate = tmp_path / "in" / "cc.crate"
    crate.parent.mkdir()
    crate.write_bytes(pack_crate(debian_crate_dir("cc")))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for argv in (["scan", str(crate)], ["diff", str(crate), str(crate)]):
        code, out, _ = run(argv, capsys)
        assert (code == 0 and "process" in out) or "no capability change" in out
    assert list(work.iterdir()) == [] and list(crate.parent.iterdir()) == [crate]
    code, _, _ = run(["scan", str(crate), "--cache-dir", str(tmp_path / "cache")], capsys)
    assert code == 0
    assert len(list(FilesystemStore(tmp_path / "cache").iter_scans())) == 1
    assert list(work.iterdir()) == []


def test_scan_name_at_version_from_the_store(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """name@version is found through the cached index file and the content-addressed store."""
    data = make_crate({"src/lib.rs": "use std::net::TcpStream;\n"}, name="netty", version="1.2.3")
    store_crate(Path(dirs["cache"]), data, "netty", "1.2.3")
    code, out, _ = run(["scan", "netty@1.2.3", "--cache-dir", dirs["cache"]], capsys)
    assert code == 0
    assert "src/lib.rs:1 use std::net::TcpStream" in out
    code, _, err = run(["scan", "netty@9.9.9", "--cache-dir", dirs["cache"]], capsys)
    assert code == 2 and "not in the cached index" in err


def test_hostile_crate_is_a_clear_error(
    tmp_path: Path, dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A corrupt .crate gives exit status 2 and a one-line reason, not a traceback."""
    bad = tmp_path / "bad.crate"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    code, _, err = run(["scan", str(bad), "--cache-dir", dirs["cache"]], capsys)
    assert code == 2 and err.startswith("error: rejected crate:")


def hold_as_the_server_does(audit: Path, lock: Path, cache: Path, spec: str) -> None:
    """Record the block a server would for `spec` (its scan against the lock)."""
    ref = CrateRef.parse(spec)
    report = load_report(spec, cache)
    decision = decide_capabilities(report, load_lock(lock), CapabilityRule(Mode.BLOCK))
    log = AuditLog(audit)
    event = AuditEvent("block", decision.rule, decision.reason, route="download",
                       crate=ref.name, version=ref.version, details=decision.details)  # fmt: skip
    log.record(event)
    log.close()


def test_pending_approve_revoke_cycle(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """What the server held back is pending with its evidence; approving clears it; a revoke
    leaves the crate known (tombstone); all of it is audited."""
    lock_opts = ["--lock", dirs["lock"], "--cache-dir", dirs["cache"]]
    v1 = make_crate({"src/lib.rs": "use std::fs;\n"}, name="tool", version="1.0.0")
    v2 = make_crate(
        {"src/lib.rs": 'use std::fs;\nfn f() { std::process::Command::new("sh"); }\n'},
        name="tool",
        version="1.0.1",
    )
    store_crate(Path(dirs["cache"]), v1, "tool", "1.0.0")
    store_crate(Path(dirs["cache"]), v2, "tool", "1.0.1")
    audit = ["--audit-dir", dirs["audit"]]
    approve = ["approve", "tool@1.0.0", "--reason", "reads its config", *lock_opts, *audit]
    code, out, _ = run(approve, capsys)
    assert code == 0 and "fs" in out
    assert load_lock(Path(dirs["lock"])).approved_for("tool", "1.0.0") == frozenset({C.FS})

    hold_as_the_server_does(Path(dirs["audit"]), Path(dirs["lock"]), Path(dirs["cache"]),
                            "tool@1.0.1")  # fmt: skip
    code, out, _ = run(["pending", *lock_opts, *audit], capsys)
    assert code == 0
    assert "tool 1.0.1" in out and "+ process" in out and "src/lib.rs:2" in out
    assert 'crate-mirror approve tool@1.0.1 --caps process --reason "..."' in out
    assert "tool 1.0.0" not in out

    code, _, _ = run(
        ["approve", "tool@1.0.1", "--caps", "process", "--reason", "runs sh", "--by", "carol",
         *lock_opts, *audit],
        capsys,
    )  # fmt: skip
    assert code == 0
    _, out, _ = run(["pending", *lock_opts, *audit], capsys)
    assert out.strip() == "nothing pending"

    code, out, _ = run(
        ["revoke", "tool", "--caps", "process", "--reason", "no longer needed", *lock_opts, *audit],
        capsys,
    )
    assert code == 0
    assert load_lock(Path(dirs["lock"])).approved_for("tool", "1.0.1") == frozenset({C.FS})
    code, out, _ = run(["revoke", "tool", "--reason", "gone", *lock_opts, *audit], capsys)
    assert code == 0
    assert load_lock(Path(dirs["lock"])).approved_for("tool", "1.0.1") == frozenset()  # known
    events = list(read_events(Path(dirs["audit"])))
    assert [e["action"] for e in events] == ["approve", "block", "approve", "revoke", "revoke"]
    assert events[2]["details"]["by"] == "carol" and events[2]["crate"] == "tool"


def test_pending_without_the_servers_settings_is_an_error_not_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, `pending` without flags said "nothing pending" while the server blocked."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["pending"], capsys)
    assert code == 2 and "nothing pending" not in out
    assert "no audit log at" in err and "--config" in err


def test_commands_read_the_servers_settings_file(
    tmp_path: Path, dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`--config` gives the policy's lock, the cache and the audit log, as the server has them."""
    policy_dir = tmp_path / "p"
    policy_dir.mkdir()
    (policy_dir / "policy.yaml").write_text(
        "version: 2\nrules:\n  capabilities: {mode: block, lock: approvals.yaml}\n"
    )
    config = tmp_path / "mirror.yaml"
    config.write_text(f"cache_dir: {dirs['cache']}\npolicy: {policy_dir / 'policy.yaml'}\n")
    store_crate(Path(dirs["cache"]), make_crate({}, name="x", version="1.0.0"), "x", "1.0.0")
    code, _, err = run(["approve", "x@1.0.0", "--caps", "net", "--reason", "r",
                        "--config", str(config)], capsys)  # fmt: skip
    assert code == 0, err
    assert load_lock(policy_dir / "approvals.yaml").approved_for("x", "1.0.0") == frozenset({C.NET})
    assert [e["action"] for e in read_events(Path(dirs["cache"]) / "audit")] == ["approve"]


def test_approve_rejects_unknown_capability(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in --caps is refused before the lock is touched."""
    code, _, err = run(
        ["approve", "x@1.0.0", "--caps", "netwrok", "--reason", "r", "--lock", dirs["lock"],
         "--audit-dir", dirs["audit"]],
        capsys,
    )  # fmt: skip
    assert code == 2 and "unknown capability" in err
    assert not Path(dirs["lock"]).exists()


def test_diff_between_versions(
    tmp_path: Path, dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`diff` shows what the newer version adds, with evidence, and what it dropped."""
    old = tmp_path / "old.crate"
    new = tmp_path / "new.crate"
    old.write_bytes(make_crate({"src/lib.rs": "use std::fs;\n"}, version="1.0.0"))
    new.write_bytes(
        make_crate({"build.rs": "fn main() {}\n", "src/lib.rs": "use std::net::UdpSocket;\n"},
                   version="1.1.0")
    )  # fmt: skip
    code, out, _ = run(["diff", str(old), str(new), "--cache-dir", dirs["cache"]], capsys)
    assert code == 0
    assert "demo 1.0.0 -> demo 1.1.0" in out
    assert "adds: build_script (build.rs:1), net (src/lib.rs:1 use std::net::UdpSocket)" in out
    assert "  - fs" in out


def test_approve_with_caps_refuses_a_version_the_mirror_has_not_seen(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`approve tool@9.9.9 --caps ...` used to succeed: an approval of a mistyped version
    with no --versions approved every version, the held one included."""
    store_crate(Path(dirs["cache"]), make_crate({}, name="tool", version="1.0.0"), "tool", "1.0.0")
    opts = ["--lock", dirs["lock"], "--cache-dir", dirs["cache"], "--audit-dir", dirs["audit"]]
    for spec in ("tool@9.9.9", "nosuchcrate@1.0.0"):
        code, out, err = run(["approve", spec, "--caps", "net", "--reason", "r", *opts], capsys)
        assert code == 2 and "approved" not in out, (spec, out)
        assert "not in the cache" in err or "not in the cached index file" in err
    assert not Path(dirs["lock"]).exists()
    assert not Path(dirs["audit"]).exists()  # nothing approved, nothing audited
    code, out, _ = run(["approve", "tool@1.0.0", "--caps", "net", "--reason", "r", *opts], capsys)
    assert code == 0 and "approved for tool@1.0.0: net" in out


def test_revoke_of_one_version_is_refused_not_widened(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`revoke tool@1.0.1` used to revoke every approval of tool, printing so afterwards."""
    opts = ["--lock", dirs["lock"], "--cache-dir", dirs["cache"], "--audit-dir", dirs["audit"]]
    store_crate(Path(dirs["cache"]), make_crate({}, name="tool", version="1.0.0"), "tool", "1.0.0")
    assert run(["approve", "tool@1.0.0", "--caps", "fs", "--reason", "r", *opts], capsys)[0] == 0
    code, out, err = run(["revoke", "tool@1.0.1", "--reason", "only 1.0.1", *opts], capsys)
    assert code == 2 and "revoked" not in out
    assert "takes a crate name" in err and "--versions" in err
    assert load_lock(Path(dirs["lock"])).approved_for("tool", "1.0.0") == frozenset({C.FS})


def test_approvals_and_revocations_audit_the_reviewers_reason(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The reason is what `audit query` and the alerts show: it carries the human's why."""
    opts = ["--lock", dirs["lock"], "--cache-dir", dirs["cache"], "--audit-dir", dirs["audit"]]
    store_crate(Path(dirs["cache"]), make_crate({}, name="tool", version="1.0.0"), "tool", "1.0.0")
    run(["approve", "tool@1.0.0", "--caps", "net", "--reason", "SEC-42 telemetry", *opts], capsys)
    run(["revoke", "tool", "--reason", "vendor gone", *opts], capsys)
    reasons = [e["reason"] for e in read_events(Path(dirs["audit"]))]
    assert reasons[0].endswith("approved net for tool: SEC-42 telemetry")
    assert reasons[1].endswith("revoked all approvals for tool: vendor gone")


def test_crate_text_reaches_the_terminal_escaped(
    tmp_path: Path, dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """File names and code are the crate's: an ESC sequence in them would recolour, erase
    or rewrite what a reviewer reads, a newline would add lines of the crate's choosing,
    and a bidi override would reorder them. `scan`, `diff`, `pending` and the reason of a
    block (the 403 body cargo prints) show them escaped."""
    hostile: dict[str, str | bytes] = {
        "src/\x1b[2K\x1b[1Aok\n\u202efake.rs": "use std::net::TcpStream;\n",
        "src/lib.rs": 'fn f() { std::process::Command::new("\x1b]8;;http://x\x1b\\sh"); }\n',
    }
    old = tmp_path / "old.crate"
    new = tmp_path / "new.crate"
    old.write_bytes(make_crate({}, name="tool", version="1.0.0"))
    new.write_bytes(make_crate(hostile, name="tool", version="1.0.1"))
    store_crate(Path(dirs["cache"]), old.read_bytes(), "tool", "1.0.0")
    store_crate(Path(dirs["cache"]), new.read_bytes(), "tool", "1.0.1")
    lock_opts = ["--lock", dirs["lock"], "--cache-dir", dirs["cache"], "--audit-dir", dirs["audit"]]
    assert run(["approve", "tool@1.0.0", "--reason", "r", *lock_opts], capsys)[0] == 0
    outputs = []
    for argv in (["scan", str(new)], ["diff", str(old), str(new)]):
        code, out, _ = run(argv, capsys)
        assert code == 0
        outputs.append(out)
    hold_as_the_server_does(Path(dirs["audit"]), Path(dirs["lock"]), Path(dirs["cache"]),
                            "tool@1.0.1")  # fmt: skip
    code, out, _ = run(["pending", *lock_opts], capsys)
    assert code == 0 and "net" in out
    outputs.append(out)
    block = next(e for e in read_events(Path(dirs["audit"])) if e["action"] == "block")
    assert "adds: net (src/" in block["reason"]
    outputs.append(block["reason"])
    for text in outputs:
        assert "\x1b" not in text and "\u202e" not in text, text
        assert "\\x1b[2K" in text, text
        assert not any(line.startswith("ok") for line in text.splitlines()), text


def test_an_approval_that_cannot_be_recorded_leaves_the_lock_as_it_was(
    tmp_path: Path, dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """On a cache nobody could write, the lock took the approval, then the epoch (which
    tells servers) and the audit event failed with a traceback: changed, unsaid, unaudited."""
    store_crate(Path(dirs["cache"]), make_crate({}, name="tool", version="1.0.0"), "tool", "1.0.0")
    approve = ["approve", "tool@1.0.0", "--caps", "net", "--reason", "r", "--lock", dirs["lock"],
               "--cache-dir", dirs["cache"]]  # fmt: skip
    audit_blocked = tmp_path / "audit-is-a-file"
    audit_blocked.write_text("")
    code, _, err = run([*approve, "--audit-dir", str(audit_blocked)], capsys)
    assert code == 2 and "cannot write the audit log" in err
    assert not Path(dirs["lock"]).exists()
    state = Path(dirs["cache"]) / "state"
    state.write_text("")  # where the epoch file goes
    code, _, err = run([*approve, "--audit-dir", dirs["audit"]], capsys)
    assert code == 2 and "cannot write" in err and "Traceback" not in err
    assert not Path(dirs["lock"]).exists()
    assert list(read_events(Path(dirs["audit"]))) == []


@pytest.mark.parametrize("reason", ["", "   "])
def test_an_empty_reason_is_refused_before_it_breaks_the_lock(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str], reason: str
) -> None:
    """`--reason ''` was written to the lock, which then no longer loaded anywhere."""
    store_crate(Path(dirs["cache"]), make_crate({}, name="tool", version="1.0.0"), "tool", "1.0.0")
    opts = ["--lock", dirs["lock"], "--cache-dir", dirs["cache"], "--audit-dir", dirs["audit"]]
    for argv in (["approve", "tool@1.0.0", "--caps", "net"], ["revoke", "tool"]):
        with pytest.raises(SystemExit) as info:
            main([*argv, "--reason", reason, *opts])
        assert info.value.code == 2 and "say why" in capsys.readouterr().err
    assert not Path(dirs["lock"]).exists()


def test_an_empty_cache_dir_is_refused_not_the_current_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--cache-dir ''` is Path(""), the current directory: a cache appeared wherever it ran."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["pending", "--cache-dir", ""])
    assert info.value.code == 2 and "an empty path" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_lock_other_than_the_servers_is_a_typo_not_a_new_lock(
    tmp_path: Path, dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`--lock badlock/new/none.yaml` made the directories and a new lock no server reads,
    printed "approved" and audited it, while the crate stayed held."""
    store_crate(Path(dirs["cache"]), make_crate({}, name="tool", version="1.0.0"), "tool", "1.0.0")
    record_lock_in_use(Path(dirs["cache"]) / "state", Path(dirs["lock"]))  # what serve does
    typo = tmp_path / "badlock" / "new" / "none.yaml"
    opts = ["--lock", str(typo), "--cache-dir", dirs["cache"], "--audit-dir", dirs["audit"]]
    for argv in (["approve", "tool@1.0.0", "--caps", "net"], ["revoke", "tool"]):
        code, out, err = run([*argv, "--reason", "r", *opts], capsys)
        assert code == 2 and f"reads {Path(dirs['lock']).resolve()}" in err, (argv, out, err)
    assert not (tmp_path / "badlock").exists()
    assert not Path(dirs["audit"]).exists()


def test_pending_lists_without_opening_the_audit_log_for_writing(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a read-only copy of a cache, `pending` failed: "cannot append to the audit log"."""
    store_crate(Path(dirs["cache"]), make_crate({}, name="tool", version="1.0.0"), "tool", "1.0.0")
    v2 = make_crate({"src/lib.rs": 'fn f() { std::process::Command::new("sh"); }\n'},
                    name="tool", version="1.0.1")  # fmt: skip
    store_crate(Path(dirs["cache"]), v2, "tool", "1.0.1")
    opts = ["--lock", dirs["lock"], "--cache-dir", dirs["cache"], "--audit-dir", dirs["audit"]]
    assert run(["approve", "tool@1.0.0", "--reason", "r", *opts], capsys)[0] == 0
    hold_as_the_server_does(Path(dirs["audit"]), Path(dirs["lock"]), Path(dirs["cache"]),
                            "tool@1.0.1")  # fmt: skip

    def read_only(directory: Path, **_: object) -> None:
        raise StorageError(f"cannot append to the audit log in {directory}: read-only")

    monkeypatch.setattr(capabilities_cmd, "AuditLog", read_only)
    code, out, err = run(["pending", *opts], capsys)
    assert code == 0, err
    assert "tool 1.0.1" in out and "+ process" in out
