"""The stores: the embedded DuckDB file (`Store`) and a DuckLake shared by many servers
(`datacat_server.store.lake.LakeStore`), behind one interface (`StoreBase`)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from datacat_server.store.base import StoreBase
from datacat_server.store.database import Database
from datacat_server.store.health import StoreHealth
from datacat_server.store.retention import RetentionPolicy, RetentionResult, delete_old
from datacat_server.store.rollups import Folder, folding
from datacat_server.store.writer import Writer, WriteResult

if TYPE_CHECKING:
    from datacat_server.settings import Settings
    from datacat_server.sqlpool.source import ViewSource

__all__ = ["Database", "Store", "StoreBase", "WriteResult", "Writer", "open_store"]


class Store(StoreBase):
    """The embedded store: one DuckDB file and its writer, opened and closed together."""

    db: Database

    def __init__(
        self,
        path: Path | str,
        *,
        heartbeat_grace: float = 3.0,
        soft_flush_interval: float = 0.5,
        memory_limit: str = "2GB",
        clock: Callable[[], float] = time.time,
        fold_rows: int = 50_000,
        fold_seconds: float = 10.0,
        snapshot_dir: Path | None = None,
    ) -> None:
        self.clock = clock
        self.health = StoreHealth()
        self.db = Database(
            path,
            heartbeat_grace=heartbeat_grace,
            memory_limit=memory_limit,
            snapshot_dir=snapshot_dir,
        )
        try:
            self.writer = Writer(
                self.db, soft_flush_interval=soft_flush_interval, clock=clock, health=self.health
            )
        except Exception:
            self.db.close()
            raise
        self.folder = Folder(self.db.new_cursor, rows=fold_rows, seconds=fold_seconds)
        self.writer.start()
        self.folder.start()

    def apply_retention(
        self, policy: RetentionPolicy, *, now: dt.datetime | None = None
    ) -> RetentionResult:
        """Delete what the policy no longer keeps (by when the server received each
        session), then let DuckDB reuse the space."""
        now = now or dt.datetime.fromtimestamp(self.clock(), dt.UTC).replace(tzinfo=None)
        with folding:  # no fold may be halfway through the results being deleted
            result: RetentionResult = self.writer.maintain(
                lambda cur: delete_old(cur, policy, now)
            ).result()
        if result.sessions:
            self.writer.maintain(lambda cur: cur.execute("CHECKPOINT"), transaction=False).result()
            self.folder.wake()  # the rollups were reset with the deletion: rebuild them
        return result

    def view_source(self, interval: float) -> ViewSource:
        """Snapshots of the file, refreshed while people query."""
        from datacat_server.sqlpool.source import SnapshotSource

        return SnapshotSource(self.db, interval=interval)

    def files(self) -> list[Path]:
        return [self.db.path]

    def describe(self) -> str:
        return str(self.db.path)

    def close(self) -> None:
        self.folder.stop()
        self.writer.stop()
        self.db.close()


def open_store(settings: Settings) -> StoreBase:
    """The store the settings describe: a lake (`Settings.lake`), else the file."""
    lake = settings.lake
    if lake is not None:
        from datacat_server.store.lake.store import LakeStore

        return LakeStore.open(lake, settings)
    return Store(
        settings.db_path,
        heartbeat_grace=settings.heartbeat_grace,
        soft_flush_interval=settings.soft_flush_interval,
        memory_limit=settings.memory_limit,
        snapshot_dir=settings.sql_snapshot_dir,
    )
