"""What the front door answers itself, over HTTP/1.1 (mirror.http.front) or HTTP/2
(mirror.http.h2c): cargo's three routes, named from a request target the same way aiohttp's
router would match it."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO

MAX_HEAD = 8 * 1024  # bytes of request head we answer; larger goes to aiohttp and its limits
FILE_CHUNK = 256 * 1024  # bytes read from a large crate's file per write
# No escapes (`%`), queries, dot segments or empty segments: yarl normalises those before
# aiohttp routes them, so only aiohttp may judge such a target.
_PLAIN_TARGET = re.compile(rb"(?:/[A-Za-z0-9_+\-][A-Za-z0-9_.+\-]*)+")

# A route: ("config",), ("index", path) or ("download", name, version).
Route = tuple[str, ...]


def cargo_route(target: bytes) -> Route | None:
    """The cargo route `target` names, or None for anything aiohttp's router must judge."""
    if not _PLAIN_TARGET.fullmatch(target):
        return None
    text = target.decode("ascii")
    if text == "/index/config.json":
        return ("config",)
    if text.startswith("/index/"):
        return ("index", text.removeprefix("/index/"))
    parts = text.split("/")
    if len(parts) == 7 and parts[1:4] == ["api", "v1", "crates"] and parts[6] == "download":
        return ("download", parts[4], parts[5])
    return None


def open_sized(path: Path) -> tuple[BinaryIO, int]:
    """A large crate's file and its size, in one trip to a worker thread."""
    handle = path.open("rb")
    return handle, os.fstat(handle.fileno()).st_size
