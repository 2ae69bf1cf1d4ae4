"""The DuckDB store: schema, migrations, the one writer, and cursors for readers."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import duckdb

from datacat_client import wire
from datacat_server.settings import Settings
from datacat_server.store.database import Database
from datacat_server.store.retention import RetentionPolicy, RetentionResult, delete_old
from datacat_server.store.writer import Writer, WriteResult

__all__ = ["Database", "Store", "WriteResult", "Writer", "open_store"]


class Store:
    """The database and its writer, opened and closed together."""

    def __init__(
        self,
        path: Path | str,
        *,
        heartbeat_grace: float = 3.0,
        soft_flush_interval: float = 0.5,
        memory_limit: str = "2GB",
        snapshot_dir: Path | None = None,
    ) -> None:
        self.db = Database(
            path,
            heartbeat_grace=heartbeat_grace,
            memory_limit=memory_limit,
            snapshot_dir=snapshot_dir,
        )
        try:
            self.writer = Writer(self.db, soft_flush_interval=soft_flush_interval)
        except Exception:
            self.db.close()
            raise
        self.writer.start()

    async def write(self, records: Sequence[wire.Record], *, dedupe: bool = True) -> WriteResult:
        """Store records; returns once they are committed."""
        return await asyncio.wrap_future(self.writer.submit(records, dedupe=dedupe))

    def write_sync(self, records: Sequence[wire.Record], *, dedupe: bool = True) -> WriteResult:
        """`write` for code that is not on an event loop."""
        return self.writer.submit(records, dedupe=dedupe).result()

    def apply_retention(
        self, policy: RetentionPolicy, *, now: dt.datetime | None = None
    ) -> RetentionResult:
        """Delete what the policy no longer keeps, then let DuckDB reuse the space."""
        result: RetentionResult = self.writer.maintain(
            lambda cur: delete_old(cur, policy, now)
        ).result()
        if result.sessions:
            self.writer.maintain(lambda cur: cur.execute("CHECKPOINT"), transaction=False).result()
        return result

    def reader(self) -> duckdb.DuckDBPyConnection:
        """This thread's read cursor."""
        return self.db.reader()

    def close(self) -> None:
        self.writer.stop()
        self.db.close()


def open_store(settings: Settings) -> Store:
    """The store the settings describe."""
    return Store(
        settings.db_path,
        heartbeat_grace=settings.heartbeat_grace,
        soft_flush_interval=settings.soft_flush_interval,
        memory_limit=settings.memory_limit,
        snapshot_dir=settings.sql_snapshot_dir,
    )
