"""Posting batches over one keep-alive connection of the standard library's http.client.

The background sender posts a batch every second or so, from a test run or a program
that telemetry must not slow down. httpx does this well but costs, measured here,
~150 ms of CPU to import and ~1 ms of Python per request; in a 5,000-test run that
is several percent of the run. Batches need none of what httpx adds (redirects,
cookies, HTTP/2), so they go through http.client; `DatacatClient`'s REST calls keep
using httpx.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from ._errors import TransportError

__all__ = ["Answer", "BatchConnection"]

#: status, header lookup, body.
Answer = tuple[int, Callable[[str], str | None], bytes]


class BatchConnection:
    """One persistent connection to the server, reopened when it breaks."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"not an http(s) URL: {base_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._headers = {**headers, "Content-Type": "application/json"}
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            import ssl  # only for https servers

            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def post(self, path: str, body: bytes, timeout: float) -> Answer:
        """POST ``body``; a connection the server closed while idle is reopened once."""
        with self._lock:
            for attempt in (1, 2):
                reused = self._conn is not None
                conn = self._conn or self._connect(timeout)
                self._conn = conn
                try:
                    conn.timeout = timeout
                    if conn.sock is not None:
                        conn.sock.settimeout(timeout)
                    conn.request("POST", self._prefix + path, body=body, headers=self._headers)
                    response = conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    self._drop()
                    stale = reused and not isinstance(exc, socket.timeout | TimeoutError)
                    if attempt == 1 and stale:
                        continue  # the keep-alive connection had gone: try a fresh one
                    raise TransportError(f"POST {self._host}{path}: {exc!r}") from exc
                if response.will_close:
                    self._drop()
                return response.status, response.getheader, data
        raise TransportError(f"POST {self._host}{path}: no answer")  # pragma: no cover

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close the connection, ending a post that is waiting on it (it then fails)."""
        conn = self._conn  # not under the lock: a post holds it while it waits
        sock = conn.sock if conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._lock.acquire(timeout=1.0):
            try:
                self._drop()
            finally:
                self._lock.release()

    def forget(self) -> None:
        """After a fork: the parent's connection is not ours to use or close."""
        self._lock = threading.Lock()
        self._conn = None
