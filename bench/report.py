"""Turning measurements into the report: machine facts, targets, and the Markdown tables.

Pure functions over the results dictionary `bench.run` builds (and writes as JSON), so the
report can be re-rendered from any saved JSON file: `python -m bench.report FILE.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["machine_info", "render_markdown", "summarize_targets"]

# Targets of the product card and issue 16, as ratios on the 2-core machine.
TARGET_RPS_RATIO = 1.0  # warm index hits: mirror >= nginx's requests/s, at 64 and at 1,000
# connections, in every run
TARGET_P99_RATIO = 2.0  # warm index hits: mirror p99 <= 2x nginx's (at 1,000 connections too,
# in every run: issue 16)
TARGET_COLD_RATIO = 1.1  # cold cargo fetch: mirror <= 1.1x direct (issue 16; was 1.3)
TARGET_WARM_RATIO = 1.05  # warm cargo fetch: mirror <= 1.05x nginx (issue 16; was 1.1)
TARGET_RSS_MB = 200.0  # peak RSS at 1,000 connections (issue 6)


def _first_line(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (proc.stdout or proc.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory": _first_line(["sh", "-c", "free -h | sed -n 2p"]),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "nginx": _first_line(["nginx", "-v"]),
        "wrk": _first_line(["wrk", "-v"]).split(" Copyright")[0],
    }


def _target(name: str, measured: float | None, goal: str, met: bool) -> dict[str, Any]:
    return {"target": name, "measured": measured, "goal": goal, "met": met}


def _at_least(value: float | None, goal: float) -> bool:
    return value is not None and value >= goal


def _at_most(value: float | None, goal: float) -> bool:
    return value is not None and value <= goal


def summarize_targets(results: dict[str, Any], blob_bytes: int) -> list[dict[str, Any]]:
    """One row per issue target: what was measured and whether it meets the goal."""
    rows = []
    for row in results.get("load", []):
        w, conns, scenario = row["workers"], row["connections"], row["scenario"]
        if scenario == "index_hit" and conns < 1000:
            rps, p99 = row["rps_ratio"], row["p99_ratio"]
            name = f"warm hits req/s ratio (workers={w})"
            met = _at_least(rps, TARGET_RPS_RATIO)
            rows.append(_target(name, rps, f">= {TARGET_RPS_RATIO}", met))
            name = f"warm hits p99 ratio (workers={w})"
            met = _at_most(p99, TARGET_P99_RATIO)
            rows.append(_target(name, p99, f"<= {TARGET_P99_RATIO}", met))
        if scenario == "index_hit" and conns >= 1000:
            run = f", run {row['run']}" if "run" in row else ""
            rps = row["rps_ratio"]
            name = f"req/s ratio at {conns} connections (workers={w}{run})"
            rows.append(
                _target(name, rps, f">= {TARGET_RPS_RATIO}", _at_least(rps, TARGET_RPS_RATIO))
            )
            rss = row["mirror_memory"]["peak_rss_mb"]
            name = f"peak RSS MB at {conns} connections (workers={w}{run})"
            met = _at_most(rss, TARGET_RSS_MB)
            rows.append(_target(name, rss, f"<= {TARGET_RSS_MB:.0f}", met))
            p99 = row["p99_ratio"]
            name = f"p99 ratio at {conns} connections (workers={w}{run})"
            met = _at_most(p99, TARGET_P99_RATIO)
            rows.append(_target(name, p99, f"<= {TARGET_P99_RATIO}", met))
        if scenario == "crate_5mb":
            mem = row["mirror_memory"]
            # If any download held the whole crate, all `conns` in flight would add >= size each.
            per_download = round((mem["peak_rss_mb"] - mem["baseline_rss_mb"]) / conns, 2)
            size_mb = blob_bytes / 2**20
            name = f"RSS growth MB per concurrent 5 MB download ({conns} at once, workers={w})"
            goal = f"< {size_mb:.0f} (a whole copy per download)"
            rows.append(_target(name, per_download, goal, per_download < size_mb))
    fetches = (
        ("cold_fetch", "cold cargo fetch mirror/direct", TARGET_COLD_RATIO),
        (
            "cold_fetch_default_policy",
            "cold cargo fetch mirror/direct, shipped default policy",
            TARGET_COLD_RATIO,
        ),
        ("warm_fetch", "warm cargo fetch mirror/nginx", TARGET_WARM_RATIO),
    )
    for key, name, limit in fetches:
        if key in results:
            ratio = results[key]["ratio"]
            rows.append(_target(name, ratio, f"<= {limit}", _at_most(ratio, limit)))
    return rows


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def render_markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    s = results["settings"]
    out = [
        f"## crate-mirror benchmark, {results['timestamp']}"
        + (" (--quick)" if results.get("quick") else ""),
        "",
        f"Machine: {m['nproc']} cores, {m['cpu_model']}; memory: {m['memory']}; "
        f"Python {m['python']}; {m['nginx']}; {m['wrk']}. Load average (1/5/15 min) before: "
        f"{m.get('loadavg_before', 'n/a')}, after: {m.get('loadavg_after', 'n/a')}.",
        f"Load: wrk -t{s['wrk_threads']}, {s['duration_s']:.0f} s per run after "
        f"{s['warmup_s']:.0f} s of discarded warm-up; nginx worker_processes = mirror workers. "
        "Latencies in ms.",
        "",
        "| scenario | workers | conns | mirror req/s | nginx req/s | ratio | mirror p50 "
        "| nginx p50 | mirror p99 | nginx p99 | p99 ratio | mirror peak RSS (PSS) MB "
        "| errors m/n |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results.get("load", []):
        mi, ng = row["mirror"], row["nginx"]
        conns = f"{row['connections']} (run {row['run']})" if "run" in row else row["connections"]
        out.append(
            f"| {row['describe']} | {row['workers']} | {conns} "
            f"| {_fmt(mi['requests_per_s'], 0)} | {_fmt(ng['requests_per_s'], 0)} "
            f"| {_fmt(row['rps_ratio'])} | {_fmt(mi['p50_ms'])} | {_fmt(ng['p50_ms'])} "
            f"| {_fmt(mi['p99_ms'])} | {_fmt(ng['p99_ms'])} | {_fmt(row['p99_ratio'])} "
            f"| {_fmt(row['mirror_memory']['peak_rss_mb'], 1)} "
            f"({_fmt(row['mirror_memory'].get('peak_pss_mb'), 1)}) "
            f"| {mi['errors']}/{ng['errors']} |"
        )
    out += [
        "",
        "| cargo fetch (empty CARGO_HOME) | crates | A median s | B median s | A/B "
        "| runs A | runs B |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in ("cold_fetch", "cold_fetch_default_policy", "warm_fetch", "cold_fetch_distant"):
        if key in results:
            f = results[key]
            out.append(
                f"| {f['a']} vs {f['b']} | {f['locked_crates']} | {f['a_median_s']:.2f} "
                f"| {f['b_median_s']:.2f} | {f['ratio']:.2f} "
                f"| {', '.join(f'{x:.2f}' for x in f['a_seconds'])} "
                f"| {', '.join(f'{x:.2f}' for x in f['b_seconds'])} |"
            )
    micro = results.get("micro", {})
    if micro:
        out += ["", "| policy cost (micro-benchmark) | measured |", "|---|---|"]
        for name, data in micro.items():
            numbers = ", ".join(
                f"{k} {_fmt(v, 0 if isinstance(v, float) and v >= 100 else 1)}"
                for k, v in data.items()
                if k not in ("command", "output")
            )
            out.append(f"| {name} (`{data.get('command', '')}`) | {numbers} |")
    out += ["", "| target | measured | goal | met |", "|---|---|---|---|"]
    for t in results.get("targets", []):
        met = "yes" if t["met"] else "no"
        out.append(f"| {t['target']} | {_fmt(t['measured'])} | {t['goal']} | {met} |")
    out.append(f"\nTotal harness time: {results.get('elapsed_s', 'n/a')} s.")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.report",
        description="Print the Markdown tables of saved `bench.run` results again.",
    )
    parser.add_argument("results", nargs="+", type=Path, help="bench/results/<timestamp>.json")
    args = parser.parse_args(argv)
    for path in args.results:
        try:
            results = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            print(f"bench.report: {path}: {e}", file=sys.stderr)
            return 1
        print(render_markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
