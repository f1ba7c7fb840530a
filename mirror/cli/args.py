"""Argument types shared by the commands."""

from __future__ import annotations

import argparse
from pathlib import Path


def path_arg(text: str) -> Path:
    """A path given on the command line. An empty one is refused: `Path("")` is the current
    directory, so `--cache-dir ""` made a cache (and an audit chain) wherever it ran."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def reason_arg(text: str) -> str:
    """Why a person approved, revoked or denied something: kept in the lock and the audit
    log, whose readers refuse an empty one (the lock would no longer load)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("say why (it is kept with the change)")
    return text.strip()


def positive_int(text: str) -> int:
    """A count of at least 1 (`--concurrency 0` waited forever; -1 was a traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def out_file_arg(text: str) -> Path:
    """A file a command will write (`--out`): refused before any work when it names a
    directory or a directory that does not exist (found only at the end, with a traceback)."""
    out = path_arg(text)
    if out.is_dir():
        raise argparse.ArgumentTypeError(f"{out} is a directory: give a file name")
    if not out.parent.is_dir():
        raise argparse.ArgumentTypeError(f"no directory {out.parent}")
    return out


def sha256_arg(text: str) -> str:
    """A sha256 as 64 hex digits (an audit chain's hash): anything else can never match."""
    value = text.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise argparse.ArgumentTypeError(f"expected a sha256 (64 hex digits), got {text!r}")
    return value
