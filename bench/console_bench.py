"""The review console with a million audit events: how long each page takes.

    PYTHONPATH=. python bench/console_bench.py [--events 1000000] [--repeat 5] [--dir DIR]

Writes a hash chain of N events directly (the real `prepare`/`link` hashing, batched: far
faster than queueing through `AuditLog`; the chain verifies), a realistic mix: mostly allows
of a few thousand crates by a few hundred clients, blocks by several rules, quarantines,
warnings, approvals, near names. Then builds the query index from the files (timed, with
`audit verify`'s checks on every line), starts the real console (an aiohttp app with an admin
token) and times every page through HTTP, `--repeat` times each after one untimed request
(SQLite's page cache warm, as on a server in use). The target is 200 ms per
page. Nothing here is a pass/fail test; tests/unit/audit/test_index.py checks, on a small
log, that every query these pages run walks an index (EXPLAIN QUERY PLAN).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mirror.audit.event import ZERO_HASH, AuditEvent, link, prepare
from mirror.audit.files import chain_file_name
from mirror.audit.index import AuditIndex

TARGET_MS = 200.0
FILE_BYTES = 64 * 2**20  # as the writer rotates


def generate(directory: Path, events: int, seed: int = 13) -> None:
    """Write `events` chained events into `directory` (rotating like the writer)."""
    rng = random.Random(seed)
    crates = [f"crate{i}" for i in range(5000)]
    clients = [f"ci-{i} (10.0.{i // 250}.{i % 250})" for i in range(300)]
    versions = [f"1.{minor}.{patch}" for minor in range(4) for patch in range(6)]
    stamp = time.time() - events * 0.01  # 100 events a second, ending now
    seq, prev, number, size = 0, ZERO_HASH, 1, 0
    out = open(directory / chain_file_name(number), "wb")  # noqa: SIM115 (rotated below)
    try:
        for i in range(events):
            event = _event(rng, crates, clients, versions, i)
            seq += 1
            line, prev = link(prepare(event, stamp + i * 0.01), seq, prev)
            data = line.encode("ascii") + b"\n"
            if size and size + len(data) > FILE_BYTES:
                out.close()
                number, size = number + 1, 0
                out = open(directory / chain_file_name(number), "wb")  # noqa: SIM115
            out.write(data)
            size += len(data)
    finally:
        out.close()


def _event(
    rng: random.Random, crates: list[str], clients: list[str], versions: list[str], i: int
) -> AuditEvent:
    crate, client, version = rng.choice(crates), rng.choice(clients), rng.choice(versions)
    roll = rng.random()
    rid = f"{i:016x}"
    if roll < 0.90:
        route = "index" if roll < 0.6 else "download"
        return AuditEvent("allow", "default", "allowed", route=route, crate=crate,
                          version=version if route == "download" else None, request_id=rid,
                          client=client, details={"count": rng.randint(1, 50)})  # fmt: skip
    if roll < 0.93:
        added = {"net": [{"file": "build.rs", "line": 3, "item": "use std::net::TcpStream"}]}
        return AuditEvent("block", "capabilities", f"{crate} {version} adds: net (build.rs:3)",
                          route="download", crate=crate, version=version, request_id=rid,
                          client=client, details={"added": added})  # fmt: skip
    if roll < 0.95:
        near = {"protected": rng.choice(crates), "check": "edit", "distance": 1}
        return AuditEvent("block", "typosquat", f"{crate}_ looks like a typo", route="index",
                          crate=crate + "_", request_id=rid, client=client,
                          details={"near_name": near})  # fmt: skip
    if roll < 0.96:
        risk = {
            "verdict": "quarantine",
            "score": 6.5,
            "signals": [
                {"id": "new_crate", "points": 2, "text": "first published 9 hours ago"},
                {"id": "build_network", "points": 4.5, "text": "build.rs opens a socket"},
            ],
        }
        return AuditEvent("quarantine", "risk", f"`{crate}` is quarantined (score 6.5)",
                          route="download", crate=crate, version=version, request_id=rid,
                          client=client, details={"risk": risk})  # fmt: skip
    if roll < 0.99:
        return AuditEvent("warn", "yanked", f"{crate} {version} is yanked", route="download",
                          crate=crate, version=version, request_id=rid, client=client)  # fmt: skip
    who = {"by": "bob", "why": "reviewed"}
    return AuditEvent("approve", "capabilities", f"bob approved net for {crate}", route="cli",
                      crate=crate, version=version, details=who)  # fmt: skip


PAGES = [
    ("pending reviews", "/-/pending"),
    ("decisions, newest", "/-/decisions"),
    ("decisions, blocks", "/-/decisions?action=block"),
    ("decisions, one crate", "/-/decisions?crate=crate42"),
    ("decisions, one client", "/-/decisions?client=ci-7+(10.0.0.7)"),
    ("decisions, rule + crate", "/-/decisions?rule=capabilities&crate=crate4242"),
    ("decisions, last hour", "/-/decisions?since=1h&action=warn"),
    ("decisions, a day ago", "/-/decisions?until=24h"),
    ("decisions, older page", "/-/decisions?action=block&before={middle}"),
    ("decisions, request id", "/-/decisions?request_id={middle_rid}"),
    ("an event", "/-/events/{middle}"),
    ("near names", "/-/near-names"),
    ("status", "/-/status"),
]


async def time_pages(
    directory: Path, repeat: int, events: int
) -> list[tuple[str, list[float], int]]:
    """Each page through the real console (HTTP, an admin bearer token), `repeat` times."""
    from aiohttp.test_utils import TestClient, TestServer

    from mirror.app import create_app
    from mirror.config import load_settings
    from mirror.sources.tokens import admin_tokens

    with tempfile.TemporaryDirectory() as tmp:
        admins = Path(tmp) / "admins.json"
        token = admin_tokens(admins).add("bench")
        settings = load_settings(None, env={}, overrides={
            "cache_dir": Path(tmp) / "cache", "audit_dir": directory, "offline": True,
            "admin_tokens": admins})  # fmt: skip
        app = create_app(settings)
        async with TestClient(TestServer(app)) as client:
            headers = {"Authorization": f"Bearer {token}"}
            results = []
            pending = await client.get("/-/pending", headers=headers)
            body = await pending.text()
            review = body.split('href="/-/review?', 1)
            middle = events // 2
            pages = [
                (n, p.format(middle=middle, middle_rid=f"{middle - 1:016x}")) for n, p in PAGES
            ]
            if len(review) == 2:
                pages.append(("a review", "/-/review?" + review[1].split('"', 1)[0]
                              .replace("&amp;", "&")))  # fmt: skip
            for name, path in pages:
                await (await client.get(path, headers=headers)).read()  # warm SQLite's cache
                times = []
                status = 0
                for _ in range(repeat):
                    start = time.perf_counter()
                    resp = await client.get(path, headers=headers)
                    await resp.read()
                    times.append((time.perf_counter() - start) * 1000)
                    status = resp.status
                results.append((name, times, status))
            return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the log")
    parser.add_argument("--repeat", type=int, default=5, help="requests per page")
    parser.add_argument("--dir", type=Path, help="keep the log here (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.dir or Path(tmp) / "audit"
        directory.mkdir(parents=True, exist_ok=True)
        if not any(directory.glob("audit-*.jsonl")):
            start = time.perf_counter()
            generate(directory, args.events)
            print(f"wrote {args.events:,} events in {time.perf_counter() - start:.1f} s",
                  file=sys.stderr)  # fmt: skip
        index = AuditIndex(directory)
        start = time.perf_counter()
        added = index.refresh()
        built = time.perf_counter() - start
        status = index.status()
        size = sum(p.stat().st_size for p in directory.glob("audit-index.sqlite*")) / 2**20
        index.close()
        how = (f"{added:,} verified and indexed in {built:.1f} s ({added / built:,.0f}/s)"
               if added else "index already current")  # fmt: skip
        print(f"index: {status.events:,} events; {how}; {size:.0f} MiB; "
              f"chain {'intact' if status.broken is None else 'BROKEN'}")  # fmt: skip
        results = asyncio.run(time_pages(directory, args.repeat, status.events))
        worst = 0.0
        print(f"{'page':<26} {'median ms':>10} {'max ms':>8}  status")
        for name, times, code in results:
            worst = max(worst, max(times))
            print(f"{name:<26} {statistics.median(times):>10.1f} {max(times):>8.1f}  {code}")
        verdict = "met" if worst <= TARGET_MS else "NOT met"
        print(f"slowest page {worst:.1f} ms: target {TARGET_MS:.0f} ms {verdict}")
        return 0 if all(code == 200 for _, _, code in results) else 1


if __name__ == "__main__":
    sys.exit(main())
