"""Build the legitimate near-name dev set (`bench/devset/legit.yaml`) in two steps.

    python -m bench.devset.build_legit plan      # which names to look up, in look-up order
    python -m bench.devset.build_legit assemble  # index extract + plan -> legit.yaml

`plan` finds every near-name (bench/devset/near_names.py) among the top-20k crates
(group popular) and among the names of the 2019 crates.io index copy that are not in the
top-20k list (group longtail), shuffles each of the four strata (popular/longtail x
edit/combo) with a fixed seed and interleaves them round-robin into `lookup_plan.tsv`, so a
look-up budget that runs out anywhere leaves the strata balanced.

The current version history of each planned name was read by hand, in plan order, from the
stored copy of rust-lang/crates.io-index (the search tool's `read_file`, one 16,000-character
page per crate) and written down in `index_extract.txt`:

    @ NAME COMMIT chars=TOTAL_CHARS [more]     one per index file; `more`: first page only
    @ NAME - missing                           no index file in that copy: dropped
    VERS PUBTIME|- y|n DEP,DEP,...|-|=         one per index line (`-`: no pubtime / no deps,
                                               `=`: the same deps as the line before)

A dependency is written as the crate it resolves to (its `package` when renamed).

`assemble` joins the extract with the plan and writes legit.yaml with its header.
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from bench.devset.near_names import DEFAULT_TOP_CSV, NearFinder, canonical, load_top_csv
from mirror.policy.semver import Version

HERE = Path(__file__).resolve().parent
DEFAULT_INDEX_GIT = Path("/work/.mirror/kornelski+crates.io-index/repo")
SEED = 11  # issue 11
STRATA = ("popular-edit", "longtail-edit", "popular-combo", "longtail-combo")
READ_DATE = "2026-11-27"
INDEX_REPO = "rust-lang/crates.io-index"
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$")


def index_path(name: str) -> str:
    """The index file path crates.io uses for a name (lowercase; `-`/`_` kept as spelled)."""
    n = name.lower()
    if len(n) <= 2:
        return f"{len(n)}/{n}"
    if len(n) == 3:
        return f"3/{n[0]}/{n}"
    return f"{n[:2]}/{n[2:4]}/{n}"


def index_2019_names(git_dir: Path) -> tuple[list[str], str, str]:
    """Crate names (file names) of the 2019 index copy, its HEAD commit and commit date."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True, text=True
        ).stdout

    names = [p.rsplit("/", 1)[-1] for p in git("ls-tree", "-r", "--name-only", "HEAD").split()]
    head, date = git("log", "-1", "--format=%H %cI", "HEAD").split()
    return names, head, date


@dataclass
class PlanRow:
    name: str
    stratum: str
    rank: int | None
    near: str
    near_rank: int
    kind: str


def make_plan(top: list[str], longtail_names: list[str], seed: int) -> list[PlanRow]:
    """Every near-name in four seeded-shuffled strata, interleaved round-robin."""
    finder = NearFinder(top[:3000])
    strata: dict[str, list[PlanRow]] = {s: [] for s in STRATA}
    for rank, name in enumerate(top, start=1):
        near = finder.find(name)
        if near is not None:
            strata[f"popular-{near.relation}"].append(
                PlanRow(name, f"popular-{near.relation}", rank, near.top, near.top_rank, near.kind)
            )
    top_keys = {canonical(n) for n in top}
    seen: set[str] = set()
    for name in sorted(longtail_names):
        key = canonical(name)
        if key in top_keys or key in seen:
            continue
        seen.add(key)
        near = finder.find(name)
        if near is not None:
            strata[f"longtail-{near.relation}"].append(
                PlanRow(name, f"longtail-{near.relation}", None, near.top, near.top_rank, near.kind)
            )
    rng = random.Random(seed)
    for rows in strata.values():
        rng.shuffle(rows)
    plan: list[PlanRow] = []
    for i in range(max(len(r) for r in strata.values())):
        plan.extend(strata[s][i] for s in STRATA if i < len(strata[s]))
    return plan


