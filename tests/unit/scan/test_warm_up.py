"""Readying the scanner before a request waits for it (mirror.scan.capabilities.warm_up), and
handing its compiled patterns to another process. Each case runs in a fresh interpreter:
this one compiled every pattern long ago."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

from mirror.scan.capabilities import compiled_patterns, scan_crate, warm_up
from tests.unit.scan.test_capabilities import make_crate

ROOT = Path(__file__).resolve().parents[3]

# Warms up (with the databases given, if any), then says whether every pattern set is ready
# and scans the crate. Given databases, compiling any set fails the run.
_CHILD = r"""
import json, pickle, sys, types
import hyperscan
import mirror.scan.crate_scan
from mirror.scan import capabilities, multimatch

databases, crate = pickle.loads(sys.stdin.buffer.read())
if databases is not None:
    def refuse(*args, **kwargs):
        raise AssertionError("a pattern set was compiled again")
    multimatch.hyperscan = types.SimpleNamespace(**{**vars(hyperscan), "Database": refuse})
capabilities.warm_up(databases)
ready = [p.key for p in multimatch._ALL if "_database" in p.__dict__]
every = [p.key for p in multimatch._ALL]
report = capabilities.scan_crate(crate)
json.dump({"ready": ready, "every": every, "report": report.to_json()}, sys.stdout)
"""

# Reaches every pattern set: a build script, a macro body that names a process, a `use`.
CRATE = make_crate(
    {
        "build.rs": 'fn main() { std::process::Command::new("cc").status().ok(); }\n',
        "src/lib.rs": (
            "use std::env;\n"
            'macro_rules! run { () => { std::process::Command::new("sh").spawn() } }\n'
            'pub fn home() -> String { env::var("HOME").unwrap_or_default() }\n'
        ),
    },
    manifest='build = "build.rs"\n',
)


def _in_a_fresh_process(databases: dict[str, bytes] | None) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=pickle.dumps((databases, CRATE)),
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_warm_up_leaves_nothing_for_the_first_scan_to_compile() -> None:
    result = _in_a_fresh_process(None)
    assert result["every"] and result["ready"] == result["every"]
    assert result["report"] == scan_crate(CRATE).to_json()


def test_another_process_scans_with_this_ones_patterns_without_compiling_them() -> None:
    """What the background scanner's process gets (mirror.serving.scans): the same report,
    and not one pattern set compiled there."""
    warm_up()
    databases = compiled_patterns()
    result = _in_a_fresh_process(databases)
    assert sorted(databases) == sorted(result["every"]) == sorted(result["ready"])
    assert result["report"] == scan_crate(CRATE).to_json()
