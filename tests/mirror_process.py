"""Run `crate-mirror serve` as a real subprocess (for real cargo, kill -9 and restarts)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT = 60.0  # seconds until /healthz answers (building a typosquat index included)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MirrorProcess:
    def __init__(
        self,
        cache_dir: Path,
        *,
        upstream: str | None = None,
        offline: bool = False,
        policy: Path | None = None,
        config: Path | None = None,
        extra: Sequence[str] = (),
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.index_url = self.url + "/index"
        args = [sys.executable, "-m", "mirror", "serve", "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--cache-dir", str(cache_dir)]
        if upstream:
            args += ["--upstream", upstream]
        if offline:
            args.append("--offline")
        if policy:
            args += ["--policy", str(policy)]
        if config:
            args += ["--config", str(config)]
        self.args = args + list(extra)
        self.log_path = cache_dir.parent / f"mirror-{self.port}.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MirrorProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child owns it for its lifetime)
        self.proc = subprocess.Popen(
            self.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=Path(__file__).resolve().parent.parent,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mirror exited {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"mirror did not start:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)

    def kill(self) -> None:
        """kill -9: no cleanup handlers run, exactly like a crash or OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(15)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)


@contextmanager
def running_mirror(cache_dir: Path, **kwargs: object) -> Iterator[MirrorProcess]:
    mirror = MirrorProcess(cache_dir, **kwargs).start()  # type: ignore[arg-type]
    try:
        yield mirror
    finally:
        mirror.stop()
