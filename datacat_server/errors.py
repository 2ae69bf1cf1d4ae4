"""The server's exceptions. HTTP mapping lives in ``api/errors.py``.

::

    DatacatServerError
     ├── StoreError              the database cannot be opened or written
     │    ├── StoreLockedError   another process holds the database file
     │    ├── DiskFullError      the disk holding the database is full (503)
     │    └── StoreFailedError   DuckDB invalidated the database; it is being reopened (503)
     ├── UnknownSessionError     a record names a session that does not exist (404)
     ├── WriterBusyError         the write queue is full; retry later (503)
     └── InvalidInputError       input decoded but breaks a rule or limit (400)
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "DatacatServerError",
    "DiskFullError",
    "InvalidInputError",
    "StoreError",
    "StoreFailedError",
    "StoreLockedError",
    "UnknownSessionError",
    "WriterBusyError",
]


class DatacatServerError(Exception):
    """Base of every error the server raises on purpose."""


class StoreError(DatacatServerError):
    """The database cannot be opened or written."""


class StoreLockedError(StoreError):
    """Another process holds the DuckDB file (only one process may open it)."""


class DiskFullError(StoreError):
    """A write failed for lack of space: nothing of it was stored."""


class StoreFailedError(StoreError):
    """DuckDB invalidated the database after a fatal error (a checkpoint on a full
    disk): nothing can be read or written until it is opened again."""


class UnknownSessionError(DatacatServerError):
    """Records name sessions that were never started."""

    def __init__(self, session_ids: Iterable[str]) -> None:
        self.session_ids = sorted(set(session_ids))
        shown = ", ".join(self.session_ids[:5])
        more = f" and {len(self.session_ids) - 5} more" if len(self.session_ids) > 5 else ""
        super().__init__(f"unknown session: {shown}{more}")


class WriterBusyError(DatacatServerError):
    """The writer's queue is full."""


class InvalidInputError(DatacatServerError):
    """Decoded input that breaks a rule (a limit, an id format)."""
