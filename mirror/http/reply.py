"""A response as the handlers decide it, before any transport writes it.

The handlers of cargo's routes return a `Reply`; aiohttp's protocol writes it through
`to_aiohttp`, and the front door (mirror.http.front) writes the same reply itself, so a
connection that asked for something not yet prepared need not leave the front door.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

from aiohttp import web

SERVER_HEADER = b"Server: crate-mirror\r\n"
SERVER_FIELD = (b"server", b"crate-mirror")
TEXT = "text/plain; charset=utf-8"


@dataclass(slots=True)
class Reply:
    status: int
    # Content-Type, ETag, ...: never Content-Length, Date or Server (the writer adds those).
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    file: Path | None = None  # a large crate: streamed from disk, never read into memory

    @classmethod
    def text(cls, status: int, text: str) -> Reply:
        return cls(status, {"Content-Type": TEXT}, text.encode())

    def to_aiohttp(self) -> web.StreamResponse:
        if self.file is not None:
            return web.FileResponse(self.file, headers=dict(self.headers))
        return web.Response(status=self.status, body=self.body, headers=dict(self.headers))


def response_head(status: int, headers: Mapping[str, str], length: int | None) -> bytes:
    """The status line and headers (Server included), without Date and the blank line."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode("ascii"))]
    lines += [f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items()]
    if length is not None:
        lines.append(b"Content-Length: %d\r\n" % length)
    return b"".join(lines) + SERVER_HEADER


def h2_fields(
    status: int, headers: Mapping[str, str], length: int | None
) -> list[tuple[bytes, bytes]]:
    """The same as `response_head`, as HTTP/2 header fields (lower-case names, no Date)."""
    fields = [(b":status", b"%d" % status)]
    fields += [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]
    if length is not None:
        fields.append((b"content-length", b"%d" % length))
    fields.append(SERVER_FIELD)
    return fields
