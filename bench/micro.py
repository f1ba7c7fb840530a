"""The policy micro-benchmarks other issues ship, run as subprocesses when their files exist.

bench/names_bench.py (name checks/s), bench/scan_bench.py (capability scan MB/s) and
bench/audit_bench.py (audit record cost). A script with a `--json` flag is asked for JSON;
otherwise the summary lines it prints are parsed, and an unrecognised output is reported as
such (with its tail) instead of being dropped silently.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["MICRO", "parse_micro", "run_micro_benchmarks"]

REPO = Path(__file__).resolve().parent.parent

# name -> (module, options in --quick mode: each passed only if the script's --help lists it)
MICRO: dict[str, tuple[str, dict[str, str]]] = {
    "names": ("bench.names_bench", {"--checks": "5000", "--repeats": "1"}),
    "scan": ("bench.scan_bench", {"--limit": "40"}),
    "audit": ("bench.audit_bench", {"--events": "20000"}),
}
MICRO_TIMEOUT = 600.0  # seconds per script


def run_micro_benchmarks(quick: bool, progress: Callable[[str], None]) -> dict[str, Any]:
    """Each present script's numbers; a `--json` flag is used when the script has one."""
    out: dict[str, Any] = {}
    for name, (module, quick_args) in MICRO.items():
        if not (REPO / (module.replace(".", "/") + ".py")).is_file():
            continue
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        base = [sys.executable, "-m", module]
        helptext = subprocess.run(
            [*base, "--help"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
        args = [
            part
            for flag, value in quick_args.items()
            if quick and flag in helptext
            for part in (flag, value)
        ]
        wants_json = "--json" in helptext
        if wants_json:
            args.append("--json")
        try:
            proc = subprocess.run(
                [*base, *args],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=MICRO_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            out[name] = {"error": f"timed out after {MICRO_TIMEOUT:.0f} s"}
            continue
        if proc.returncode != 0:
            out[name] = {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}"}
            continue
        out[name] = parse_micro(name, proc.stdout, wants_json)
        out[name]["command"] = " ".join(["python", "-m", module, *args])
        progress(f"{name} micro-benchmark done")
    return out


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def parse_micro(name: str, stdout: str, is_json: bool) -> dict[str, Any]:
    """The numbers a micro-benchmark printed (its JSON line, or its known summary lines)."""
    if is_json:
        for line in reversed(stdout.strip().splitlines()):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                return data
        return {"error": "no JSON object in output"}
    out: dict[str, Any] = {}
    if name == "names":
        out.update(_name_check_rates(stdout))
    elif name == "scan":
        if m := re.search(r"throughput: ([\d.,]+) MB/s", stdout):
            out["mb_per_s"] = _num(m[1])
        if m := re.search(r"(\d+) crates, ([\d.]+) MB unpacked", stdout):
            out["crates"], out["mb"] = int(m[1]), _num(m[2])
    elif name == "audit":
        if m := re.search(r"record\(\): median ([\d.]+) µs/call, p99 ([\d.]+)", stdout):
            out["record_median_us"], out["record_p99_us"] = _num(m[1]), _num(m[2])
        if m := re.search(r"flush\(\): ([\d,]+) events/s", stdout):
            out["flush_events_per_s"] = _num(m[1])
    if not out:
        out["error"] = "summary lines not recognised"
        out["output"] = stdout.strip()[-500:]
    return out


def _name_check_rates(stdout: str) -> dict[str, float]:
    """`<label> N checks/s` lines, grouped under the preceding `N protected` heading."""
    out: dict[str, float] = {}
    size = "?"
    for line in stdout.splitlines():
        if m := re.match(r"\s*([\d,]+) protected", line):
            size = str(int(_num(m[1])))
        if m := re.search(r"([\d,.]+) checks/s", line):
            label = line[: m.start()].strip()
            label = "all" if not label or "protected:" in label else label
            out[f"{label} checks/s @{size}"] = _num(m[1])
    return out
