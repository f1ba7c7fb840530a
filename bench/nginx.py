"""nginx as the reference for "just serving files": same bytes, same URL paths as the mirror.

The harness starts nginx as a non-daemon child with its own prefix, pid file and logs in a
temporary directory (nothing under /etc/nginx or /var/log is read or written). It serves a
static tree laid out like a fixture registry:

    ROOT/index/<sparse index path>        GET /index/<path>       (the same bytes the mirror
    ROOT/index/config.json                GET /index/config.json   serves with no policy)
    ROOT/crates/NAME/NAME-VERSION.crate   GET /api/v1/crates/NAME/VERSION/download

`sendfile on` and `etag on` (ETag/If-None-Match -> 304, as the mirror does), access log off
(the mirror's access log is off too), keep-alive unlimited per connection like aiohttp's,
and nginx's default listen backlog (511), not a tuned one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.load import raise_nofile_limit

__all__ = ["NginxServer", "nginx_config"]

START_TIMEOUT = 15.0  # seconds until nginx answers


def nginx_config(root: Path, prefix: Path, port: int, workers: int) -> str:
    """The whole nginx.conf; every path nginx writes is under `prefix`."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read a 0700 temp dir
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 16384;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;

events {{
    worker_connections 8192;
    multi_accept on;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    etag on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    server_tokens off;
{temp}

    server {{
        listen 127.0.0.1:{port} reuseport;
        root {root};

        location = /index/config.json {{
            default_type application/json;
        }}
        location /index/ {{
            types {{ }}
            default_type text/plain;
        }}
        location ~ "^/api/v1/crates/([^/]+)/([^/]+)/download$" {{
            types {{ }}
            default_type application/x-tar;
            alias {root}/crates/$1/$1-$2.crate;
        }}
        location = /healthz {{
            return 200 "ok\\n";
        }}
        location / {{
            return 404;
        }}
    }}
}}
"""


class NginxServer:
    """`with NginxServer(root, prefix, port, workers) as nginx:` serves until the block ends."""

    def __init__(self, root: Path, prefix: Path, port: int, workers: int) -> None:
        self.root = root
        self.prefix = prefix
        self.port = port
        self.workers = workers
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NginxServer:
        self.prefix.mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(nginx_config(self.root, self.prefix, self.port, self.workers))
        log = open(self.prefix / "stderr.log", "ab")  # noqa: SIM115 (the child owns it)
        self.proc = subprocess.Popen(
            [
                "nginx",
                "-p",
                str(self.prefix),
                "-c",
                str(conf),
                "-e",
                str(self.prefix / "error.log"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_nofile_limit,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited {self.proc.returncode}: {self.errors()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not start: {self.errors()}")

    def errors(self) -> str:
        text = ""
        for name in ("stderr.log", "error.log"):
            try:
                text += (self.prefix / name).read_text(errors="replace")[-2000:]
            except OSError:
                continue
        return text

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: the master waits for its workers
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)

    def __enter__(self) -> NginxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
