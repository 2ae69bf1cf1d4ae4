"""What the rest of the server asks of a store, whichever it is.

Two implementations: `datacat_server.store.Store`, the embedded DuckDB file (one
server owns it), and `datacat_server.store.lake.LakeStore`, a DuckLake (catalog in
PostgreSQL, data on S3 or a shared directory) that any number of servers share. The
API, the queries, the dashboard and the SQL console see only this interface: records
go in through the writer (`write`, `maintain`), reads run on DuckDB cursors whose
default database holds the tables and views of `store/schema.py` (`reader`,
`new_cursor`), and people's SQL reads a `ViewSource` (`view_source`).
"""

from __future__ import annotations

import abc
import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from datacat_client import wire
from datacat_server.store.database import Cursors
from datacat_server.store.health import StoreHealth
from datacat_server.store.retention import RetentionPolicy, RetentionResult
from datacat_server.store.rollups import fold
from datacat_server.store.writer import Writer, WriteResult

if TYPE_CHECKING:
    from datacat_server.sqlpool.source import ViewSource

__all__ = ["StoreBase"]


class StoreBase(abc.ABC):
    """A store: its writer thread, cursors for readers, and what runs in the background."""

    health: StoreHealth
    writer: Writer
    #: The connection and the cursors on it.
    db: Cursors
    #: The server's clock (Unix seconds).
    clock: Callable[[], float]

    async def write(
        self,
        records: Sequence[wire.Record],
        *,
        dedupe: bool = True,
        result_columns: Sequence[Any] = (),
    ) -> WriteResult:
        """Store records (and test results as `wire.ResultColumns`); returns once they
        are committed."""
        future = self.writer.submit(records, dedupe=dedupe, result_columns=result_columns)
        return await asyncio.wrap_future(future)

    def write_sync(
        self,
        records: Sequence[wire.Record],
        *,
        dedupe: bool = True,
        result_columns: Sequence[Any] = (),
    ) -> WriteResult:
        """`write` for code that is not on an event loop."""
        return self.writer.submit(records, dedupe=dedupe, result_columns=result_columns).result()

    async def maintain(self, fn: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        """Run a change that is not records (``fn(cursor)``) in the writer's thread, in a
        transaction of its own; returns ``fn``'s result once committed."""
        return await asyncio.wrap_future(self.writer.maintain(fn))

    def reader(self) -> duckdb.DuckDBPyConnection:
        """This thread's read cursor."""
        return self.db.reader()

    def new_cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own (for a stream read over many requests), closed with the
        store."""
        return self.db.new_cursor()

    @abc.abstractmethod
    def apply_retention(
        self, policy: RetentionPolicy, *, now: dt.datetime | None = None
    ) -> RetentionResult:
        """Delete what the policy no longer keeps (by when the server received each
        session)."""

    def fold_rollups(self) -> None:
        """Fold every result stored so far into the rollups now (tests, benchmarks)."""
        cur = self.db.new_cursor()
        try:
            while fold(cur, max_rows=1_000_000).more:
                pass
        finally:
            cur.close()

    @abc.abstractmethod
    def view_source(self, interval: float) -> ViewSource:
        """What the SQL workers read (``interval``: the least seconds between two
        refreshes of a copy, where the store makes copies)."""

    def leads(self) -> bool:
        """Whether this server runs the work done once per store (retention, the
        automatic quarantine): always for a file, which one server owns."""
        return True

    def files(self) -> list[Path]:
        """Local files whose sizes `/metrics` reports."""
        return []

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the data is, for people (no password)."""

    @abc.abstractmethod
    def close(self) -> None: ...
