"""Where SQL workers read from: a read-only view of the data, and when it changes.

A `ViewSource` answers two questions: what should a worker open now (`current`), and
may an older view go (`hold` / `release`, as workers open and leave views). In
embedded mode it is `SnapshotSource`: copies of the server's database, refreshed while
people query. A lake mode would hand out a DuckLake to attach read-only instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import re
import resource
import shutil
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import duckdb

from datacat_server.store.database import Database
from datacat_server.store.schema import view_statements
from datacat_server.store.transactions import transaction

__all__ = ["SnapshotSource", "View", "ViewSource", "make_snapshot"]

log = logging.getLogger("datacat.sql")

#: Snapshots are refreshed while someone queried within this many seconds.
KEEP_WARM = 600.0

#: Snapshots are never refreshed more often than this (seconds).
MIN_INTERVAL = 0.5

#: A query waits for a due copy when the last copy took at most this many seconds.
FRESH_WAIT = 2.0

#: Copying may take at most this share of one core: the next copy waits at least
#: this many times the CPU time the last one took.
COPY_SHARE = 0.1


@dataclasses.dataclass(frozen=True)
class View:
    """What a worker opens: ``target`` of ``kind`` (a DuckDB file, opened read-only)."""

    generation: int
    target: str
    #: The data is as it was at this moment (UTC).
    as_of: dt.datetime
    kind: str = "duckdb"

    def age(self) -> float:
        return (dt.datetime.now(dt.UTC) - self.as_of).total_seconds()


class ViewSource(Protocol):
    """The read-only view of the data that SQL workers open."""

    async def current(self) -> View:
        """The view a query should use now (waiting for the first one, or a fresh one
        when the last is too old)."""

    def on_change(self, callback: Callable[[View], None]) -> None:
        """Call ``callback`` with each new view (on the event loop)."""

    def hold(self, view: View) -> None:
        """A worker opened ``view``."""

    def release(self, view: View) -> None:
        """A worker closed ``view`` (or died); an old view nobody holds may go."""

    def describe(self) -> dict[str, float | None]:
        """Figures for ``/health``: the view's age, the last refresh's seconds."""

    def secrets(self) -> list[str]:
        """Paths that must never appear in an answer."""

    async def close(self) -> None: ...


@dataclasses.dataclass
class CopyCost:
    wall: float
    cpu: float


def make_snapshot(
    cursor: duckdb.DuckDBPyConnection, path: Path, heartbeat_grace: float
) -> CopyCost:
    """Copy the database ``cursor`` belongs to into a new DuckDB file at ``path``.

    Every base table is copied in one transaction (one consistent MVCC snapshot: the
    writer goes on committing meanwhile), then the views are created from
    `datacat_server.store.schema` as the server creates its own. ``path`` must lie in
    a directory the database allows (`datacat_server.store.database.lock_down`).
    """
    started, cpu = time.perf_counter(), _cpu()
    main = _ident(_one(cursor, "SELECT current_database()"))
    alias = _ident(f"datacat_snapshot_{path.parent.name}")
    tables = [
        str(row[0])
        for row in cursor.execute(
            "SELECT table_name FROM duckdb_tables()"
            " WHERE database_name = current_database() AND schema_name = 'main'"
            " AND NOT temporary ORDER BY table_name"
        ).fetchall()
    ]
    literal = "'" + str(path).replace("'", "''") + "'"
    cursor.execute(f"ATTACH {literal} AS {alias}")
    try:
        with transaction(cursor):
            for table in tables:
                name = _ident(table)
                cursor.execute(f"CREATE TABLE {alias}.{name} AS FROM {main}.{name}")
            cursor.execute(f"USE {alias}")
            try:
                for statement in view_statements(heartbeat_grace):
                    cursor.execute(statement)
            finally:
                cursor.execute(f"USE {main}")
    finally:
        cursor.execute(f"DETACH {alias}")
    return CopyCost(wall=time.perf_counter() - started, cpu=_cpu() - cpu)


def _one(cursor: duckdb.DuckDBPyConnection, sql: str) -> str:
    row = cursor.execute(sql).fetchone()
    return str(row[0]) if row else ""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cpu() -> float:
    # The whole process: DuckDB copies on its own threads. Other work done meanwhile
    # counts too, which only makes the next copy wait longer.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_GENERATION = re.compile(r"^[0-9]+$")


class SnapshotSource:
    """Snapshots of an embedded database, in its snapshot directory.

    Snapshot n is ``<dir>/<n>/<database file name>`` (so its catalog keeps the
    database's name), made on a cursor of the server's database on a thread of its own.
    When a query asks for data:

    - nothing committed since the newest snapshot (the database file and its WAL are as
      they were): that snapshot is the data, no copy is made;
    - data committed since, and copies are quick and frequent (the last took at most
      `FRESH_WAIT`, and one may be made that often): the query waits for a copy that
      starts after it came, as soon as one is due, so a script reads what it has just
      written;
    - data committed since, otherwise: the query answers from the newest snapshot
      (its age is in the answer), and a copy is made when one is due.

    While queries keep coming (`KEEP_WARM`), due copies are made in the background. A
    snapshot nobody holds and that is not the newest is deleted.
    """

    def __init__(self, db: Database, *, interval: float) -> None:
        self.db = db
        self.directory = db.snapshot_dir
        self.interval = interval
        self._name = db.path.name if db.path.suffix else f"{db.path.name}.duckdb"
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="datacat-snapshot")
        self._cursor: duckdb.DuckDBPyConnection | None = None
        self._latest: View | None = None
        self._users: Counter[int] = Counter()
        self._generation = 0
        self._last_cost = CopyCost(0.0, 0.0)
        self._refreshing: asyncio.Future[View] | None = None
        self._last_demand = 0.0
        self._warm_task: asyncio.Task[None] | None = None
        self._closed = False
        self._callbacks: list[Callable[[View], None]] = []
        self._versions: dict[int, object] = {}
        self._started: dict[int, float] = {}
        self._remove_all()  # what an earlier server may have left

    def _remove_all(self) -> None:
        if not self.directory.is_dir():
            return
        for entry in self.directory.iterdir():
            if entry.is_dir() and _GENERATION.match(entry.name):
                shutil.rmtree(entry, ignore_errors=True)

    @property
    def min_interval(self) -> float:
        """Seconds between two copies: the setting (half a second at least), or more
        when copying is costly."""
        cost = self._last_cost
        return max(self.interval, MIN_INTERVAL, cost.cpu / COPY_SHARE, 2 * cost.wall)

    async def current(self) -> View:
        if self._closed:
            raise RuntimeError("the snapshot source is closed")
        self._last_demand = time.monotonic()
        self._keep_warm()
        latest = self._latest
        if latest is None:
            return await self._refresh()
        if not self._changed(latest):
            return latest
        if self._last_cost.wall > FRESH_WAIT or self.min_interval > FRESH_WAIT:
            if latest.age() >= self.min_interval:
                self._start_refresh()
            return latest
        # Copies are quick: wait for one that starts after this query came (once one
        # is due), so that a query reads what was committed before it.
        arrived = time.monotonic()
        try:
            for _ in range(2):
                await asyncio.sleep(max(0.0, self.min_interval - latest.age()))
                latest = await self._refresh()
                if self._started.get(latest.generation, 0.0) >= arrived:
                    break
        except Exception:
            log.exception("refreshing the SQL snapshot failed; answering from the last")
        return self._latest or latest

    def _changed(self, latest: View) -> bool:
        """Whether anything was committed since ``latest`` was copied."""
        return self._version() != self._versions.get(latest.generation)

    def _due(self, latest: View) -> bool:
        """Data was committed since ``latest``, and copying it again is within budget."""
        return latest.age() >= self.min_interval and self._changed(latest)

    def _version(self) -> object:
        """What changes when anything is committed: the database file and its WAL."""
        found: list[tuple[int, int] | None] = []
        for path in (self.db.path, self.db.path.with_name(self.db.path.name + ".wal")):
            try:
                stat = path.stat()
            except FileNotFoundError:
                found.append(None)
            else:
                found.append((stat.st_size, stat.st_mtime_ns))
        return tuple(found)

    def _start_refresh(self) -> asyncio.Future[View]:
        if self._refreshing is None or self._refreshing.done():
            loop = asyncio.get_running_loop()
            self._refreshing = asyncio.ensure_future(self._make(loop))
        return self._refreshing

    async def _refresh(self) -> View:
        return await asyncio.shield(self._start_refresh())

    async def _make(self, loop: asyncio.AbstractEventLoop) -> View:
        self._generation += 1
        generation = self._generation
        version = self._version()  # before copying: a commit meanwhile is copied again
        self._started[generation] = time.monotonic()
        as_of = dt.datetime.now(dt.UTC)
        path = self.directory / str(generation) / self._name
        try:
            cost = await loop.run_in_executor(self._executor, self._copy, path)
        except BaseException:
            shutil.rmtree(path.parent, ignore_errors=True)
            raise
        self._last_cost = cost
        view = View(generation=generation, target=str(path), as_of=as_of)
        self._versions[generation] = version
        previous, self._latest = self._latest, view
        if previous is not None:
            self._forget_unused(previous)
        for callback in self._callbacks:
            callback(view)
        log.debug("snapshot %d made in %.2fs (%.2f CPU s)", generation, cost.wall, cost.cpu)
        return view

    def _copy(self, path: Path) -> CopyCost:
        path.parent.mkdir(parents=True, exist_ok=True)
        if self._cursor is None:
            self._cursor = self.db.new_cursor()
        cost = make_snapshot(self._cursor, path, self.db.heartbeat_grace)
        with contextlib.suppress(OSError):
            path.chmod(0o444)
        return cost

    def _keep_warm(self) -> None:
        if self._warm_task is None or self._warm_task.done():
            self._warm_task = asyncio.get_running_loop().create_task(self._warm())

    async def _warm(self) -> None:
        """Make due copies in the background while queries keep coming."""
        while not self._closed and time.monotonic() - self._last_demand < KEEP_WARM:
            latest = self._latest
            if latest is not None and self._due(latest):
                try:
                    await self._refresh()
                except Exception:
                    log.exception("refreshing the SQL snapshot failed")
            await asyncio.sleep(self.min_interval)

    def on_change(self, callback: Callable[[View], None]) -> None:
        self._callbacks.append(callback)

    def hold(self, view: View) -> None:
        self._users[view.generation] += 1

    def release(self, view: View) -> None:
        self._users[view.generation] -= 1
        if self._users[view.generation] <= 0:
            del self._users[view.generation]
            self._forget_unused(view)

    def _forget_unused(self, view: View) -> None:
        latest = self._latest
        if self._users[view.generation] > 0 or (latest and latest.generation == view.generation):
            return
        self._users.pop(view.generation, None)
        self._versions.pop(view.generation, None)
        self._started.pop(view.generation, None)
        shutil.rmtree(self.directory / str(view.generation), ignore_errors=True)

    def describe(self) -> dict[str, float | None]:
        latest = self._latest
        return {
            "snapshot_age": round(latest.age(), 3) if latest else None,
            "snapshot_seconds": round(self._last_cost.wall, 3) if latest else None,
            "refresh_interval": round(self.min_interval, 3),
        }

    def secrets(self) -> list[str]:
        return [str(self.directory), str(self.db.path.resolve()), str(self.db.path)]

    async def close(self) -> None:
        self._closed = True
        if self._warm_task is not None:
            self._warm_task.cancel()
        if self._refreshing is not None and not self._refreshing.done():
            if self._cursor is not None:
                self._cursor.interrupt()  # a copy of a big store takes seconds
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._refreshing
        self._executor.shutdown(wait=True)
        self._remove_all()
