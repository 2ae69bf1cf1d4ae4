"""The DuckDB file: opening it, migrating it, and handing out cursors.

One `Database` per server process. DuckDB lets one process open a file, and a
connection shared by threads returns wrong results, so every reading thread gets its
own cursor (`reader`) and the writer has one of its own. People's SQL never runs here:
it runs in worker processes over snapshots this database writes into its snapshot
directory, the one directory its locked-down connection may write
(`datacat_server.sqlpool`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb

from datacat_server.errors import StoreError, StoreLockedError
from datacat_server.store.migrations import apply_migrations
from datacat_server.store.schema import view_statements

__all__ = ["Cursors", "Database", "default_snapshot_dir", "lock_down"]

_open_lock = threading.Lock()
_open_paths: set[str] = set()


class Cursors:
    """A DuckDB connection and the cursors handed out on it: one per thread for reading
    (`reader`), others on demand (`new_cursor`), all closed with it; a reconnection
    (`_replace`) makes every cursor from before it stale."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._lock = threading.Lock()
        self._closed = False
        #: Counts reconnections: a thread's cursor from before one is stale.
        self.generation = 0

    def _cursor(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """A new cursor on ``con`` (a subclass may set it up first)."""
        return con.cursor()

    def reader(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor. It sees everything committed."""
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cur is None or getattr(self._local, "generation", 0) != self.generation:
            cur = self.new_cursor()
            self._local.cursor = cur
            self._local.generation = self.generation
        return cur

    def new_cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own, closed with the database."""
        with self._lock:
            if self._closed:
                raise StoreError("the database is closed")
            cur = self._cursor(self._con)
            self._cursors.append(cur)
            return cur

    def _replace(self, reconnect: Callable[[], duckdb.DuckDBPyConnection]) -> None:
        """Close every cursor and the connection, then connect with ``reconnect``."""
        with self._lock:
            if self._closed:
                raise StoreError("the database is closed")
            self._close_all()
            self._con = reconnect()
            self.generation += 1

    def _close_all(self) -> None:
        for cur in self._cursors:
            with contextlib.suppress(duckdb.Error):
                cur.close()
        self._cursors.clear()
        with contextlib.suppress(duckdb.Error):
            self._con.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_all()


class Database(Cursors):
    """An open DuckDB database, migrated to the current schema."""

    def __init__(
        self,
        path: Path | str,
        *,
        heartbeat_grace: float = 3.0,
        memory_limit: str = "2GB",
        snapshot_dir: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.heartbeat_grace = heartbeat_grace
        #: Where snapshots for people's SQL are written: the only directory this
        #: database's connection may touch besides its own file.
        self.snapshot_dir = (snapshot_dir or default_snapshot_dir(self.path)).resolve()
        self._key = str(self.path.resolve())
        with _open_lock:
            # DuckDB hands a second connect() in the same process the same database,
            # which would give one file two writers: refuse it like another process.
            if self._key in _open_paths:
                raise StoreLockedError(
                    f"cannot open {self.path}: it is already open in this process"
                )
            con = _connect(self.path)
            _open_paths.add(self._key)
        self._memory_limit = memory_limit
        try:
            apply_migrations(con)
            for statement in view_statements(heartbeat_grace):
                con.execute(statement)
            lock_down(con, memory_limit, allowed_directories=(self.snapshot_dir,))
        except Exception:
            con.close()
            with _open_lock:
                _open_paths.discard(self._key)
            raise
        super().__init__(con)

    def reopen(self) -> None:
        """Close every cursor and the connection, and open the file again.

        For a database DuckDB invalidated (a checkpoint failed on a full disk): it is
        usable again once opened anew. Raises `StoreError` if it cannot be opened yet.
        """

        def reconnect() -> duckdb.DuckDBPyConnection:
            con = _connect(self.path)
            lock_down(con, self._memory_limit)
            return con

        self._replace(reconnect)

    def close(self) -> None:
        super().close()
        with _open_lock:
            _open_paths.discard(self._key)


def default_snapshot_dir(path: Path) -> Path:
    """``datacat.duckdb.snapshots`` beside ``datacat.duckdb``."""
    return path.with_name(path.name + ".snapshots")


def lock_down(
    con: duckdb.DuckDBPyConnection,
    memory_limit: str,
    *,
    allowed_directories: Sequence[Path] = (),
) -> None:
    """Database-wide: no file access but the allowed directories, no extensions,
    settings frozen. Order matters: directories must be allowed before external access
    is disabled, and once locked, nothing can be set (ARCHITECTURE.md, "People's SQL")."""
    if allowed_directories:
        listed = ", ".join(_quote(f"{d}/") for d in allowed_directories)
        con.execute(f"SET allowed_directories = [{listed}]")
    for statement in (
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        "SET allow_community_extensions = false",
        f"SET memory_limit = '{memory_limit}'",
        "SET enable_external_access = false",
        "SET lock_configuration = true",
    ):
        con.execute(statement)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    if path.parent and not path.parent.exists():
        raise StoreError(f"cannot open {path}: directory {path.parent} does not exist")
    try:
        return duckdb.connect(str(path))
    except duckdb.IOException as exc:
        message = str(exc)
        if "lock" in message.lower():
            raise StoreLockedError(
                f"cannot open {path}: another process holds it ({_lock_holder(message)}). "
                "DuckDB lets one process open a database file: stop that process, or "
                "query through it (`datacat query` talks to a running server)."
            ) from None
        raise StoreError(f"cannot open {path}: {message}") from None
    except duckdb.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from None


def _lock_holder(message: str) -> str:
    marker = "Conflicting lock is held in "
    start = message.find(marker)
    if start < 0:
        return message
    rest = message[start + len(marker) :]
    end = rest.find(")")
    return rest[: end + 1] if end >= 0 else rest
