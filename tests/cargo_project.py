"""Drive real cargo against a registry URL (FakeUpstream or the mirror), fully isolated.

Each project gets its own CARGO_HOME whose config.toml replaces crates.io with the given
sparse registry, so nothing reaches the network or the developer's ~/.cargo, and its own
target dir. Environment variables that would point cargo elsewhere are removed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CARGO_TIMEOUT", "CargoProject", "Dependencies"]

# name -> "req" or {"version": ..., "features": ...}, as written under [dependencies]
Dependencies = Mapping[str, str | Mapping[str, Any]]

CARGO_TIMEOUT = 600.0  # seconds for one cargo invocation; a full offline build is ~1-2 min
# Variables that would make cargo use another registry, config, token or toolchain setting.
_SCRUBBED_PREFIXES = ("CARGO_REGISTRIES_", "CARGO_REGISTRY_", "CARGO_SOURCE_", "CARGO_NET_")
_SCRUBBED = ("CARGO_HOME", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR", "RUSTC_WRAPPER")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


class CargoProject:
    """A binary crate depending on `deps` (name -> "req" or {"version": ..., "features": ...})."""

    def __init__(
        self,
        tmp_path: Path,
        registry_url: str,
        deps: Dependencies,
        *,
        name: str = "fixture-app",
        net_retry: int = 0,
        multiplexing: bool = True,
    ) -> None:
        self.dir = tmp_path / name
        self.cargo_home = tmp_path / "cargo-home"
        self.target_dir = tmp_path / "target"
        self.registry_url = registry_url  # may be changed before wipe_cargo_home()
        self.net_retry = net_retry
        # cargo's default: it offers the mirror HTTP/2 (`Upgrade: h2c`) on every connection.
        # False keeps it on HTTP/1.1, two connections at a time.
        self.multiplexing = multiplexing
        (self.dir / "src").mkdir(parents=True, exist_ok=True)
        lines = ["[package]", f"name = {json.dumps(name)}", 'version = "0.1.0"']
        lines += ['edition = "2021"', "publish = false", "", "[dependencies]"]
        lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in deps.items()]
        (self.dir / "Cargo.toml").write_text("\n".join(lines) + "\n")
        (self.dir / "src" / "main.rs").write_text("fn main() {}\n")
        self._write_cargo_home()

    def _write_cargo_home(self) -> None:
        self.cargo_home.mkdir(parents=True, exist_ok=True)
        (self.cargo_home / "config.toml").write_text(
            "[source.crates-io]\n"
            'replace-with = "mirror"\n\n'
            "[source.mirror]\n"
            f'registry = "sparse+{self.registry_url.rstrip("/")}/"\n\n'
            "[net]\n"
            f"retry = {self.net_retry}\n\n"
            "[http]\n"
            "timeout = 30\n"
            f"multiplexing = {_toml_value(self.multiplexing)}\n"
        )

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_SCRUBBED_PREFIXES) and k not in _SCRUBBED
        }
        env.update(
            CARGO_HOME=str(self.cargo_home),
            CARGO_TARGET_DIR=str(self.target_dir),
            CARGO_TERM_COLOR="never",
            CARGO_TERM_PROGRESS_WHEN="never",
        )
        return env

    def run(self, *args: str, timeout: float = CARGO_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run `cargo ARGS` in the project; never raises on a non-zero exit (check returncode)."""
        return subprocess.run(
            ["cargo", *args],
            cwd=self.dir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def generate_lockfile(self) -> subprocess.CompletedProcess[str]:
        return self.run("generate-lockfile")

    def fetch(self) -> subprocess.CompletedProcess[str]:
        return self.run("fetch")

    def build_offline(self) -> subprocess.CompletedProcess[str]:
        return self.run("build", "--offline")

    def lock_versions(self) -> dict[str, list[str]]:
        """Cargo.lock as name -> versions (a crate can be locked at several versions)."""
        lock = tomllib.loads((self.dir / "Cargo.lock").read_text())
        out: dict[str, list[str]] = {}
        for pkg in lock.get("package", []):
            if "source" in pkg:  # the project itself has no source
                out.setdefault(pkg["name"], []).append(pkg["version"])
        return out

    def wipe_cargo_home(self) -> None:
        """Forget every cached index file and crate (keeps the mirror configuration)."""
        shutil.rmtree(self.cargo_home, ignore_errors=True)
        self._write_cargo_home()
