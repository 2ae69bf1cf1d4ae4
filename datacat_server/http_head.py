"""A bound on the size of a request's head (request line and headers): 431 beyond it.

uvicorn's httptools protocol, which `datacat serve` uses for speed, has no such bound:
measured here, a single 200 MB header was read into memory, before any token was
checked. This subclass bounds it twice over:

- the request line and each header are counted as the parser hands them over (also
  trailers after a chunked body, and a head pipelined behind another request); past
  the limit the request is refused before the app sees it;
- the bytes the parser takes in without making progress (finishing a head, passing on
  a piece of body, finishing a message) are counted across socket reads, so a head
  still arriving is refused before the parser has buffered more than the limit and
  one read.

(uvicorn's h11 protocol has a bound of its own, ``h11_max_incomplete_event_size``.)
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["DEFAULT_MAX_HEAD_BYTES", "bounded_head_protocol"]

#: nginx allows 4 x 8 KB of headers by default, Node.js 16 KB: 64 KB is generous.
DEFAULT_MAX_HEAD_BYTES = 64 * 1024


class _HeadTooLarge(Exception):
    """Raised in a parser callback: the parser stops, and uvicorn's error path runs."""


class _BoundedHeadProtocol(HttpToolsProtocol):
    max_head_bytes = DEFAULT_MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # of the request being parsed
        self._stalled = 0  # bytes taken in since the parser last made progress
        self._progress = False
        self._too_large = False

    def data_received(self, data: bytes) -> None:
        self._progress = False
        super().data_received(data)
        self._stalled = 0 if self._progress else self._stalled + len(data)
        if self._stalled > self.max_head_bytes and not self.transport.is_closing():
            self._refuse()

    # What the parser hands over, counted.

    def on_message_begin(self) -> None:
        self._head_bytes = 0
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
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._progress = True
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._progress = True
        super().on_message_complete()

    # The answer.

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers any exception from a parser callback with 400: ours is a 431.
        if self._too_large:
            self._refuse()
        else:
            super().send_400_response(msg)

    def _refuse(self) -> None:
        message = (
            f"The request line and headers are longer than {self.max_head_bytes} bytes."
        ).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(message)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + message
        )
        self.transport.close()


def bounded_head_protocol(max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the head of each request bounded; pass it to
    ``uvicorn.run(..., http=...)``."""
    return type("BoundedHeadProtocol", (_BoundedHeadProtocol,), {"max_head_bytes": max_head_bytes})
