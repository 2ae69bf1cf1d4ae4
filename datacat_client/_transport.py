"""The network layer: a two-method transport contract and its HTTP implementation.

`Transport` is all the background sender needs: post one encoded `wire.Batch`, close.
Tests replace it with a fake. `HttpTransport` implements it over one keep-alive
connection (`_batchpost`, the standard library's http.client: cheap to import and to
use on the sender's path), and carries the plain REST calls of `DatacatClient` over an
`httpx.Client`. Every answer is mapped to our exceptions here, at the boundary, so that
no library exception leaks out.
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from . import wire
from ._batchpost import BatchConnection
from ._errors import APIError, DatacatError, NotFound, RateLimited, TransportError

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpTransport", "Transport", "parse_retry_after"]

_JSON = "application/json"
_MAX_DETAIL = 500
_ack_decoder = msgspec.json.Decoder(wire.BatchAck)


@runtime_checkable
class Transport(Protocol):
    """What the background sender needs from the network."""

    def post_batch(self, body: bytes, timeout: float) -> wire.BatchAck:
        """Post an encoded `wire.Batch`; return the server's acknowledgement.

        Raises `TransportError`, `RateLimited` or `APIError`; waits at most about
        ``timeout`` seconds.
        """
        ...

    def close(self) -> None:
        """Release connections. Later calls may fail with `TransportError`."""
        ...


_transports: weakref.WeakSet[HttpTransport] = weakref.WeakSet()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        import email.utils  # rare: an HTTP-date Retry-After

        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


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


def check_status(
    status: int, header: Callable[[str], str | None], content: bytes, reason: str = ""
) -> None:
    """Raise the `APIError` that a non-2xx answer stands for."""
    if 200 <= status < 300:
        return
    detail = _detail(content, reason or f"HTTP {status}")
    if status == 429:
        # Litestar's rate limiter sends no Retry-After, but RateLimit-Reset (seconds).
        wait = parse_retry_after(header("Retry-After") or header("RateLimit-Reset"))
        raise RateLimited(wait, detail)
    if status == 404:
        raise NotFound(detail)
    raise APIError(status, detail)


def raise_for_status(response: httpx.Response) -> None:
    """Raise the `APIError` that a non-2xx httpx answer stands for."""
    check_status(
        response.status_code, response.headers.get, response.content, response.reason_phrase
    )


class HttpTransport:
    """`Transport` over HTTP: one keep-alive `httpx.Client` for batches and REST calls.

    Batches go over a plain keep-alive connection (see `_batchpost`); httpx is imported,
    and its client built, on the first REST call only.
    """

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._headers = {"User-Agent": "datacat-client", "Accept": _JSON}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._batches = BatchConnection(self.base_url, self._headers)
        self._closed = False
        _transports.add(self)

    def _http(self) -> httpx.Client:
        client = self._client
        if client is None:
            with self._lock:
                if self._closed:
                    raise TransportError(f"the transport to {self.base_url} is closed")
                if self._client is None:
                    import httpx

                    self._client = httpx.Client(
                        base_url=self.base_url,
                        headers=self._headers,
                        timeout=self.timeout,
                        # Plain http needs no TLS context; building the default one
                        # loads the CA bundle (~70 ms measured here).
                        verify=self.base_url.startswith("https:"),
                    )
                client = self._client
        return client

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request; return the 2xx response or raise one of our errors."""
        import httpx

        headers = {"Content-Type": _JSON} if body is not None else None
        try:
            response = self._http().request(
                method,
                path,
                content=body,
                params=params,
                headers=headers,
                timeout=self.timeout if timeout is None else timeout,
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise TransportError(f"{method} {self.base_url}{path}: {exc!r}") from exc
        except RuntimeError as exc:  # the client was closed meanwhile
            raise TransportError(f"{method} {self.base_url}{path}: {exc}") from exc
        raise_for_status(response)
        return response

    def post_batch(self, body: bytes, timeout: float) -> wire.BatchAck:
        """``POST /api/ingest`` with an encoded `wire.Batch`."""
        if self._closed:
            raise TransportError(f"the transport to {self.base_url} is closed")
        status, header, content = self._batches.post("/api/ingest", body, timeout)
        check_status(status, header, content)
        try:
            return _ack_decoder.decode(content)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DatacatError(f"invalid answer to a batch: {exc}") from exc

    def close(self) -> None:
        """Close the connections; later requests raise `TransportError`."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        self._batches.close()
        if client is not None:
            client.close()

    def _after_fork_in_child(self) -> None:
        # The parent's pooled connections are the parent's: never write to them here.
        self._lock = threading.Lock()
        self._client = None
        self._batches.forget()


def _after_fork_in_child() -> None:
    for transport in list(_transports):
        transport._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
