"""The listening sockets of `serve`, bound before anything slow starts.

Binding first makes a taken port a one-line start-up error, printed before the "serving on"
line and before a round of upstream retries (it used to be a traceback ~30 s later). While
the server starts, the kernel already queues connections on the bound sockets; they are
answered once it is ready, instead of being refused.

With `workers: N` each worker gets its own sockets, all in one SO_REUSEPORT group, so the
kernel spreads connections over the workers; the supervisor binds them all, forks, and then
closes its copies (`release`), so a worker that dies takes its sockets with it and the kernel
stops sending connections its way.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence

from mirror.errors import StartupError

__all__ = ["Listeners"]


class Listeners:
    """`count` sets of listening sockets on host:port, one set per worker."""

    def __init__(self, sets: Sequence[Sequence[socket.socket]]) -> None:
        self._sets = [list(s) for s in sets]

    @classmethod
    def bind(cls, host: str, port: int, *, count: int, backlog: int) -> Listeners:
        """Bind and listen now; raise StartupError (closing what was bound) if we cannot.

        One socket per address `host` resolves to (as asyncio's create_server does), per worker.
        """
        addresses = _resolve(host, port)
        reuse_port = count > 1
        sets: list[list[socket.socket]] = []
        try:
            if reuse_port:
                # SO_REUSEPORT would let our sockets silently join another server's group on
                # the same port (another `crate-mirror --workers N` of this user): check the
                # port is free with a plain bind first.
                for family, address in addresses:
                    _socket(family, address, reuse_port=False).close()
            for _ in range(count):
                sets.append([])
                for i, (family, address) in enumerate(addresses):
                    sock = _listen(family, address, reuse_port=reuse_port, backlog=backlog)
                    sets[-1].append(sock)
                    if address[1] == 0:  # port 0: every later socket takes the one chosen
                        addresses[i] = (family, sock.getsockname())
        except OSError as e:
            for sock in (s for group in sets for s in group):
                sock.close()
            raise StartupError(_explain(host, port, e)) from e
        return cls(sets)

    @property
    def sets(self) -> list[list[socket.socket]]:
        """The sockets of each worker, in worker order."""
        return self._sets

    @property
    def port(self) -> int:
        return int(self._sets[0][0].getsockname()[1])

    def claim(self, worker: int) -> list[socket.socket]:
        """In worker `worker` (after fork, or the only process): its sockets; the rest closed."""
        mine = self._sets[worker]
        for group in self._sets:
            if group is not mine:
                for sock in group:
                    sock.close()
        return mine

    def release(self) -> None:
        """In the supervisor, once every worker is forked: the workers hold the sockets now."""
        for group in self._sets:
            for sock in group:
                sock.close()


def _resolve(host: str, port: int) -> list[tuple[int, tuple[str, int]]]:
    try:
        infos = socket.getaddrinfo(
            host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise StartupError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    seen: list[tuple[int, tuple[str, int]]] = []
    for family, _, _, _, sockaddr in infos:
        entry = (int(family), (str(sockaddr[0]), int(sockaddr[1])))
        if family in (socket.AF_INET, socket.AF_INET6) and entry not in seen:
            seen.append(entry)
    return seen


def _listen(
    family: int, address: tuple[str, int], *, reuse_port: bool, backlog: int
) -> socket.socket:
    sock = _socket(family, address, reuse_port=reuse_port)
    try:
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _socket(family: int, address: tuple[str, int], *, reuse_port: bool) -> socket.socket:
    """A socket bound to `address`; the bind fails while another socket listens there."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart over TIME_WAIT
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # Like asyncio: "::" means IPv6 only, so a second socket can take 0.0.0.0.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _explain(host: str, port: int, error: OSError) -> str:
    where = f"{host}:{port}"
    if error.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: the port is already in use (another crate-mirror, or "
            "another server?); stop it, or choose another port with --port or listen_port"
        )
    if error.errno == errno.EACCES:
        return (
            f"cannot listen on {where}: permission denied (ports below 1024 need privileges); "
            "choose another port with --port or listen_port"
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: no such local address; check --host or listen_host"
    return f"cannot listen on {where}: {error.strerror or error}"