def write_plan(path: Path, plan: list[PlanRow]) -> None:
    lines = ["# order\tname\tstratum\trank\tnear\tnear_rank\tkind\tindex_path"]
    for i, r in enumerate(plan, start=1):
        rank = "-" if r.rank is None else str(r.rank)
        lines.append(
            f"{i}\t{r.name}\t{r.stratum}\t{rank}\t{r.near}\t{r.near_rank}\t{r.kind}\t"
            f"{index_path(r.name)}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_plan(path: Path) -> list[PlanRow]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        _, name, stratum, rank, near, near_rank, kind, _ = line.split("\t")
        rows.append(
            PlanRow(name, stratum, None if rank == "-" else int(rank), near, int(near_rank), kind)
        )
    return rows


@dataclass
class Extract:
    name: str
    commit: str | None  # None: no index file in the stored copy
    total_chars: int = 0
    truncated: bool = False
    versions: list[dict[str, Any]] = field(default_factory=list)


class ExtractError(ValueError):
    """A line of index_extract.txt that does not parse (says which line and why)."""


def parse_extract(text: str) -> list[Extract]:
    """Parse the hand-written extract strictly: a typo in it must stop the build."""
    out: list[Extract] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if parts[0] == "@":
            out.append(_parse_header(parts, lineno))
            continue
        if not out or out[-1].commit is None:
            raise ExtractError(f"line {lineno}: version line outside a file entry")
        if len(parts) != 4:
            raise ExtractError(f"line {lineno}: want 'VERS PUBTIME y|n DEPS', got {line!r}")
        vers, pubtime, yanked, deps = parts
        try:
            Version.parse(vers)
        except ValueError as e:
            raise ExtractError(f"line {lineno}: {vers!r} is not a semver version: {e}") from e
        if pubtime != "-" and not _RFC3339.match(pubtime):
            raise ExtractError(f"line {lineno}: {pubtime!r} is not an RFC 3339 time")
        if yanked not in ("y", "n"):
            raise ExtractError(f"line {lineno}: yanked must be y or n, got {yanked!r}")
        if deps == "=":
            if not out[-1].versions:
                raise ExtractError(f"line {lineno}: '=' (same deps) on the first version line")
            dep_names = list(out[-1].versions[-1]["deps"])
        else:
            dep_names = [] if deps == "-" else deps.split(",")
        out[-1].versions.append(
            {
                "vers": vers,
                "pubtime": None if pubtime == "-" else pubtime,
                "yanked": yanked == "y",
                "deps": dep_names,
            }
        )
    for e in out:
        if e.commit is not None and not e.versions:
            raise ExtractError(f"{e.name}: index file entry without versions")
    return out


def _parse_header(parts: list[str], lineno: int) -> Extract:
    if len(parts) == 4 and parts[2] == "-" and parts[3] == "missing":
        return Extract(parts[1], None)
    if len(parts) not in (4, 5) or not re.fullmatch(r"[0-9a-f]{40}", parts[2]):
        raise ExtractError(f"line {lineno}: want '@ NAME COMMIT chars=N [more]'")
    if not parts[3].startswith("chars=") or not parts[3][6:].isdigit():
        raise ExtractError(f"line {lineno}: want chars=N, got {parts[3]!r}")
    if len(parts) == 5 and parts[4] != "more":
        raise ExtractError(f"line {lineno}: unknown flag {parts[4]!r}")
    return Extract(parts[1], parts[2], int(parts[3][6:]), truncated=len(parts) == 5)


def assemble(plan: list[PlanRow], extracts: list[Extract], meta: dict[str, str]) -> str:
    """legit.yaml text: header comment plus one entry per crate whose index file was read."""
    by_name = {r.name: r for r in plan}
    crates: list[dict[str, Any]] = []
    drops: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    newest = ""
    seen: set[str] = set()
    for e in extracts:
        row = by_name.get(e.name)
        if row is None:
            raise ExtractError(f"{e.name}: not in the look-up plan")
        if e.name in seen:
            raise ExtractError(f"{e.name}: read twice")
        seen.add(e.name)
        if e.commit is None:
            drops[row.stratum] += 1
            continue
        counts[row.stratum] += 1
        for v in e.versions:
            if v["pubtime"] and (not newest or _utc(v["pubtime"]) > _utc(newest)):
                newest = v["pubtime"]
        crates.append(
            {
                "name": row.name,
                "group": row.stratum.split("-")[0],
                "rank": row.rank,
                "near": row.near,
                "near_rank": row.near_rank,
                "relation": row.stratum.split("-")[1],
                "combo_kind": None if row.kind == "edit" else row.kind,
                "index_source": f"{INDEX_REPO} {index_path(row.name)} @ {e.commit}",
                "index_chars": e.total_chars,
                "truncated": e.truncated,
                "versions": e.versions,
            }
        )
    looked_up = {r.name for r in plan[: len(extracts)]}
    if looked_up != seen:
        raise ExtractError(
            "the extract must follow the plan order without gaps; missing: "
            + ", ".join(sorted(looked_up - seen)[:10])
        )
    population = Counter(r.stratum for r in plan)
    header = _header(meta, population, counts, drops, newest, len(extracts))
    body = yaml.safe_dump(
        {"snapshot_date": newest, "crates": crates},
        sort_keys=False,
        width=100,
        default_flow_style=None,
    )
    return header + body


def _utc(t: str) -> datetime:
    return datetime.fromisoformat(t.replace("Z", "+00:00"))


def _header(
    meta: dict[str, str],
    population: Counter[str],
    counts: Counter[str],
    drops: Counter[str],
    newest: str,
    looked_up: int,
) -> str:
    def strata(c: Counter[str]) -> str:
        return ", ".join(f"{s} {c[s]}" for s in STRATA)

    lines = [
        "# Legitimate near-names of top-3,000 crates: the dev set's negatives (issue 11).",
        "# Built by `python -m bench.devset.build_legit plan` + `assemble`; see README.md here.",
        f"# Read date: {READ_DATE}. snapshot_date (newest pubtime seen): {newest}.",
        f"# Top names: ranks 1-3000 of {meta['top_csv']} (the top-20k list, 2024-03-18).",
        f"# Long-tail names: crate file names of kornelski/crates.io-index @ {meta['idx_commit']}"
        f" ({meta['idx_date']}), minus the top-20k list.",
        f"# Version histories: {INDEX_REPO} (stored copy, read with the search tool's"
        " read_file; the commit of each file is in index_source).",
        f"# Near-names found (population): {strata(population)}.",
        f"# Sampling: each stratum shuffled with seed {SEED}, strata interleaved round-robin;"
        f" the first {looked_up} plan rows were looked up.",
        f"# Kept: {strata(counts)} (total {sum(counts.values())}).",
        f"# Dropped (no index file in the current copy): {strata(drops)}.",
        "# truncated: true = only the first 16,000 characters of the index file were read"
        " (oldest versions; the last partial line dropped); index_chars = the file's size.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.devset.build_legit",
        description="Plan the look-ups for, and assemble, bench/devset/legit.yaml.",
    )
    parser.add_argument("step", choices=("plan", "assemble"))
    parser.add_argument("--top-csv", type=Path, default=DEFAULT_TOP_CSV)
    parser.add_argument(
        "--index-git",
        type=Path,
        default=DEFAULT_INDEX_GIT,
        help="bare git dir of the 2019 crates.io index copy",
    )
    parser.add_argument("--plan", type=Path, default=HERE / "lookup_plan.tsv")
    parser.add_argument("--extract", type=Path, default=HERE / "index_extract.txt")
    parser.add_argument("--out", type=Path, default=HERE / "legit.yaml")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    top = load_top_csv(args.top_csv)
    names, head, date = index_2019_names(args.index_git)
    if args.step == "plan":
        plan = make_plan(top, names, args.seed)
        write_plan(args.plan, plan)
        by = Counter(r.stratum for r in plan)
        print(f"{len(plan)} near-names: " + ", ".join(f"{s} {by[s]}" for s in STRATA))
        return 0
    try:
        extracts = parse_extract(args.extract.read_text(encoding="utf-8"))
        text = assemble(
            read_plan(args.plan),
            extracts,
            {"top_csv": args.top_csv.name, "idx_commit": head, "idx_date": date},
        )
    except ExtractError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({text.count(chr(10) + '- name:')} crates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
