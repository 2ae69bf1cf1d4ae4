"""`LakeStore`: DataCat's store on a DuckLake that any number of servers share.

Each server attaches the lake (catalog in PostgreSQL, data on S3 or a shared
directory) and the catalog's PostgreSQL database read-only (``datacat_pg``, for the
``sessions`` view), and keeps three psycopg connections of its own: its writer's
(`pg.Authority`: claims, ids, live session rows, the ingest gate), the leadership's
(`Leadership`: the advisory lock that makes one server at a time run the work done
once per lake), and one while it sets the lake up (the schema lock).

What runs where:

- on every server: the writer (`LakeWriter`), readers, the SQL console's workers
  (which attach the lake read-only themselves: `LakeViewSource`);
- on the leader only: folding rollups, retention (`apply_retention`, under the
  ingest gate taken alone), the automatic quarantine (the app asks `leads`), and the
  lake's own upkeep (`compact`: merging small files, expiring snapshots, deleting the
  files no snapshot needs). When the leader dies, PostgreSQL frees its lock with its
  connection and another server takes it within `Leadership.interval` seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import psycopg

from datacat_server.errors import StoreError
from datacat_server.store import rollups
from datacat_server.store.base import StoreBase
from datacat_server.store.database import Cursors
from datacat_server.store.health import StoreHealth
from datacat_server.store.lake import ddl, pg
from datacat_server.store.lake.connect import (
    LakeSettings,
    connect,
    cursor,
    default_extension_directory,
    redact,
)
from datacat_server.store.lake.writer import CRASH_AFTER_COMMIT, LakeWriter
from datacat_server.store.migrations import apply_migrations
from datacat_server.store.retention import RetentionPolicy, RetentionResult, expired_sql
from datacat_server.store.transactions import transaction

if TYPE_CHECKING:
    from datacat_server.settings import Settings
    from datacat_server.sqlpool.source import View, ViewSource

__all__ = ["LakeDatabase", "LakeStore", "LakeViewSource", "Leadership", "prepare"]

log = logging.getLogger("datacat.lake")

#: Results stored within this many seconds stay in the rollups' tail (read exactly at
#: query time) rather than being folded: a server stamps ``stored_at`` before its lake
#: commit (it takes seconds at worst, with DuckLake's retries), so rows stamped earlier
#: than the newest visible ones may still arrive.
FOLD_LAG = 60.0


def attach_catalog_db(con: duckdb.DuckDBPyConnection, settings: LakeSettings) -> None:
    """Attach the catalog's PostgreSQL database read-only as `ddl.PG_ALIAS` (the
    ``sessions`` view reads ``datacat.sessions_live`` there)."""
    literal = "'" + settings.catalog.replace("'", "''") + "'"
    try:
        con.execute(f"ATTACH {literal} AS {ddl.PG_ALIAS} (TYPE postgres, READ_ONLY)")
    except duckdb.Error as exc:
        raise StoreError(f"cannot attach the lake's catalog database: {redact(str(exc))}") from None


def prepare(settings: LakeSettings, heartbeat_grace: float) -> duckdb.DuckDBPyConnection:
    """Connect to the lake, set it up or migrate it, and (re)create its views: under
    the schema lock, so two servers starting at once do not both do it."""
    lock = pg.connect(settings.catalog, name="datacat schema")
    try:
        with pg.advisory_lock(lock, pg.SCHEMA_LOCK):
            pg.ensure_schema(lock)
            con = connect(settings)
            try:
                attach_catalog_db(con, settings)
                cur = cursor(con, settings.alias)
                applied = apply_migrations(cur, ddl.LAKE_MIGRATIONS)
                if applied:
                    log.info("lake migrations applied: %s", applied)
                for statement in ddl.view_statements(heartbeat_grace):
                    cur.execute(statement)
                cur.close()
            except BaseException:
                con.close()
                raise
    finally:
        lock.close()
    return con


class LakeDatabase(Cursors):
    """The lake's DuckDB connection, handing out cursors on the lake (as
    `datacat_server.store.database.Database` does for a file)."""

    def __init__(self, settings: LakeSettings, con: duckdb.DuckDBPyConnection) -> None:
        self.settings = settings
        super().__init__(con)

    def _cursor(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        return cursor(con, self.settings.alias)

    def reopen(self) -> None:
        """Connect again (after the connection failed)."""

        def reconnect() -> duckdb.DuckDBPyConnection:
            con = connect(self.settings)
            attach_catalog_db(con, self.settings)
            return con

        self._replace(reconnect)


class Leadership:
    """Whether this server leads the lake's background work: it holds
    `pg.LEADER_LOCK` on a connection of its own, tried every ``interval`` seconds.
    ``on_lead`` runs in this thread after each check while this server leads."""

    def __init__(
        self, dsn: str, *, interval: float = 2.0, on_lead: Callable[[], None] | None = None
    ) -> None:
        self._dsn = dsn
        self.interval = interval
        self._on_lead = on_lead
        self._conn: psycopg.Connection[Any] | None = None
        self._held = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="datacat-leader", daemon=True)

    @property
    def held(self) -> bool:
        return self._held.is_set()

    def start(self) -> None:
        self._check()
        self._thread.start()

    def _check(self) -> None:
        try:
            if self._conn is None or self._conn.closed:
                self._held.clear()
                self._conn = pg.connect(self._dsn, name="datacat leader")
            if self._held.is_set():
                self._conn.execute("SELECT 1").fetchall()
                return
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", [pg.LEADER_LOCK])
            got = row.fetchone()
            if got and got[0]:
                log.info("this server now leads the lake's background work")
                self._held.set()
        except Exception as exc:
            if self._held.is_set():
                log.warning("lost the lead of the lake's background work: %s", exc)
            self._held.clear()
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
            self._conn = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._check()
            if self._held.is_set() and self._on_lead is not None:
                try:
                    self._on_lead()
                except Exception:
                    log.exception("the lake's background work failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30.0)
        self._held.clear()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


class LakeStore(StoreBase):
    """The store on a lake: see the module's docstring."""

    db: LakeDatabase

    def __init__(
        self,
        settings: LakeSettings,
        *,
        heartbeat_grace: float = 3.0,
        soft_flush_interval: float = 0.5,
        clock: Callable[[], float] = time.time,
        fold_rows: int = 50_000,
        fold_seconds: float = 10.0,
        fold_lag: float = FOLD_LAG,
        compact_interval: float = 600.0,
        lead_interval: float = 2.0,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.health = StoreHealth()
        self.db = LakeDatabase(settings, prepare(settings, heartbeat_grace))
        self._compact_interval = compact_interval
        self._last_compact = time.monotonic()
        crash = os.environ.get(CRASH_AFTER_COMMIT)
        try:
            self.writer: LakeWriter = LakeWriter(
                self.db,
                pg.Authority(settings.catalog),
                soft_flush_interval=soft_flush_interval,
                clock=clock,
                health=self.health,
                crash_after=int(crash) if crash else None,
            )
        except Exception:
            self.db.close()
            raise
        self.leadership = Leadership(settings.catalog, interval=lead_interval, on_lead=self._upkeep)
        self.folder = rollups.Folder(
            self.db.new_cursor,
            rows=fold_rows,
            seconds=fold_seconds,
            enabled=self.leads,
            lag=fold_lag,
        )
        self.writer.start()
        self.leadership.start()
        self.folder.start()

    @classmethod
    def open(cls, lake: LakeSettings, settings: Settings) -> LakeStore:
        """The lake store ``settings`` describe."""
        return cls(
            lake,
            heartbeat_grace=settings.heartbeat_grace,
            soft_flush_interval=settings.soft_flush_interval,
        )

    def leads(self) -> bool:
        return self.leadership.held

    # -- background work, on the leader ---------------------------------------------

    def _upkeep(self) -> None:
        if time.monotonic() - self._last_compact < self._compact_interval:
            return
        self._last_compact = time.monotonic()
        self.compact()

    def compact(self, *, keep: float = 3600.0) -> None:
        """Merge small files, expire snapshots older than ``keep`` seconds, and delete
        the files no snapshot needs any more (DuckLake's own maintenance)."""
        alias = self.settings.alias
        cur = self.db.new_cursor()
        try:
            cur.execute(f"CALL ducklake_merge_adjacent_files('{alias}')").fetchall()
            cur.execute(
                f"CALL ducklake_expire_snapshots('{alias}',"
                f" older_than => now() - INTERVAL {int(keep)} SECOND)"
            ).fetchall()
            cur.execute(
                f"CALL ducklake_cleanup_old_files('{alias}',"
                f" older_than => now() - INTERVAL {int(keep)} SECOND)"
            ).fetchall()
        except duckdb.Error as exc:  # a conflict with another writer: next time
            log.info("lake compaction not done this time: %s", redact(str(exc)))
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")
        finally:
            cur.close()

    def apply_retention(
        self, policy: RetentionPolicy, *, now: dt.datetime | None = None
    ) -> RetentionResult:
        """Delete what the policy no longer keeps, from the lake and PostgreSQL. The
        DELETE runs with the ingest gate taken alone: it would otherwise lose against
        every server's concurrent insert (DuckLake detects conflicts per table)."""
        now = now or dt.datetime.fromtimestamp(self.clock(), dt.UTC).replace(tzinfo=None)
        query = expired_sql(policy, now)
        if query is None:
            return RetentionResult(0, {})
        authority = self.writer.authority

        def delete(cur: duckdb.DuckDBPyConnection) -> RetentionResult:
            with authority.exclusive_gate(), transaction(cur):
                result, sids = _delete_sessions(cur, query)
            authority.forget(sids)
            return result

        with rollups.folding:
            result: RetentionResult = self.writer.maintain(delete, transaction=False).result()
        if result.sessions:
            self.folder.wake()
        return result

    # -- reads -----------------------------------------------------------------------

    def view_source(self, interval: float) -> ViewSource:
        return LakeViewSource(self.settings)

    def describe(self) -> str:
        return f"the DuckLake at {self.settings.data_path}"

    def close(self) -> None:
        self.leadership.stop()
        self.folder.stop()
        self.writer.stop()
        self.db.close()


def _delete_sessions(
    cur: duckdb.DuckDBPyConnection, query: tuple[str, list[object]]
) -> tuple[RetentionResult, list[int]]:
    cur.execute(f"CREATE OR REPLACE TEMP TABLE _expired AS {query[0]}", query[1])
    sids = [int(row[0]) for row in cur.execute("SELECT sid FROM _expired").fetchall()]
    rows: dict[str, int] = {}
    if sids:
        done = cur.execute(
            "DELETE FROM ingest_log WHERE session_id IN"
            " (SELECT id FROM session_rows WHERE sid IN (SELECT sid FROM _expired))"
        ).fetchall()
        rows["ingest_log"] = int(done[0][0]) if done else 0
        for table in ddl.SESSION_TABLES:
            done = cur.execute(
                f"DELETE FROM {table} WHERE sid IN (SELECT sid FROM _expired)"
            ).fetchall()
            rows[table] = int(done[0][0]) if done else 0
        rollups.reset(cur)
    cur.execute("DROP TABLE _expired")
    return RetentionResult(len(sids), rows), sids


# -- the SQL console -----------------------------------------------------------------


class LakeViewSource:
    """What the SQL console's workers open on a lake: the lake itself, attached
    read-only by each worker (`open_lake_view`); always current, nothing to copy."""

    def __init__(self, settings: LakeSettings) -> None:
        # The workers run with a home of their own: name the server's directory.
        directory = settings.extension_directory or default_extension_directory()
        settings = dataclasses.replace(settings, extension_directory=directory)
        self._target = json.dumps(
            {
                field.name: str(value) if isinstance(value, Path) else value
                for field in dataclasses.fields(settings)
                if (value := getattr(settings, field.name)) is not None
            }
        )
        self._secrets = [s for s in (settings.s3_secret, settings.s3_session_token) if s]

    def _view(self) -> View:
        from datacat_server.sqlpool.source import View

        return View(1, self._target, dt.datetime.now(dt.UTC), kind="ducklake")

    async def current(self) -> View:
        return self._view()

    def on_change(self, callback: Callable[[View], None]) -> None:
        pass  # one view, always current

    def hold(self, view: View) -> None:
        pass

    def release(self, view: View) -> None:
        pass

    def describe(self) -> dict[str, float | None]:
        return {"snapshot_age": 0.0}

    def secrets(self) -> list[str]:
        return list(self._secrets)

    async def close(self) -> None:
        pass


def open_lake_view(target: str, config: dict[str, Any]) -> tuple[duckdb.DuckDBPyConnection, str]:
    """A SQL worker's read-only connection to the lake ``target`` describes (JSON of
    `LakeSettings`), locked down: no file but the lake's data, no extension loads, no
    setting changes (``config``: the worker's own settings, applied after attaching).
    Returns it and the name each of its cursors must ``USE``."""
    values = json.loads(target)
    if "extension_directory" in values:
        values["extension_directory"] = Path(values["extension_directory"])
    settings = LakeSettings(**values)
    directory = settings.extension_directory or default_extension_directory()
    con = duckdb.connect(
        ":memory:",
        config={
            "extension_directory": str(directory),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        },
    )
    try:
        con.execute("SET enable_progress_bar = false")
        # The server installed them into this directory; a worker may write no file.
        for name in ("ducklake", "postgres", "httpfs") if settings.on_s3 else ("ducklake",):
            con.execute(f"LOAD {name}")
        if settings.on_s3:
            con.execute(settings.secret_sql())
        con.execute(
            f"ATTACH {_quote('ducklake:postgres:' + settings.catalog)} AS {settings.alias}"
            " (READ_ONLY)"
        )
        con.execute(f"USE {settings.alias}")
        attach_catalog_db(con, settings)
        data = settings.data_path if settings.on_s3 else str(Path(settings.data_path).resolve())
        con.execute(f"SET allowed_directories = [{_quote(data.rstrip('/') + '/')}]")
        # External access goes last: nothing else could be set after it.
        ordered = sorted(config.items(), key=lambda item: item[0] == "enable_external_access")
        for name, value in ordered:
            if name == "lock_configuration":
                continue
            if isinstance(value, bool):
                literal = str(value).lower()
            elif isinstance(value, int | float):
                literal = str(value)
            else:
                literal = _quote(str(value))
            con.execute(f"SET {name} = {literal}")
        con.execute("SET lock_configuration = true")
    except duckdb.Error as exc:
        con.close()
        raise StoreError(redact(str(exc), settings.s3_secret)) from None
    except BaseException:
        con.close()
        raise
    return con, settings.alias


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
