"""What one connection may cost the server: the size of a request's head (431 beyond
it), the time the head may take (then the connection is closed), and the connections
one client address may hold open (more are closed at once).

uvicorn's httptools protocol, which `datacat serve` uses for speed, bounds none of
these. Measured here: a single 200 MB header was read into memory, before any token was
checked; and 1,100 connections trickling a byte now and then, never finishing a head,
were held open for ever, until the process ran out of file descriptors (1,024) and
``/health`` could not be reached. (uvicorn's ``timeout_keep_alive`` only runs between
requests and is cancelled by any byte; ``limit_concurrency`` answers 503 once a head is
complete, which a trickled head never is.) This subclass adds:

- the head's size: the request line and each header are counted as the parser hands
  them over (also trailers after a chunked body, and a head pipelined behind another
  request); past the limit the request is refused before the app sees it. The bytes
  the parser takes in without making progress (finishing a head, passing on a piece of
  body, finishing a message) are counted across socket reads too, so a head still
  arriving is refused before the parser has buffered more than the limit and one read;
- the head's time: a deadline set when the connection opens and again when an answer
  is complete and the connection waits for the next request, cleared when a head is
  complete. When it passes, the connection is closed, with a 408 if part of a head had
  come (slowloris);
- connections per address (IPv6: per /64, which one host usually has whole): past the
  limit a new connection gets a 503 and is closed at once, before it costs more than
  its descriptor for a moment.

(uvicorn's h11 protocol has a size bound of its own, ``h11_max_incomplete_event_size``.)
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from datacat_server.settings import (
    DEFAULT_HEAD_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
    DEFAULT_MAX_HEAD_BYTES,
    Settings,
)

__all__ = ["bounded_protocol"]

log = logging.getLogger("datacat")


class _HeadTooLarge(Exception):
    """Raised in a parser callback: the parser stops, and uvicorn's error path runs."""


def _address_key(client: tuple[str, int] | None) -> str | None:
    """The address a connection is counted under: the host, or its /64 for IPv6."""
    if not client or not client[0]:
        return None  # a Unix socket
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return client[0]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address), 64), strict=False))
    return str(address)


class _BoundedProtocol(HttpToolsProtocol):
    max_head_bytes = DEFAULT_MAX_HEAD_BYTES
    head_timeout = DEFAULT_HEAD_TIMEOUT
    max_connections_per_address = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
    #: Open connections per address, and the addresses at their limit (logged once);
    #: shared by the connections of one server (`bounded_protocol` makes a class each).
    open_per_address: ClassVar[Counter[str]] = Counter()
    at_limit: ClassVar[set[str]] = set()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # of the request being parsed
        self._stalled = 0  # bytes taken in since the parser last made progress
        self._progress = False
        self._too_large = False
        self._address: str | None = None  # counted in open_per_address while set
        self._deadline: asyncio.TimerHandle | None = None  # for the head awaited
        self._in_head = False  # the parser is inside a head
        self._heard = False  # bytes came since the deadline was set

    # The connection: counted per address, and a deadline for its first head.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address, limit = _address_key(self.client), self.max_connections_per_address
        if limit and address is not None:
            if self.open_per_address[address] >= limit:
                if address not in self.at_limit:
                    self.at_limit.add(address)
                    log.warning(
                        "%s holds %d connections, the most one address may"
                        " (DATACAT_MAX_CONNECTIONS_PER_ADDRESS): closing its new ones",
                        address,
                        limit,
                    )
                self._answer_and_close(
                    b"503 Service Unavailable",
                    f"Your address holds {limit} connections to this server already.",
                )
                return
            self.open_per_address[address] += 1
            self._address = address
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._release()  # the transport moves to another protocol
        super().handle_websocket_upgrade()

    def _release(self) -> None:
        self._clear_deadline()
        address, self._address = self._address, None
        if address is not None:
            self.open_per_address[address] -= 1
            if self.open_per_address[address] <= 0:
                del self.open_per_address[address]
            if self.open_per_address[address] < self.max_connections_per_address:
                self.at_limit.discard(address)

    # The deadline for a head: set while the connection waits for one.

    def _await_head(self) -> None:
        self._clear_deadline()
        self._heard = False
        self._deadline = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _clear_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._in_head or self._heard:
            self._answer_and_close(
                b"408 Request Timeout",
                f"The request line and headers took longer than {self.head_timeout:g} s.",
            )
        else:
            self.transport.close()

    def on_response_complete(self) -> None:
        waiting = not self.pipeline  # else the next request's head is complete already
        super().on_response_complete()
        if waiting and not self.transport.is_closing():
            self._await_head()

    # What the parser hands over, counted.

    def data_received(self, data: bytes) -> None:
        self._heard = self._heard or self._deadline is not None
        self._progress = False
        super().data_received(data)
        self._stalled = 0 if self._progress else self._stalled + len(data)
        if self._stalled > self.max_head_bytes and not self.transport.is_closing():
            self._refuse_head()

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        self._in_head = True
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            self._too_large = True
            raise _HeadTooLarge

    # What counts as progress.

    def on_headers_complete(self) -> None:
        self._progress = True
        self._in_head = False
        self._clear_deadline()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._progress = True
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._progress = True
        super().on_message_complete()

    # The answers.

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers any exception from a parser callback with 400: ours is a 431.
        if self._too_large:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def _refuse_head(self) -> None:
        self._answer_and_close(
            b"431 Request Header Fields Too Large",
            f"The request line and headers are longer than {self.max_head_bytes} bytes.",
        )

    def _answer_and_close(self, status: bytes, text: str) -> None:
        message = text.encode()
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(message)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + message
        )
        self.transport.close()


def bounded_protocol(settings: Settings) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with each connection bounded as ``settings`` say
    (``max_head_bytes``, ``head_timeout``, ``max_connections_per_address``); pass it
    to ``uvicorn.run(..., http=...)``. Each call makes a class with its own count of
    connections per address: one per server."""
    return type(
        "BoundedProtocol",
        (_BoundedProtocol,),
        {
            "max_head_bytes": settings.max_head_bytes,
            "head_timeout": settings.head_timeout,
            "max_connections_per_address": settings.max_connections_per_address,
            "open_per_address": Counter(),
            "at_limit": set(),
        },
    )
