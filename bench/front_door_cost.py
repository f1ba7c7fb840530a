"""CPU time the mirror spends per warm index hit: front door vs the aiohttp handlers.

    python -m bench.front_door_cost [--seconds N] [--connections C]

Starts the fixture upstream (serde and itoa from Debian's sources) and, one after the other,
two mirrors on it: one as shipped, one with `prepared_bytes: 0` (every request through the
handlers). Each gets the same warm index URL from wrk for N seconds; the mirror process's
CPU time (user + system, from /proc) divided by the requests served is the cost per hit.
CPU time, unlike req/s, is barely moved by other work on the machine. No pass/fail.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from bench.load import require_tools
from tests.fixtures.crates import debian_crate_dir
from tests.fixtures.registry import build_registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

VARIANTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("front door", {}),
    ("handlers only", {"CRATE_MIRROR_PREPARED_BYTES": "0"}),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per variant")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    args = parser.parse_args(argv)
    require_tools()
    with tempfile.TemporaryDirectory(prefix="front-door-") as tmp:
        root = Path(tmp)
        crates = [debian_crate_dir(name) for name in ("itoa", "serde")]
        registry = build_registry(root / "registry", crates)
        with FakeUpstream(registry).in_thread() as upstream:
            costs = {}
            for label, env in VARIANTS:
                costs[label] = _measure(root, upstream.url, label, env, args)
    front, handlers = costs["front door"], costs["handlers only"]
    print(f"handlers / front door CPU per hit: {handlers / front:.1f}x")
    return 0


def _measure(
    root: Path, upstream: str, label: str, env: dict[str, str], args: argparse.Namespace
) -> float:
    cache = root / f"cache-{len(env)}"
    mirror = MirrorProcess(
        cache, upstream=upstream + "/", env={**env, "CRATE_MIRROR_LOG_LEVEL": "warning"}
    ).start()
    try:
        url = mirror.url + "/index/se/rd/serde"
        for _ in range(2):  # the first is decided by the handler, which prepares the second
            with urllib.request.urlopen(url, timeout=10) as resp:
                resp.read()
        assert mirror.proc is not None  # start() returned, so the process is running
        pid = mirror.proc.pid
        before = _cpu_seconds(pid)
        wrk = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", url]
        out = subprocess.run(wrk, capture_output=True, text=True, check=True).stdout
        used = _cpu_seconds(pid) - before
    finally:
        mirror.stop()
    requests = int(_field(r"(\d+) requests in", out))
    rate = float(_field(r"Requests/sec:\s+(\S+)", out))
    per_hit = used / requests * 1e6
    print(
        f"{label:>14}: {requests:>8} requests, {rate:>9,.0f} req/s, "
        f"{used:.2f} s CPU, {per_hit:.1f} µs CPU per hit"
    )
    return per_hit


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _field(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    if found is None:
        raise SystemExit(f"unexpected wrk output:\n{text}")
    return found.group(1)


if __name__ == "__main__":
    sys.exit(main())
