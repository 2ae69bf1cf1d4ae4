"""Our exceptions. Every error the client raises is a `DatacatError`:

    DatacatError
    ├── TransportError          no answer: the server could not be reached (.unreachable:
    │                           nothing listens there) or did not answer in time
    └── APIError                the server answered with an error status (.status_code,
        │                       .detail, .retry_after: a 503's Retry-After, if any)
        ├── RateLimited         429 (.retry_after: seconds, or None when not given)
        └── NotFound            404

Only the plain calls of `DatacatClient` (and `Session.get_details`) raise them; the
background paths (`Session` logging, the sender, the heartbeat monitor) never raise into
the application.
"""

from __future__ import annotations

__all__ = ["APIError", "DatacatError", "NotFound", "RateLimited", "TransportError"]


class DatacatError(Exception):
    """Base class of every error raised by `datacat_client`."""


class TransportError(DatacatError):
    """The server could not be reached, or it did not answer in time.

    ``unreachable`` is True when no connection could be made at all (refused, no such
    host): the server is absent rather than slow.
    """

    def __init__(self, message: str = "", *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class APIError(DatacatError):
    """The server answered with an error status."""

    def __init__(
        self, status_code: int, detail: str = "", *, retry_after: float | None = None
    ) -> None:
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail
        #: Seconds the server asked us to wait (``Retry-After`` of a 503 or 429), if any.
        self.retry_after = retry_after

    def __str__(self) -> str:
        return (
            f"HTTP {self.status_code}: {self.detail}" if self.detail else f"HTTP {self.status_code}"
        )


class RateLimited(APIError):
    """429: the server asks us to come back after ``retry_after`` seconds (None: unsaid)."""

    def __init__(self, retry_after: float | None = None, detail: str = "Too Many Requests") -> None:
        super().__init__(429, detail, retry_after=retry_after)
        self.args = (retry_after, detail)


class NotFound(APIError):
    """404: no such session (or no such endpoint)."""

    def __init__(self, detail: str = "Not Found") -> None:
        super().__init__(404, detail)
        self.args = (detail,)
