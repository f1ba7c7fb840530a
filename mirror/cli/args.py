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
