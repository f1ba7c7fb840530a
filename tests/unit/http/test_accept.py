"""The serving sites accept every queued connection at once, not one per loop iteration."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest
import uvloop
from aiohttp import web
from aiohttp.web_runner import BaseSite

from mirror.http.accept import AcceptingSite
from mirror.listeners import Listeners

QUEUED = 300  # connections waiting in the kernel's queue when the server starts accepting
ITERATIONS = 10  # event-loop iterations the server gets to take them


def _accepted_after_a_few_iterations(site_for: Callable[..., BaseSite]) -> int:
    """On uvloop (what `serve` runs): queue connections, start the site, count what is
    taken within ITERATIONS loop iterations."""

    async def run() -> int:
        (sock,) = Listeners.bind("127.0.0.1", 0, count=1, backlog=1024).claim(0)
        clients = [socket.create_connection(sock.getsockname(), timeout=5) for _ in range(QUEUED)]
        runner = web.AppRunner(web.Application(), shutdown_timeout=1)
        await runner.setup()
        try:
            await site_for(runner, sock, backlog=1024).start()
            for _ in range(ITERATIONS):
                await asyncio.sleep(0)
            assert runner.server is not None
            return len(runner.server.connections)
        finally:
            for client in clients:
                client.close()
            await runner.cleanup()

    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()


def test_a_burst_of_queued_connections_is_taken_at_once() -> None:
    """A build farm starting 300 builds at once: all 300 get served, none waits its turn."""
    assert _accepted_after_a_few_iterations(AcceptingSite) == QUEUED


def test_uvloops_own_accept_takes_one_per_iteration() -> None:
    """Why AcceptingSite exists: the site `serve` used before takes one connection per
    iteration (libuv 1.45+), so under load a burst waited seconds in the queue. If a future
    uvloop takes them all again, this test says so, and AcceptingSite can go."""
    assert _accepted_after_a_few_iterations(web.SockSite) <= ITERATIONS


@pytest.mark.parametrize("clients", [1, 5])
def test_stop_closes_the_socket_and_stops_accepting(clients: int) -> None:
    async def run() -> None:
        (sock,) = Listeners.bind("127.0.0.1", 0, count=1, backlog=16).claim(0)
        address = sock.getsockname()
        runner = web.AppRunner(web.Application(), shutdown_timeout=1)
        await runner.setup()
        site = AcceptingSite(runner, sock, backlog=16)
        await site.start()
        for _ in range(clients):
            socket.create_connection(address, timeout=5).close()
        await asyncio.sleep(0.05)
        await runner.cleanup()  # stops every site, as `serve` does at SIGTERM
        assert sock.fileno() == -1
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=5)

    asyncio.run(run())
