"""Drive wrk (a separate process, C + epoll) against one server and parse what it measured.

wrk's own text output rounds latencies to two digits and changes units (us/ms/s), so a small
Lua script does the reporting instead: `done()` prints one JSON line with the exact counts and
percentiles (microseconds). The same script rotates through a list of request paths, each with
optional extra headers: that is how the index runs cover every index file, and how the 304 run
sends each path's If-None-Match with the ETag *that server* gave for it.
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LoadResult",
    "Target",
    "WrkMissing",
    "check_same_bytes",
    "conditional_targets",
    "fetch_all",
    "http_get",
    "parse_wrk_report",
    "raise_nofile_limit",
    "require_tools",
    "run_wrk",
    "write_targets",
]

REPORT_MARKER = "BENCH-JSON "
INSTALL_HINT = "apt-get install nginx-light wrk"

# Reads "path\theader: value\theader: value" lines; cycles through them per connection.
# wrk.format() is done once in init(), so request() costs one table index per request.
_LUA = r"""
local targets = {}

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    local path = nil
    local headers = {}
    for field in string.gmatch(line, "[^\t]+") do
      if path == nil then
        path = field
      else
        local k, v = string.match(field, "^([^:]+):%s*(.*)$")
        headers[k] = v
      end
    end
    if path ~= nil then
      table.insert(targets, wrk.format("GET", path, headers))
    end
  end
  f:close()
  -- Start threads at different offsets so they do not hit the same file in lock-step.
  counter = (id or 0) * 7919
end

local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function request()
  counter = counter + 1
  return targets[(counter % #targets) + 1]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    "BENCH-JSON ", summary.requests, summary.duration, summary.bytes, e.connect, e.read,
    e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
"""


class WrkMissing(RuntimeError):
    """wrk or nginx is not installed."""


@dataclass(frozen=True)
class Target:
    """One request wrk sends: a path plus extra headers (e.g. If-None-Match)."""

    path: str
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class LoadResult:
    requests: int
    duration_s: float
    bytes: int
    errors: int  # socket errors (connect/read/write/timeout) plus HTTP status >= 400
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    connections: int
    threads: int

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def bytes_per_request(self) -> float:
        return self.bytes / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "requests_per_s": round(self.requests_per_s, 1),
            "bytes_per_request": round(self.bytes_per_request, 1),
            "errors": self.errors,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "connections": self.connections,
            "threads": self.threads,
        }


def require_tools() -> None:
    """Refuse to start without wrk and nginx, saying how to get them."""
    missing = [tool for tool in ("wrk", "nginx") if _which(tool) is None]
    if missing:
        raise WrkMissing(f"{' and '.join(missing)} not found; install with: {INSTALL_HINT}")


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")


def raise_nofile_limit() -> None:
    """Lift the soft open-files limit to the hard one (1,000 connections need > 1,024 fds).

    Used as `preexec_fn` for wrk, nginx and the mirror, and in the harness itself.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft == resource.RLIM_INFINITY or soft >= target:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def write_targets(path: Path, targets: Sequence[Target]) -> None:
    """The target file the Lua script reads: one request per line, tab-separated headers."""
    lines = []
    for t in targets:
        if "\t" in t.path or "\n" in t.path:
            raise ValueError(f"unusable path {t.path!r}")
        fields = [t.path] + [f"{k}: {v}" for k, v in (t.headers or {}).items()]
        lines.append("\t".join(fields))
    path.write_text("\n".join(lines) + "\n")


def parse_wrk_report(stdout: str, connections: int, threads: int) -> LoadResult:
    """The LoadResult from wrk's stdout; raises ValueError if the script's line is missing."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(REPORT_MARKER):
            data = json.loads(line[len(REPORT_MARKER) :])
            break
    else:
        raise ValueError(f"no {REPORT_MARKER.strip()} line in wrk output:\n{stdout[-2000:]}")
    errors = sum(
        int(data[k])
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return LoadResult(
        requests=int(data["requests"]),
        duration_s=int(data["duration_us"]) / 1e6,
        bytes=int(data["bytes"]),
        errors=errors,
        p50_ms=int(data["p50_us"]) / 1000,
        p90_ms=int(data["p90_us"]) / 1000,
        p99_ms=int(data["p99_us"]) / 1000,
        max_ms=int(data["max_us"]) / 1000,
        connections=connections,
        threads=threads,
    )


def run_wrk(
    base_url: str,
    targets: Sequence[Target],
    *,
    connections: int,
    duration: float,
    threads: int = 1,
    timeout: float = 10.0,
) -> LoadResult:
    """Load `base_url` with `connections` keep-alive connections for `duration` seconds."""
    if not targets:
        raise ValueError("no targets to load")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "rotate.lua"
        script.write_text(_LUA)
        target_file = Path(tmp) / "targets.tsv"
        write_targets(target_file, targets)
        cmd = [
            _which("wrk") or "wrk",
            f"-t{threads}",
            f"-c{max(connections, threads)}",
            f"-d{max(1, round(duration))}s",
            f"--timeout={max(1, round(timeout))}s",
            "-s",
            str(script),
            base_url.rstrip("/") + targets[0].path,
            "--",
            str(target_file),
        ]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=duration + timeout + 60,
            check=False,
            preexec_fn=raise_nofile_limit,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return parse_wrk_report(proc.stdout, connections, threads)


# -- plain HTTP helpers for preparing a run -------------------------------------------------


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, str | None]:
    """Status, body and ETag of one GET (error statuses are returned, not raised)."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read(), resp.headers.get("ETag")
    except urllib.error.HTTPError as e:
        return e.code, b"", e.headers.get("ETag")


def fetch_all(base: str, paths: Sequence[str]) -> None:
    for path in paths:
        status, _, _ = http_get(base + path)
        if status != 200:
            raise RuntimeError(f"warming {base}{path}: HTTP {status}")


def check_same_bytes(mirror: str, nginx: str, paths: Sequence[str]) -> None:
    """nginx must serve exactly what the mirror serves, or the comparison means nothing."""
    for path in paths:
        a, b = http_get(mirror + path)[1], http_get(nginx + path)[1]
        if a != b:
            raise RuntimeError(
                f"{path}: mirror and nginx differ ({len(a)} vs {len(b)} bytes, sha256 "
                f"{hashlib.sha256(a).hexdigest()[:12]} vs {hashlib.sha256(b).hexdigest()[:12]})"
            )


def conditional_targets(base: str, paths: Sequence[str]) -> list[Target]:
    """Each path with this server's own ETag as If-None-Match (checked to answer 304)."""
    targets = []
    for path in paths:
        _, _, etag = http_get(base + path)
        if etag is None:
            raise RuntimeError(f"{base}{path} sent no ETag")
        status, _, _ = http_get(base + path, {"If-None-Match": etag})
        if status != 304:
            raise RuntimeError(f"{base}{path} answered {status} to its own ETag, not 304")
        targets.append(Target(path, {"If-None-Match": etag}))
    return targets
