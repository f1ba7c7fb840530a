"""The name check of the malicious-crate rule (`NameIndex.facts`: typo-like near-names,
combosquats, the name's own rank) at 3,000 and 20,000 protected names.

Run from the repository root: python -m bench.names_bench [--corpus FILE] [--checks N]
Prints construction time, checks/s and µs/check over a mix of real names (protected and
not), generated squats and random names. No pass/fail: this is a measurement (the target is
<= 20 µs per check at 20,000 names).
"""

from __future__ import annotations

import argparse
import random
import string
import time
from pathlib import Path

from mirror.policy.names import NameIndex
from mirror.sources.corpus import load_corpus

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "policies" / "popular-crates.txt"


def squat_of(name: str, rng: random.Random) -> str:
    """One plausible squat of `name`: a typo, a separator change, an affix or a suffix."""
    kind = rng.randrange(6)
    i = rng.randrange(len(name))
    if kind == 0:
        return name[:i] + name[i + 1 :] if len(name) > 2 else name + "s"
    if kind == 1:
        return name[:i] + name[i] + name[i:]
    if kind == 2 and i + 1 < len(name):
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    if kind == 3:
        return (
            name.replace("-", "").replace("_", "") if ("-" in name or "_" in name) else name + "-rs"
        )
    if kind == 4:
        return name + "2"
    return name[:i] + rng.choice(string.ascii_lowercase) + name[i + 1 :]


def workloads(
    names: list[str], protected: int, size: int, rng: random.Random
) -> dict[str, list[str]]:
    """Named query sets, and a realistic mix: 40% protected names, 20% real names outside
    the corpus, 30% squats of protected names, 10% random names."""
    # At 20,000 every real name we have is protected: that share of the mix is protected too.
    outside = names[protected:] or names
    sets = {
        "protected": [rng.choice(names[:protected]) for _ in range(size)],
        "real, unprotected": [rng.choice(outside) for _ in range(size)],
        "squats": [squat_of(rng.choice(names[:protected]), rng) for _ in range(size)],
        "random": [random_name(rng) for _ in range(size)],
    }
    mix = []
    for i in range(size):
        roll = rng.random()
        kind = "protected" if roll < 0.4 else "real, unprotected" if roll < 0.6 else "squats"
        mix.append(sets["random" if roll >= 0.9 else kind][i])
    sets["mix"] = mix
    if not names[protected:]:
        del sets["real, unprotected"]
    return sets


def random_name(rng: random.Random) -> str:
    rest = "".join(rng.choice(string.ascii_lowercase + "-_") for _ in range(rng.randint(2, 19)))
    return rng.choice(string.ascii_lowercase) + rest


def best_time(index: NameIndex, queries: list[str], repeats: int) -> float:
    """Seconds for one pass, best of `repeats` (the machine may be shared)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for q in queries:
            index.facts(q)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.names_bench",
        description="Measure the name check (NameIndex.facts) at 3,000 and 20,000 names.",
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--checks", type=int, default=10_000, help="queries per set")
    parser.add_argument("--repeats", type=int, default=5, help="passes per set (best kept)")
    args = parser.parse_args()
    names = load_corpus(args.corpus)
    rng = random.Random(20240318)
    for size in (3_000, 20_000):
        start = time.perf_counter()
        index = NameIndex(names, protect_top=size)
        built = time.perf_counter() - start
        print(f"{size:,} protected names: index built in {built:.2f} s")
        for label, queries in workloads(names, size, args.checks, rng).items():
            elapsed = best_time(index, queries, args.repeats)
            facts = [index.facts(q) for q in queries]
            flagged = sum(1 for f in facts if f.typo or f.combo) / len(queries)
            print(
                f"  {label:<18} {len(queries) / elapsed:>9,.0f} checks/s "
                f"{elapsed / len(queries) * 1e6:>6.1f} µs/check  {flagged:>4.0%} flagged"
            )


if __name__ == "__main__":
    main()
