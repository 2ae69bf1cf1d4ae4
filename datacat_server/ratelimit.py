"""Rate limiting per token (per client address for requests without a known token).

A token bucket per identity: ``rate`` requests a second on average, bursts of
``burst``. Over it, the answer is 429 with ``Retry-After`` (seconds), which the client
and the pytest plugin honour. Litestar's own limiter counts per client address and
sends no ``Retry-After`` (checked with Litestar 2.25: its 429 carries only the
``RateLimit-*`` headers) and counts per client address; a CI fleet shares one ingest
token and one proxy address, so identity here is the token, as `IdentityMiddleware`
(which runs before this one) found it.

A batch of records is one request, so it counts once. The default (1,000 requests a
second, bursts of 10,000, per token) lets a thousand CI jobs share one token: their
plugins post about one batch a second each.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from typing import Any

from litestar.types import ASGIApp, Receive, Scope, Send

from datacat_server.auth import identity_of

__all__ = ["RateLimitMiddleware", "TokenBuckets"]


class TokenBuckets:
    """One bucket per identity, refilled continuously."""

    def __init__(self, rate: float, burst: float, *, max_identities: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._max = max_identities
        self._swept = -math.inf

    def take(self, identity: str, now: float | None = None) -> float:
        """Take one request's worth; 0 when allowed, else seconds until one is."""
        now = time.monotonic() if now is None else now
        with self._lock:
            level, last = self._buckets.get(identity, (self.burst, now))
            level = min(self.burst, level + (now - last) * self.rate)
            wait = 0.0 if level >= 1 else (1 - level) / self.rate
            self._buckets[identity] = (level - 1 if level >= 1 else level, now)
            if len(self._buckets) > self._max and now - self._swept >= 1.0:
                self._sweep(now)
            return wait

    def _sweep(self, now: float) -> None:
        # At most once a second: a flood of new identities must not make every
        # request walk the map. A bucket that has refilled is the same as no bucket;
        # if the rest is still far over the bound, the least recently seen go too.
        self._swept = now
        full_after = self.burst / self.rate
        kept = {key: entry for key, entry in self._buckets.items() if now - entry[1] < full_after}
        if len(kept) > 2 * self._max:
            newest = sorted(kept.items(), key=lambda item: item[1][1])[-self._max :]
            kept = dict(newest)
        self._buckets = kept


def _identity(scope: Scope) -> str:
    token = identity_of(scope).token
    if token is not None:
        return "token:" + hashlib.sha256(token.secret.encode()).hexdigest()[:32]
    client = scope.get("client")
    return f"address:{client[0] if client else '?'}"


class RateLimitMiddleware:
    """ASGI middleware answering 429 with ``Retry-After`` over the limit."""

    def __init__(self, app: ASGIApp, *, buckets: TokenBuckets, exclude: tuple[str, ...]) -> None:
        self.app = app
        self.buckets = buckets
        self.exclude = exclude

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if str(scope["type"]) != "http" or scope.get("path", "").startswith(self.exclude):
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(_identity(scope))
        if not wait:
            await self.app(scope, receive, send)
            return
        seconds = max(1, math.ceil(wait))
        body = (
            b'{"status_code":429,"detail":"too many requests; retry after '
            + str(seconds).encode()
            + b' s"}'
        )
        start: Any = {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", str(seconds).encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})
