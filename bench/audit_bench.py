"""Micro-benchmark: what `AuditLog.record()` costs the caller, and the flush throughput.

    PYTHONPATH=. python bench/audit_bench.py [--events 200000] [--fsync]

The server calls record() on every request, on the event loop, so its cost per call is the
number that matters (target: a few microseconds). Flush throughput says how many events per
second the background thread can chain and write before the queue grows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mirror.audit import AuditEvent, AuditLog, verify_chain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000, help="events to record")
    parser.add_argument("--fsync", action="store_true", help="fsync each batch")
    args = parser.parse_args()
    event = AuditEvent(
        "allow", "default", "no rule matched", route="download", crate="serde",
        version="1.0.215", request_id="0f3c9a1e2b4d", client="127.0.0.1",
        policy_digest="ab" * 32, cksum="cd" * 32,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        log = AuditLog(directory, fsync=args.fsync)
        per_call: list[float] = []
        for _ in range(args.events // 1000):
            start = time.perf_counter_ns()
            for _ in range(1000):
                log.record(event)
            per_call.append((time.perf_counter_ns() - start) / 1000)
        flush_start = time.perf_counter()
        log.close()
        recorded_at = time.perf_counter()
        per_call.sort()
        print(f"record(): median {per_call[len(per_call) // 2] / 1000:.2f} µs/call, "
              f"p99 {per_call[int(len(per_call) * 0.99)] / 1000:.2f} µs/call "
              "(includes the background thread competing for the GIL)")  # fmt: skip
        result = verify_chain(directory)
        verify_time = time.perf_counter() - recorded_at
        print(f"close() drained the rest in {recorded_at - flush_start:.2f} s; "
              f"chain: {result.events} events in {result.files} files, ok={result.ok}")  # fmt: skip
        print(f"verify: {result.events / verify_time:,.0f} events/s")

        # No background flushes here: one flush() of everything measures the writer alone.
        log = AuditLog(directory, flush_interval=3600, batch_size=args.events + 1, fsync=args.fsync)
        for _ in range(args.events):
            log.record(event)
        flush_begin = time.perf_counter()
        log.flush()
        elapsed = time.perf_counter() - flush_begin
        log.close()
        print(f"flush(): {args.events / elapsed:,.0f} events/s chained and written")


if __name__ == "__main__":
    main()
