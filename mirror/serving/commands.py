"""Commands printed for people (in 403 bodies, `explain`, `pending`), with the settings the
server runs with: copied as printed, they act on the same lock, cache and audit log."""

from __future__ import annotations

import shlex
from pathlib import Path

from mirror.config import Settings


def approve_command(name: str, version: str, *, lock: Path | None, settings: Settings) -> str:
    """`crate-mirror approve NAME@VERSION ...` for this server's lock, cache and audit log."""
    args = ["crate-mirror", "approve", f"{name}@{version}"]
    if lock is not None:
        args += ["--lock", str(lock.resolve())]
    args += ["--cache-dir", str(settings.cache_dir.resolve())]
    if settings.audit_directory.resolve() != (settings.cache_dir / "audit").resolve():
        args += ["--audit-dir", str(settings.audit_directory.resolve())]
    return shlex.join(args) + ' --reason "<why it is safe>"'
