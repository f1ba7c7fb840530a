"""Judging one index file on a cold cache, by its number of versions, with a policy.

    python -m bench.views_bench [--policy FILE] [--versions 1,30,300] [--rounds N]

The benchmark registry's crates have one version each (Debian packages one); on crates.io a
popular crate has hundreds, and the mirror judges every version of an index file the first
time it is asked for: the risk rule's view (`Gate.risk_view`) and the served view with the
version rules and capability verdicts (`Gate.served_index`). This times both on synthetic
index files (distinct checksums each round, so nothing is known yet), offline, through the
same serving core `serve` opens. Prints medians in ms. No pass/fail: a measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from mirror.config import Settings
from mirror.index import IndexFile
from mirror.serving.index_cache import IndexEntry
from mirror.serving.open import open_mirror

DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"


def synthetic_entry(name: str, versions: int, round_no: int) -> IndexEntry:
    """`versions` releases of `name`, each depending on serde_derive, with checksums no
    other round shares."""
    dep = {
        "name": "serde_derive",
        "req": "^1",
        "features": [],
        "optional": True,
        "default_features": True,
        "target": None,
        "kind": "normal",
    }
    lines = [
        json.dumps(
            {
                "name": name,
                "vers": f"1.{i // 50}.{i % 50}",
                "deps": [dep],
                "cksum": f"{round_no:032x}{i:032x}",
                "features": {},
                "pubtime": "2024-01-01T00:00:00Z",
            }
        )
        for i in range(versions)
    ]
    body = ("\n".join(lines) + "\n").encode()
    return IndexEntry(name, IndexFile.parse(body), None, None, fresh_until=0.0)


async def measure(policy: Path, counts: list[int], rounds: int) -> dict[int, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(cache_dir=Path(tmp) / "cache", offline=True, policy=policy)
        core, close = open_mirror(settings)
        try:
            await core.start()
            out = {}
            round_no = 0
            for count in counts:
                risk, served = [], []
                for _ in range(rounds):
                    round_no += 1
                    entry = synthetic_entry("serde", count, round_no)
                    start = time.perf_counter()
                    await core.gate.risk_view(entry, core.evidence.view)
                    judged = time.perf_counter()
                    core.gate.served_index(entry)
                    risk.append(judged - start)
                    served.append(time.perf_counter() - judged)
                out[count] = (statistics.median(risk) * 1e3, statistics.median(served) * 1e3)
            return out
        finally:
            await close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="policy file")
    parser.add_argument("--versions", default="1,30,300", help="versions per index file")
    parser.add_argument("--rounds", type=int, default=15, help="index files per size")
    args = parser.parse_args()
    counts = [int(v) for v in args.versions.split(",")]
    for count, (risk, served) in asyncio.run(measure(args.policy, counts, args.rounds)).items():
        print(f"{count:5d} versions: risk view {risk:6.2f} ms, served view {served:6.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
