"""Build the legitimate near-names of the dev set (`bench/devset/legit.yaml`) from public data.

    python -m bench.devset.build_legit --minified DIR [--seed 11] [--out FILE]

Source: a public copy of the whole crates.io index in a compact form,
`JustFrederik/crates.io-index-minfied` (one JSON line per crate: its name and every version,
newest first), committed about every six hours from 2024-04-29 to 2024-08-09 (8,150 commits).
`DIR` is a git directory of it (the search tool's `fetch` brings one to
/work/.mirror/JustFrederik+crates.io-index-minfied/repo). It is read, never committed.

- The names and versions are those of the newest commit (the snapshot, 2024-08-09).
- Publish times: a version that first appears after the first commit gets that commit's time
  as its `pubtime` (within about six hours of the real one). Versions already there at the
  first commit get none, as crates.io's own index gives none for versions published before
  2025: "old, age unknown". So crates first published in the last weeks before the snapshot
  are young in the dev set, as they were then.
- Near-names are found with `bench/devset/near_names.py` (defined independently of the
  mirror's detector); popular = in the top-20k list (2024-03-18), long tail = not in it.
- Sample: every popular edit near-name, and a seeded random sample of the other strata.
  Yanked flags and dependencies are not in this source: every version is unyanked and
  dependency-free in the dev set (docs/detection.md says what that leaves unmeasured).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench.devset.near_names import DEFAULT_TOP_CSV, NearFinder, canonical, load_top_csv
from mirror.errors import BadRequest
from mirror.index import validate_name

HERE = Path(__file__).resolve().parent
DEFAULT_MINIFIED = Path("/work/.mirror/JustFrederik+crates.io-index-minfied/repo")
SOURCE = "JustFrederik/crates.io-index-minfied"
SEED = 11
SAMPLE = {  # stratum -> how many (None: all)
    ("popular", "edit"): None,
    ("popular", "combo"): 500,
    ("longtail", "edit"): 600,
    ("longtail", "combo"): 600,
}


@dataclass
class Crate:
    name: str
    versions: list[str]  # newest first, as the snapshot lists them
    first_seen: dict[str, int] = field(default_factory=dict)  # version -> unix time


def _stamp(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_line(raw: str) -> tuple[str, list[str]] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], list)
    ):
        return value[0], [v for v in value[1] if isinstance(v, str)]
    return None


def first_appearances(repo: Path) -> tuple[dict[tuple[str, str], int], int, int, str]:
    """(name, version) -> unix time of the first commit listing it; also the first and last
    commit times and the last commit hash. Streams `git log -p` oldest first."""
    proc = subprocess.Popen(
        [
            "git",
            "-C",
            str(repo),
            "log",
            "--reverse",
            "-p",
            "--unified=0",
            "--format=@@COMMIT %H %ct",
            "--",
            "index/",
        ],
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    assert proc.stdout is not None
    seen: dict[tuple[str, str], int] = {}
    when = first = 0
    head = ""
    for line in proc.stdout:
        if line.startswith("@@COMMIT "):
            _, head, stamp = line.split()
            when = int(stamp)
            first = first or when
        elif line.startswith("+[") and when:
            parsed = _parse_line(line[1:])
            if parsed is not None:
                name, versions = parsed
                for version in versions:
                    seen.setdefault((name, version), when)
    if proc.wait() != 0:
        raise SystemExit(f"git log failed in {repo}")
    return seen, first, when, head


def snapshot(repo: Path, commit: str) -> Iterator[tuple[str, list[str]]]:
    listing = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "--name-only", commit, "index/"],
        capture_output=True,
        text=True,
        check=True,
    )
    for path in listing.stdout.split():
        body = subprocess.run(
            ["git", "-C", str(repo), "show", f"{commit}:{path}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for raw in body.splitlines():
            parsed = _parse_line(raw)
            if parsed is not None:
                yield parsed


def snapshot_names(repo: Path) -> tuple[list[str], str]:
    """Every crate name of the newest commit, and that commit."""
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return [name for name, _ in snapshot(repo, head)], head


def legal(name: str) -> bool:
    try:
        validate_name(name)
    except BadRequest:
        return False
    return True


def build(repo: Path, seed: int) -> dict[str, Any]:
    print("reading the history (git log -p, ~1 min) ...", file=sys.stderr, flush=True)
    seen, first, last, head = first_appearances(repo)
    top20k = load_top_csv(DEFAULT_TOP_CSV)
    popular = {canonical(n): rank for rank, n in reversed(list(enumerate(top20k, 1)))}
    finder = NearFinder(top20k[:3000])
    strata: dict[tuple[str, str], list[dict[str, Any]]] = {k: [] for k in SAMPLE}
    total = 0
    for name, versions in snapshot(repo, head):
        total += 1
        if not versions or not legal(name):
            continue
        near = finder.find(name)
        if near is None:
            continue
        rank = popular.get(canonical(name))
        group = "popular" if rank is not None else "longtail"
        lines = []
        for vers in reversed(versions):  # oldest first, like an index file
            t = seen.get((name, vers))
            lines.append({"vers": vers, "pubtime": _stamp(t) if t and t > first else None})
        strata[(group, near.relation)].append(
            {
                "name": name,
                "group": group,
                "rank": rank,
                "near": near.top,
                "near_rank": near.top_rank,
                "relation": near.relation,
                "combo_kind": near.kind if near.relation == "combo" else None,
                "versions": lines,
            }
        )
    rng = random.Random(seed)
    chosen: list[dict[str, Any]] = []
    population = {}
    for key, want in SAMPLE.items():
        items = sorted(strata[key], key=lambda e: e["name"])
        population["-".join(key)] = len(items)
        chosen += items if want is None or want >= len(items) else rng.sample(items, want)
    return {
        "source": f"{SOURCE} @ {head}",
        "snapshot_date": _stamp(last),
        "history_from": _stamp(first),
        "crates_in_snapshot": total,
        "population": population,
        "crates": sorted(chosen, key=lambda e: (e["group"], e["relation"], e["name"])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.devset.build_legit", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--minified",
        type=Path,
        default=DEFAULT_MINIFIED,
        help="git directory of JustFrederik/crates.io-index-minfied",
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=HERE / "legit.yaml")
    args = parser.parse_args(argv)
    data = build(args.minified, args.seed)
    counts = {f"{e['group']}-{e['relation']}" for e in data["crates"]}
    header = (
        "# Legitimate near-names of top-3,000 crates: the dev set's negatives (issue 11).\n"
        "# Built by `python -m bench.devset.build_legit` (see its docstring and README.md here)\n"
        f"# on {datetime.now(UTC).date()} from {data['source']}.\n"
        f"# Near-name population by stratum: {data['population']}; kept {len(data['crates'])}"
        f" ({', '.join(sorted(counts))}). Seed {args.seed}.\n"
    )
    args.out.write_text(header + yaml.safe_dump(data, sort_keys=False, width=100))
    print(f"wrote {args.out}: {len(data['crates'])} crates", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
