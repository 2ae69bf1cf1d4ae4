"""Whether the server can listen where it is asked to, checked before anything is opened:
a busy port then costs one clear line, not a new database file and uvicorn's traceback."""

from __future__ import annotations

import errno
import socket

__all__ = ["PortUnavailable", "check_port"]


class PortUnavailable(Exception):
    """The server cannot listen on that address; the message says why and what to do."""


def check_port(host: str, port: int) -> None:
    """Bind ``host:port`` as uvicorn will (``SO_REUSEADDR``, on every address ``host``
    resolves to) and let go at once; raise `PortUnavailable` if that fails."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortUnavailable(f"cannot listen on {host}: {exc.strerror}") from None
    for family, kind, proto, _, address in found:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio binds it
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortUnavailable(
                        f"port {port} on {host} is in use by another program; stop it,"
                        " or choose another port with --port"
                    ) from None
                raise PortUnavailable(
                    f"cannot listen on {host} port {port}: {exc.strerror or exc}"
                ) from None
