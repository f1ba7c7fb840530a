"""The body reader both HTTP clients use: a limit enforced on what is declared and on what
arrives, and a body that ends early or breaks off raised as the caller's "cut short"."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from mirror.errors import IntegrityError
from mirror.upstream.transfer import CHUNK, describe, limited_chunks

LIMIT = 10_000


class CutShort(Exception):
    pass


Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


async def _raw_server(answer: Answer) -> tuple[asyncio.Server, str]:
    """A server that reads the request head and writes exactly what `answer` writes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await answer(writer)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/"


async def _read(answer: Answer) -> bytes:
    server, url = await _raw_server(answer)
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            chunks = limited_chunks(resp, LIMIT, what="the test answer", cut_short=CutShort)
            return b"".join([c async for c in chunks])
    finally:
        server.close()
        await server.wait_closed()


def _head(length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Connection: close"
    return f"HTTP/1.1 200 OK\r\n{framing}\r\n\r\n".encode()


async def test_a_body_within_the_limit_arrives_whole() -> None:
    body = bytes(range(256)) * 39  # 9,984 bytes: more than one read, under the limit

    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(_head(len(body)) + body)

    assert await _read(answer) == body


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(_head(LIMIT * 100) + b"x" * 100)

    with pytest.raises(IntegrityError, match="declared 1000000 bytes, over the 10000-byte"):
        await _read(answer)


async def test_an_undeclared_body_is_cut_off_at_the_limit() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(_head(None))
        for _ in range(64):  # bounded: 4 MiB at most; the reader stops after the limit
            writer.write(b"y" * CHUNK)
            try:
                await writer.drain()
            except ConnectionError:
                return

    with pytest.raises(IntegrityError, match="the test answer is larger than the 10000-byte"):
        await _read(answer)


async def test_a_body_shorter_than_declared_is_cut_short() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(_head(500) + b"z" * 200)  # then the connection closes

    with pytest.raises(CutShort, match="the test answer"):
        await _read(answer)


def test_failures_are_described_for_people() -> None:
    assert describe(TimeoutError()) == "timed out"
    assert describe(ConnectionResetError("reset by peer")) == "connection failed: reset by peer"
    assert describe(ConnectionResetError()) == "connection failed: ConnectionResetError"
