"""Content findings on the Debian-packaged crates: how many crates show each kind, per context.

    python -m bench.scan_findings [--list] [--kind KIND] [--context CONTEXT] [--limit N]

Packs every crate under /usr/share/cargo/registry (real, legitimate code), scans it, and
prints a table: for each finding kind, the number of crates with at least one finding of
that kind in each context (build, macro, runtime, other). `--list` prints every finding
(file, line, item), to review them by hand. Precision matters: a decision that weighs
these must not stop legitimate crates, so the build and macro columns should stay near 0.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mirror.scan.capabilities import CapabilityReport, scan_crate
from mirror.scan.findings import context_of
from mirror.scan.report import Context, Finding
from tests.fixtures.crates import DEBIAN_REGISTRY, pack_crate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print every finding")
    parser.add_argument("--kind", choices=[f.value for f in Finding], help="only this kind")
    parser.add_argument("--context", choices=[c.value for c in Context], help="only this context")
    parser.add_argument("--limit", type=int, default=0, help="scan only the first N crates")
    args = parser.parse_args()
    dirs = sorted(p for p in DEBIAN_REGISTRY.iterdir() if p.is_dir())
    if args.limit:
        dirs = dirs[: args.limit]
    reports = [
        scan_crate(pack_crate(d)) for d in tqdm(dirs, desc="scanning", unit="crate", leave=False)
    ]
    crates: dict[tuple[Finding, Context], set[str]] = defaultdict(set)
    for report in reports:
        for finding, evidence in report.findings.items():
            for e in evidence:
                context = context_of(report, e.file)
                if _shown(args, finding, context):
                    crates[(finding, context)].add(report.name)
                    if args.list:
                        print(f"{report.name}: {finding.value} [{context.value}] {e}")
    _table(reports, crates)
    return 0


def _shown(args: argparse.Namespace, finding: Finding, context: Context) -> bool:
    return (args.kind is None or finding.value == args.kind) and (
        args.context is None or context.value == args.context
    )


def _table(
    reports: list[CapabilityReport], crates: dict[tuple[Finding, Context], set[str]]
) -> None:
    contexts = list(Context)
    print(f"{len(reports)} crates; crates with at least one finding, per kind and context:")
    print(f"{'finding':<24}" + "".join(f"{c.value:>9}" for c in contexts))
    for finding in Finding:
        row = "".join(f"{len(crates.get((finding, c), ())):>9}" for c in contexts)
        print(f"{finding.value:<24}{row}")


if __name__ == "__main__":
    sys.exit(main())
