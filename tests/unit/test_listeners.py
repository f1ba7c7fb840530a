"""The listening sockets: bound before start-up, a taken port a clear error, one set per worker."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from mirror.errors import StartupError
from mirror.listeners import Listeners


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another server listens on (without SO_REUSEPORT)."""
    with socket.create_server(("127.0.0.1", 0)) as other:
        yield other.getsockname()[1]


def _reuse_port(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_taken_port_is_a_clear_startup_error(taken_port: int, workers: int) -> None:
    with pytest.raises(StartupError) as caught:
        Listeners.bind("127.0.0.1", taken_port, count=workers, backlog=16)
    message = str(caught.value)
    assert f"127.0.0.1:{taken_port}" in message
    assert "already in use" in message and "--port" in message


def test_workers_do_not_join_another_servers_reuseport_group() -> None:
    """Another `--workers N` mirror of the same user holds the port with SO_REUSEPORT: a plain
    bind is tried first, so ours fails instead of silently sharing its connections."""
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.1", 0))
    other.listen()
    try:
        with pytest.raises(StartupError, match="already in use"):
            Listeners.bind("127.0.0.1", other.getsockname()[1], count=2, backlog=16)
    finally:
        other.close()


def test_each_worker_gets_its_own_socket_on_one_port() -> None:
    listeners = Listeners.bind("127.0.0.1", 0, count=3, backlog=16)
    port = listeners.port
    sets = listeners.sets
    assert all(len(s) == 1 for s in sets)
    socks = [s[0] for s in sets]
    assert {sock.getsockname()[1] for sock in socks} == {port}
    assert all(_reuse_port(sock) for sock in socks)
    mine = listeners.claim(1)
    assert mine == [socks[1]]
    assert socks[0].fileno() == -1 and socks[2].fileno() == -1  # the others are closed
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # the kernel queues it on the one socket left: nobody accepts, yet it connects
    mine[0].close()


def test_one_worker_listens_without_reuseport_and_queues_before_serving() -> None:
    listeners = Listeners.bind("127.0.0.1", 0, count=1, backlog=16)
    (sock,) = listeners.claim(0)
    assert not _reuse_port(sock)
    with socket.create_connection(("127.0.0.1", listeners.port), timeout=5) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")  # waits in the backlog meanwhile
    sock.close()


def test_release_closes_the_supervisors_copies() -> None:
    listeners = Listeners.bind("127.0.0.1", 0, count=2, backlog=16)
    socks = [s for group in listeners.sets for s in group]
    listeners.release()
    assert all(sock.fileno() == -1 for sock in socks)


def test_an_unknown_host_is_a_clear_startup_error() -> None:
    with pytest.raises(StartupError, match=r"cannot listen on no-such-host\.invalid:8080"):
        Listeners.bind("no-such-host.invalid", 8080, count=1, backlog=16)
