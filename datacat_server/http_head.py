"""A bound on the size of a request's head (request line and headers): 431 beyond it.

uvicorn's httptools protocol, which `datacat serve` uses for speed, has no such bound:
measured here, a single 200 MB header was read into memory, before any token was
checked. This subclass counts the bytes of each request's head as they arrive and
answers 431 once they pass the limit, before the parser buffers more. (uvicorn's h11
protocol has a bound of its own, ``h11_max_incomplete_event_size``.)
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["DEFAULT_MAX_HEAD_BYTES", "bounded_head_protocol"]

#: nginx allows 4 x 8 KB of headers by default, Node.js 16 KB: 64 KB is generous.
DEFAULT_MAX_HEAD_BYTES = 64 * 1024

_END_OF_HEAD = b"\r\n\r\n"


class _BoundedHeadProtocol(HttpToolsProtocol):
    max_head_bytes = DEFAULT_MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True
        self._head_bytes = 0
        self._tail = b""  # the end of the last chunk: the blank line may straddle two

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            window = self._tail + data
            end = window.find(_END_OF_HEAD)
            if end < 0:
                self._head_bytes += len(data)
                self._tail = window[-(len(_END_OF_HEAD) - 1) :]
            else:
                self._head_bytes += end + len(_END_OF_HEAD) - len(self._tail)
                self._reading_head = False
            if self._head_bytes > self.max_head_bytes:
                self._refuse()
                return
        super().data_received(data)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # Keep-alive: whatever arrives next starts the next request's head.
        self._reading_head = True
        self._head_bytes = 0
        self._tail = b""

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
