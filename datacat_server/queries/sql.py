"""Read-only SQL for people: one SELECT-like statement, in a sandbox, bounded.

The layers, each necessary (settings alone do not stop writes, see FACTS.md):

1. DuckDB's own parser classifies the text: exactly one statement, of type SELECT
   (which covers ``FROM t``, ``WITH``, ``VALUES``, ``SUMMARIZE``, ``DESCRIBE``, ``SHOW``)
   or EXPLAIN. Everything else — writes, DDL, ``ATTACH``, ``COPY``, ``EXPORT``,
   ``INSTALL``/``LOAD``, ``SET``/``RESET``/``PRAGMA``, ``CALL`` — is refused unrun.
2. It runs on a cursor of its own inside ``BEGIN TRANSACTION READ ONLY`` (a write that
   got past 1 would fail there, as does ``nextval``), rolled back afterwards.
3. Database-wide, the store disabled external access (no file reads, ``COPY TO``,
   ``ATTACH`` of files, extension installs) and locked the configuration
   (`datacat_server.store.database`).
4. A time limit interrupts the query; rows beyond the row limit are not fetched; the
   database's memory limit bounds what one query may take.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import threading
import time
from typing import Any

import duckdb

from datacat_server.errors import InvalidInputError

__all__ = ["FORMATS", "QueryResult", "SqlRefused", "check_statement", "run_readonly"]

FORMATS = ("json", "csv", "parquet")

_ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


class SqlRefused(InvalidInputError):
    """The statement is not one read-only query; nothing ran."""


@dataclasses.dataclass
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    #: True when the query had more rows than the limit.
    truncated: bool
    seconds: float


def check_statement(sql: str) -> None:
    """Raise `SqlRefused` unless ``sql`` is exactly one SELECT-like statement."""
    if not sql.strip():
        raise SqlRefused("no SQL given")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise SqlRefused(f"the SQL does not parse: {exc}") from None
    if len(statements) != 1:
        raise SqlRefused(f"one statement at a time, please: this text holds {len(statements)}")
    try:
        kind = statements[0].type  # UPDATE EXTENSIONS raises here
    except Exception as exc:
        raise SqlRefused(f"this kind of statement is not allowed ({exc})") from None
    if kind not in _ALLOWED:
        name = str(kind).split(".")[-1]
        raise SqlRefused(
            f"only read-only queries (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE,"
            f" EXPLAIN) may run here; this is a {name} statement"
        )


def _execute(cur: duckdb.DuckDBPyConnection, sql: str) -> None:
    # Called from a frame holding nothing DuckDB could scan: DuckDB looks up unknown
    # table names among the calling frame's variables (replacement scans).
    cur.execute(sql)


def run_readonly(
    cursor: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    max_rows: int = 10_000,
    timeout: float = 10.0,
) -> QueryResult:
    """Run one read-only statement on ``cursor`` (dedicated to it) and fetch its rows."""
    check_statement(sql)
    timer = threading.Timer(timeout, cursor.interrupt)
    started = time.perf_counter()
    cursor.execute("BEGIN TRANSACTION READ ONLY")
    try:
        timer.start()
        try:
            _execute(cursor, sql)
            description = cursor.description or []
            rows = cursor.fetchmany(max_rows + 1)
        except duckdb.InterruptException:
            raise SqlRefused(f"the query ran longer than {timeout:g} s and was stopped") from None
        except duckdb.Error as exc:
            raise SqlRefused(_clean(exc)) from None
        finally:
            timer.cancel()
    finally:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
    return QueryResult(
        columns=[d[0] for d in description],
        types=[str(d[1]) for d in description],
        rows=rows[:max_rows],
        truncated=len(rows) > max_rows,
        seconds=time.perf_counter() - started,
    )


def _clean(exc: duckdb.Error) -> str:
    text = str(exc)
    if "read-only mode" in text or "read only" in text.lower():
        return f"only reads are allowed here: {text}"
    return text


def to_csv(result: QueryResult) -> str:
    """The result as CSV text, with a header line."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(result.columns)
    writer.writerows(result.rows)
    return out.getvalue()


def to_parquet(result: QueryResult) -> bytes:
    """The result as a Parquet file, in memory (the store's file system stays closed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(zip(*result.rows, strict=True)) if result.rows else [() for _ in result.columns]
    arrays = []
    for values in columns:
        try:
            arrays.append(pa.array(list(values)))
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: keep them as text
            arrays.append(pa.array([None if v is None else str(v) for v in values]))
    table = pa.Table.from_arrays(arrays, names=result.columns)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()
