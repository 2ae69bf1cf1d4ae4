"""What the store's failures mean, and whether it is healthy now.

DuckDB answers a full disk in two ways. A write or commit that finds no space fails
alone ("No space left on device"), and the database goes on: the request is refused
with 503 and nothing of it is stored. A *checkpoint* that finds no space is fatal:
DuckDB invalidates the database, and every later read and write fails ("database has
been invalidated") until it is opened again, even after space is freed. The writer
then reopens it itself (`Writer`), as soon as opening works; meanwhile `/health`
says the store failed and why, so that a supervisor may restart the server instead.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import duckdb

from datacat_server.errors import DiskFullError, StoreError, StoreFailedError

__all__ = ["StoreHealth", "classify"]

_DISK_FULL = "the disk holding the database is full"


def classify(exc: BaseException) -> StoreError:
    """The store error a DuckDB exception (from a write or a read) stands for."""
    text = str(exc)
    if isinstance(exc, duckdb.FatalException) or "has been invalidated" in text:
        cause = f": {_DISK_FULL}" if "No space left" in text else ""
        return StoreFailedError(
            f"the database failed{cause}; nothing more was stored, and the server reopens"
            " it as soon as it can write again"
        )
    if "No space left on device" in text:
        return DiskFullError(f"{_DISK_FULL}: nothing of this request was stored")
    return exc if isinstance(exc, StoreError) else StoreError(f"write failed: {exc}")


@dataclasses.dataclass
class StoreHealth:
    """Whether the store works: set by the writer as it fails and recovers."""

    #: Why the database cannot be used now (None: it can).
    failed: str | None = None
    #: When the last write found the disk full (0: not since the last good one).
    disk_full_since: float = 0.0
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def note(self, error: StoreError) -> None:
        with self._lock:
            if isinstance(error, StoreFailedError):
                self.failed = str(error)
            elif isinstance(error, DiskFullError) and not self.disk_full_since:
                self.disk_full_since = time.time()

    def recovered(self) -> None:
        with self._lock:
            self.failed = None
            self.disk_full_since = 0.0

    @property
    def reason(self) -> str | None:
        """Why the store is not healthy, or None."""
        if self.failed:
            return self.failed
        if self.disk_full_since:
            return _DISK_FULL + " (writes are refused; reads work)"
        return None
