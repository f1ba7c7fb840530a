"""Throughput of `TyposquatIndex.check` at 3,000 and 20,000 protected names.

Run: python bench/typosquat_bench.py [--corpus policies/popular-crates.txt] [--checks N]
Prints construction time, checks/s and µs/check over a mix of real names (protected and
not), generated squats and random names. No pass/fail: this is a measurement.
"""

from __future__ import annotations

import argparse
import random
import string
import time
from pathlib import Path

from mirror.corpus import load_corpus
from mirror.policy.typosquat import TyposquatIndex

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
        return name.replace("-", "").replace("_", "") if ("-" in name or "_" in name) else name + "-rs"
    if kind == 4:
        return name + "2"
    return name[:i] + rng.choice(string.ascii_lowercase) + name[i + 1 :]


def workload(names: list[str], protected: int, size: int, rng: random.Random) -> list[str]:
    """40% protected names, 20% real unprotected names, 30% squats, 10% random names."""
    out: list[str] = []
    for _ in range(size):
        roll = rng.random()
        if roll < 0.4:
            out.append(rng.choice(names[:protected]))
        elif roll < 0.6:
            out.append(rng.choice(names[protected:] or names))
        elif roll < 0.9:
            out.append(squat_of(rng.choice(names[:protected]), rng))
        else:
            length = rng.randint(3, 20)
            out.append(rng.choice(string.ascii_lowercase) + "".join(
                rng.choice(string.ascii_lowercase + "-_") for _ in range(length - 1)
            ))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--checks", type=int, default=50_000, help="checks per corpus size")
    args = parser.parse_args()
    names = load_corpus(args.corpus)
    rng = random.Random(20240318)
    for size in (3_000, 20_000):
        start = time.perf_counter()
        index = TyposquatIndex(names[:size])
        built = time.perf_counter() - start
        queries = workload(names, size, args.checks, rng)
        flagged = 0
        start = time.perf_counter()
        for q in queries:
            if index.check(q) is not None:
                flagged += 1
        elapsed = time.perf_counter() - start
        print(
            f"{size:>6} protected: built in {built:.2f} s; {len(queries) / elapsed:,.0f} checks/s, "
            f"{elapsed / len(queries) * 1e6:.1f} µs/check ({flagged / len(queries):.0%} flagged)"
        )


if __name__ == "__main__":
    main()
