"""The network edge: a two-method transport contract and its HTTP implementation.

Every request of the package, the background sender's batches and `DatacatClient`'s
REST calls alike, is a `Request` handed to a `Transport`, which returns the `Response`
(whatever its status) or raises `TransportError` when there is none. Tests replace the
transport with a function that plays the server (the shape of httpx's
``BaseTransport.handle_request``). `raise_for_status` turns a status into our
exceptions, so that callers see `DatacatError` and never a library's exception.

`HttpTransport` speaks HTTP/1.1 through the standard library's http.client over a few
keep-alive connections. httpx costs, measured here, ~150 ms of CPU to import and ~1 ms
of Python per request, in every test run the plugin records; the client needs none of
what it adds (redirects, cookies, HTTP/2).
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import http.client
import math
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlencode, urlsplit

import msgspec

from . import wire
from ._errors import APIError, NotFound, RateLimited, TransportError

if TYPE_CHECKING:
    import ssl

__all__ = [
    "HttpTransport",
    "Request",
    "Response",
    "Transport",
    "parse_retry_after",
    "raise_for_status",
]

_JSON = "application/json"
_MAX_DETAIL = 500
_MAX_IDLE = 4  # keep-alive connections kept per transport


@dataclasses.dataclass(frozen=True)
class Request:
    """One HTTP request, relative to the transport's base URL."""

    method: str
    #: The path, such as ``/api/ingest``; ``params`` become its query string.
    path: str
    body: bytes | None = None
    params: Mapping[str, Any] | None = None
    #: Seconds to wait for the answer; None: the transport's default.
    timeout: float | None = None
    #: The body's media type.
    content_type: str = _JSON

    @property
    def target(self) -> str:
        """The path with its query string (a list value repeats its key)."""
        if not self.params:
            return self.path
        return f"{self.path}?{urlencode(self.params, doseq=True)}"


@dataclasses.dataclass(frozen=True)
class Response:
    """An answer, whatever its status. Header names are lower case."""

    status: int
    headers: Mapping[str, str]
    content: bytes = b""
    reason: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@runtime_checkable
class Transport(Protocol):
    """Where every request of the client goes (tests pass their own)."""

    def handle_request(self, request: Request) -> Response:
        """Send ``request``; return the answer, whatever its status.

        Raises `TransportError` when no answer came (``unreachable=True`` when the
        server could not be connected to at all); waits at most about
        ``request.timeout`` seconds.
        """
        ...

    def close(self) -> None:
        """Release connections; later requests may raise `TransportError`."""
        ...


# -- statuses become exceptions -------------------------------------------------------


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: seconds, or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _detail(content: bytes, reason: str) -> str:
    try:
        body = msgspec.json.decode(content)
    except (msgspec.DecodeError, UnicodeDecodeError):
        text = content.decode("utf-8", "replace").strip()
        return text[:_MAX_DETAIL] if text else reason
    if isinstance(body, Mapping) and "detail" in body:
        detail = body["detail"]
        return detail if isinstance(detail, str) else wire.encode(detail).decode()
    return content.decode("utf-8", "replace")[:_MAX_DETAIL]


def raise_for_status(response: Response) -> None:
    """Raise the `APIError` that a non-2xx answer stands for."""
    status = response.status
    if 200 <= status < 300:
        return
    detail = _detail(response.content, response.reason or f"HTTP {status}")
    if status == 429:
        # Litestar's rate limiter sends no Retry-After, but RateLimit-Reset (seconds).
        wait = parse_retry_after(
            response.header("Retry-After") or response.header("RateLimit-Reset")
        )
        raise RateLimited(wait, detail)
    if status == 404:
        raise NotFound(detail)
    raise APIError(status, detail, retry_after=parse_retry_after(response.header("Retry-After")))


# -- HTTP over http.client --------------------------------------------------------------


class HttpTransport:
    """`Transport` over HTTP(S): a few keep-alive connections to ``base_url``.

    Sends ``token`` as a bearer token. Safe to share between threads, and after a fork
    (a child opens its own connections).
    """

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"not an http(s) URL: {base_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path
        self._headers = {"User-Agent": "datacat-client", "Accept": _JSON}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._closed = False
        self._tls_context: ssl.SSLContext | None = None
        self._forget_connections()

    def _forget_connections(self) -> None:
        """Start without connections (at creation, and in a forked child, where the
        parent's connections and lock are the parent's)."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._idle: list[http.client.HTTPConnection] = []
        self._busy: set[http.client.HTTPConnection] = set()

    def _tls(self) -> ssl.SSLContext:
        if self._tls_context is None:
            import ssl  # only for https servers; loading the CA bundle takes ~70 ms

            self._tls_context = ssl.create_default_context()
        return self._tls_context

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._tls()
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            conn.connect()
        except TimeoutError as exc:
            raise TransportError(f"{self.base_url}: connecting timed out") from exc
        except OSError as exc:  # refused, no such host, no route: nothing answers there
            raise TransportError(
                f"cannot connect to {self.base_url}: {exc}", unreachable=True
            ) from exc
        return conn

    def _acquire(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """A connection, and whether it was used before (it may have gone stale)."""
        if self._pid != os.getpid():
            self._forget_connections()
        with self._lock:
            if self._closed:
                raise TransportError(f"the transport to {self.base_url} is closed")
            conn = self._idle.pop() if self._idle else None
        reused = conn is not None
        if conn is None:
            conn = self._connect(timeout)
        elif conn.sock is not None:
            conn.sock.settimeout(timeout)
        with self._lock:
            self._busy.add(conn)
        return conn, reused

    def _release(self, conn: http.client.HTTPConnection, *, keep: bool) -> None:
        with self._lock:
            self._busy.discard(conn)
            if keep and not self._closed and len(self._idle) < _MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def handle_request(self, request: Request) -> Response:
        """Send one request; a keep-alive connection the server closed meanwhile is
        replaced once."""
        timeout = self.timeout if request.timeout is None else request.timeout
        if timeout <= 0:
            raise TransportError(f"{request.method} {request.path}: no time left")
        target = self._prefix + request.target
        headers = dict(self._headers)
        if request.body is not None:
            headers["Content-Type"] = request.content_type
        for attempt in (1, 2):
            conn, reused = self._acquire(timeout)
            try:
                conn.request(request.method, target, body=request.body, headers=headers)
                answer = conn.getresponse()
                content = answer.read()
            except (OSError, http.client.HTTPException) as exc:
                self._release(conn, keep=False)
                timed_out = isinstance(exc, TimeoutError)
                if attempt == 1 and reused and not timed_out:
                    continue  # the server had closed the idle connection: try a fresh one
                raise TransportError(
                    f"{request.method} {self.base_url}{request.path}: {exc!r}"
                ) from exc
            self._release(conn, keep=not answer.will_close)
            return Response(
                answer.status,
                {name.lower(): value for name, value in answer.getheaders()},
                content,
                answer.reason,
            )
        raise TransportError(f"{request.method} {request.path}: no answer")  # pragma: no cover

    def close(self) -> None:
        """Close the connections, ending a request that waits on one (it then raises
        `TransportError`); later requests raise `TransportError`."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = list(self._busy)
        for conn in busy:
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for conn in idle:
            conn.close()
