"""Detection accuracy, measured by real cargo through the mirror with the shipped default policy.

Run from the repository root: python -m bench.detection [--jobs 2] [--sample N] [--out DIR]

What it does (docs/detection.md, "Measured"):
1. Builds a crates.io-like registry: Debian's crates (tests/fixtures/registry.py), plus every
   dev-set crate from bench/devset/ (malicious crates reproduced from RustSec advisories,
   typo squats of top crates, legitimate near-names with their real version history).
2. Serves it with the fake upstream and starts `crate-mirror serve --policy
   policies/default.yaml` in front of it (advisories are off in the default policy: the point
   is to stop a crate before an advisory exists).
3. For every dev-set crate, a fresh cargo project that depends on it runs `cargo
   generate-lockfile` and `cargo fetch` through the mirror, with its own empty CARGO_HOME.
4. Reads cargo's own download cache to see which `.crate` files reached cargo:
   - a malicious crate is stopped when none of its malicious versions reached cargo (a
     takeover's project may still resolve to the legitimate older version: that is a stop);
   - a typo squat is stopped when its `.crate` did not reach cargo;
   - a legitimate near-name passes when its newest version reached cargo.
5. Prints the rates per group (popular and long-tail counted apart), every miss with the
   mirror's reason, and writes JSON and Markdown to bench/results/.

Publish times: malicious crates and typo squats are published at a seeded random moment
within their real lifetime before the run (typos: 1 hour to 30 days); legitimate crates keep
their real publish times, moved forward by (now - the dev set's snapshot date) so that the
run sees them at the age they had when the data was taken. Lines without a `pubtime` keep
none (published before 2025).

Content of legitimate crates and typo squats: the real sources of a Debian-packaged crate
(chosen by a hash of the name), renamed. Their own sources are not available offline; a
donor gives them real, legitimate code with the usual mix of build scripts, proc-macros and
FFI. Malicious crates carry the reproductions in bench/devset/malicious/.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tests.cargo_project import CargoProject
from tests.fixtures.devset import DEVSET, Case, DevSetRegistry, day, parses, rfc3339
from tests.fixtures.registry import Registry, build_registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "default.yaml"
CARGO_TIMEOUT = 180.0  # seconds per cargo command
HOLDOUT_FROM = date(2026, 6, 1)  # advisories from this day on were not looked at when tuning


@dataclass
class Outcome:
    case: Case
    stopped: bool
    reached: list[str]  # versions of the crate whose .crate reached cargo
    reason: str  # the mirror's words (cargo's error output), trimmed
    seconds: float

    @property
    def correct(self) -> bool:
        return self.stopped if self.case.group in ("malicious", "typo") else not self.stopped


# -- probing ------------------------------------------------------------------------------------


def probe(case: Case, registry_url: str, workdir: Path) -> Outcome:
    started = time.monotonic()
    project = CargoProject(workdir, registry_url, {case.name: case.req}, name="probe")
    result = project.generate_lockfile()
    if result.returncode == 0:
        result = project.fetch()
    reached = sorted(_reached(project.cargo_home, case.name))
    if case.group in ("malicious", "typo"):
        stopped = not (set(reached) & case.bad)
    else:
        stopped = case.want not in reached
    reason = _reason(result.stderr) if result.returncode else ""
    shutil.rmtree(workdir, ignore_errors=True)
    return Outcome(case, stopped, reached, reason, time.monotonic() - started)


def _reached(cargo_home: Path, name: str) -> Iterator[str]:
    """Versions of `name` whose .crate cargo downloaded (its own cache, not the mirror's)."""
    prefix = f"{name}-"
    for path in cargo_home.glob("registry/cache/*/*.crate"):
        stem = path.name[: -len(".crate")]
        if stem.startswith(prefix) and parses(stem[len(prefix) :]):
            yield stem[len(prefix) :]


def _reason(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    useful = [ln for ln in lines if "crate-mirror" in ln or "403" in ln or "error" in ln]
    return " | ".join(useful or lines)[-600:]


# -- the run ------------------------------------------------------------------------------------


@contextmanager
def serving(registry: Registry, work: Path) -> Iterator[MirrorProcess]:
    policy_dir = work / "policies"
    shutil.copytree(ROOT / "policies", policy_dir)
    with FakeUpstream(registry).in_thread() as upstream:
        mirror = MirrorProcess(
            work / "cache",
            upstream=upstream.url,
            policy=policy_dir / "default.yaml",
            extra=["--workers", "1"],
        ).start()
        try:
            yield mirror
        finally:
            mirror.stop()


def summarize(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[o.case.group].append(o)
        if o.case.group == "malicious":
            when = day(o.case.meta.get("advisory_date") or "2000-01-01")
            groups["malicious (held out)" if when >= HOLDOUT_FROM else "malicious (tuning)"].append(
                o
            )
    table = {}
    for group, items in sorted(groups.items()):
        stopped = sum(1 for o in items if o.stopped)
        table[group] = {"n": len(items), "stopped": stopped, "rate": stopped / len(items)}
    misses = [
        {
            "group": o.case.group,
            "crate": o.case.name,
            "stopped": o.stopped,
            "reached": o.reached,
            "reason": o.reason,
            **{k: v for k, v in o.case.meta.items() if v is not None},
        }
        for o in outcomes
        if not o.correct
    ]
    return {"groups": table, "misses": misses}


def markdown(summary: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    out = [f"# Detection run {meta['started']}", "", f"Policy: {meta['policy']}", ""]
    out += ["| group | crates | stopped | rate | target |", "|---|---:|---:|---:|---|"]
    targets = {
        "malicious": ">= 95% stopped",
        "typo": ">= 95% stopped",
        "popular": "<= 2% stopped",
        "longtail": "<= 2% stopped",
    }
    for group, row in summary["groups"].items():
        target = targets.get(group.split(" ")[0], "")
        out.append(f"| {group} | {row['n']} | {row['stopped']} | {row['rate']:.1%} | {target} |")
    out += ["", "## Wrong decisions", ""]
    for miss in summary["misses"]:
        out.append(
            f"- {miss['group']} `{miss['crate']}`: {'stopped' if miss['stopped'] else 'passed'}"
            f" — {miss.get('reason') or 'reached cargo: ' + ', '.join(miss['reached'])}"
        )
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.detection",
        description="Measure detection with real cargo through the mirror (default policy).",
    )
    parser.add_argument("--jobs", type=int, default=2, help="cargo probes at once (default 2)")
    parser.add_argument(
        "--sample",
        type=int,
        default=None,
        help="probe at most N typos and N legitimate crates (default: all)",
    )
    parser.add_argument("--seed", type=int, default=1, help="publish-time and sampling seed")
    parser.add_argument("--devset", type=Path, default=DEVSET, help="dev-set directory")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if shutil.which("cargo") is None:
        print("bench.detection: real cargo is needed on PATH", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="crate-mirror-detection-") as tmp:
        work = Path(tmp)
        print("building the registry (Debian crates + dev set) ...", flush=True)
        registry = build_registry(work / "registry")
        devset = DevSetRegistry(registry, started, rng)
        devset.malicious(args.devset)
        devset.typos(args.devset, args.sample)
        devset.legit(args.devset, args.sample)
        counts = Counter(c.group for c in devset.cases)
        print(f"dev set: {dict(counts)}; skipped {len(devset.skipped)}", flush=True)
        outcomes: list[Outcome] = []
        with serving(registry, work) as mirror, ThreadPoolExecutor(args.jobs) as pool:
            futures = [
                pool.submit(probe, case, mirror.index_url, work / "probes" / f"{i}")
                for i, case in enumerate(devset.cases)
            ]
            for future in tqdm(as_completed(futures), total=len(futures), desc="cargo probes"):
                outcomes.append(future.result())
    summary = summarize(outcomes)
    meta = {
        "started": rfc3339(started),
        "policy": str(POLICY.relative_to(ROOT)),
        "seed": args.seed,
        "skipped": devset.skipped,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"detection-{started.strftime('%Y%m%dT%H%M%SZ')}"
    stem.with_suffix(".json").write_text(
        json.dumps(
            {"meta": meta, **summary, "outcomes": [_plain_outcome(o) for o in outcomes]},
            indent=1,
            default=str,
        )
    )
    text = markdown(summary, meta)
    stem.with_suffix(".md").write_text(text)
    print(text)
    return 0


def _plain_outcome(o: Outcome) -> dict[str, Any]:
    case = asdict(o.case)
    case["bad"] = sorted(case["bad"])
    return {
        **case,
        "stopped": o.stopped,
        "reached": o.reached,
        "reason": o.reason,
        "seconds": round(o.seconds, 2),
    }


if __name__ == "__main__":
    sys.exit(main())
