"""People's SQL: which statements may run, how one runs bounded, and its answer's bytes.

Nothing here touches the server's database. The server checks a statement in front
(`check_statement`) and hands it to a worker process (`datacat_server.sqlpool`), which
checks it again and runs it with `run_readonly` on its read-only snapshot; `datacat
query --db FILE` runs it the same way on a file no server holds.

The checks, each necessary (DuckDB's settings alone do not stop writes: with external
access off and the configuration locked, CREATE, INSERT, DELETE and DROP still ran;
ARCHITECTURE.md, "People's SQL", has what was checked):

1. DuckDB's own parser classifies the text: exactly one statement, of type SELECT
   (which covers ``FROM t``, ``WITH``, ``VALUES``, ``SUMMARIZE``, ``DESCRIBE``, ``SHOW``)
   or EXPLAIN of such a statement. ``EXPLAIN ANALYZE`` runs what it explains, so it is
   refused, as is everything else: writes, DDL, ``ATTACH``, ``COPY``, ``EXPORT``,
   ``INSTALL``/``LOAD``, ``SET``/``RESET``/``PRAGMA``, ``CALL``.
2. The statement's parse tree (``json_serialize_sql``) names every function and
   relation it uses. Table functions must be on `ALLOWED_TABLE_FUNCTIONS`: DuckDB has
   table functions that checkpoint, run SQL given as text (``query``,
   ``json_execute_serialized_sql``), scan memory at an address (``arrow_scan``), switch
   logging and profiling on, read files, or show paths and settings. Functions in
   `DENIED_FUNCTIONS` and system views in `DENIED_RELATIONS` show settings (with the
   home directory in them), database paths, or touch sequences.

Then, where it runs: a read-only transaction, a time limit (the connection is
interrupted), at most ``max_rows`` rows and ``max_bytes`` bytes of answer, each cut
said in `QueryResult.truncated_by`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import io
import json
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import duckdb
import msgspec

from datacat_server.errors import InvalidInputError

__all__ = [
    "ALLOWED_TABLE_FUNCTIONS",
    "DENIED_FUNCTIONS",
    "DENIED_RELATIONS",
    "FORMATS",
    "MAX_SQL_CHARS",
    "QueryResult",
    "SqlRefused",
    "check_statement",
    "run_readonly",
    "scrub",
]

#: What an answer can be: JSON rows (the API), CSV, Parquet, and ``text`` (rows of
#: strings or null, each cut at `TEXT_CELL_CHARS`: what the console shows).
FORMATS = ("json", "csv", "parquet", "text")

#: Longest statement accepted.
MAX_SQL_CHARS = 100_000

#: A console cell longer than this is cut (the page shows 300 characters, 2,000 on hover).
TEXT_CELL_CHARS = 2_000

#: Table functions people may use: generators, the catalog, JSON and type helpers.
#: Every other table function of DuckDB 2.0 is refused; see SECURITY.md for the list
#: and why (found with ``SELECT DISTINCT function_name FROM duckdb_functions() WHERE
#: function_type LIKE 'table%'``).
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "unnest",
        "repeat",
        "repeat_row",
        "json_each",
        "json_tree",
        "duckdb_columns",
        "duckdb_constraints",
        "duckdb_dependencies",
        "duckdb_functions",
        "duckdb_indexes",
        "duckdb_keywords",
        "duckdb_optimizers",
        "duckdb_schemas",
        "duckdb_sequences",
        "duckdb_tables",
        "duckdb_types",
        "duckdb_views",
        "pragma_table_info",
        "pragma_show",
        "pragma_storage_info",
        "pragma_database_size",
        "pragma_collations",
        "pragma_version",
        "pragma_platform",
        "pg_timezone_names",
        "icu_calendar_names",
        "test_all_types",
    }
)

#: Scalar functions refused: settings (paths, the home directory), sequences, the log.
DENIED_FUNCTIONS = frozenset(
    {"current_setting", "getvariable", "nextval", "currval", "setval", "write_log"}
)

#: DuckDB's built-in views that show database paths, settings or the log.
DENIED_RELATIONS = frozenset(
    {"duckdb_databases", "pragma_database_list", "pg_settings", "duckdb_logs"}
)

_ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
_READS = (
    "only read-only queries (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE,"
    " EXPLAIN) may run here"
)


class SqlRefused(InvalidInputError):
    """The statement may not run here, or failed; the message says why."""


@dataclasses.dataclass
class QueryResult:
    """A statement's answer, encoded in its format."""

    columns: list[str]
    types: list[str]
    #: ``json``/``text``: a JSON array of rows; ``csv``: CSV text; ``parquet``: a file.
    fmt: str
    body: bytes
    row_count: int
    #: ``"rows"`` or ``"bytes"`` when that limit cut the answer, else None.
    truncated_by: str | None
    seconds: float

    @property
    def truncated(self) -> bool:
        return self.truncated_by is not None

    @property
    def rows(self) -> list[list[Any]]:
        """The rows of a ``json`` or ``text`` answer, decoded."""
        if self.fmt not in ("json", "text"):
            raise ValueError(f"a {self.fmt} answer has no rows to decode")
        rows: list[list[Any]] = msgspec.json.decode(self.body)
        return rows


def check_statement(sql: str, cursor: duckdb.DuckDBPyConnection | None = None) -> None:
    """Raise `SqlRefused` unless ``sql`` is one read-only statement that may run here.

    Parsing runs on ``cursor`` when given (it runs no query), else on a private
    in-memory database.
    """
    if not sql.strip():
        raise SqlRefused("no SQL given")
    if len(sql) > MAX_SQL_CHARS:
        raise SqlRefused(f"the statement is longer than {MAX_SQL_CHARS:,} characters")
    statement = _one_statement(sql)
    try:
        kind = statement.type  # UPDATE EXTENSIONS raises here
    except Exception as exc:
        raise SqlRefused(f"this kind of statement is not allowed ({exc})") from None
    if kind not in _ALLOWED:
        name = str(kind).split(".")[-1]
        raise SqlRefused(f"{_READS}; this is a {name} statement")
    query = statement.query
    if kind == duckdb.StatementType.EXPLAIN:
        query = _explained(query)
    _check_names(query, cursor)


def _one_statement(sql: str) -> duckdb.Statement:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise SqlRefused(f"the SQL does not parse: {exc}") from None
    if len(statements) != 1:
        raise SqlRefused(f"one statement at a time, please: this text holds {len(statements)}")
    return statements[0]


def _explained(query: str) -> str:
    """The statement an EXPLAIN explains, which must be a plain SELECT."""
    tokens = [t for t in duckdb.tokenize(query) if t[1] != duckdb.token_type.comment]
    refusal = SqlRefused(
        "EXPLAIN may only show the plan of a SELECT; EXPLAIN ANALYZE runs the statement"
        " and is not allowed here"
    )
    if len(tokens) < 2 or query[tokens[0][0] :].split(None, 1)[0].upper() != "EXPLAIN":
        raise refusal
    inner = query[tokens[1][0] :]
    try:
        statements = duckdb.extract_statements(inner)
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise refusal
    except duckdb.Error:
        raise refusal from None
    return statements[0].query


def _check_names(query: str, cursor: duckdb.DuckDBPyConnection | None) -> None:
    tree = json.loads(_serialized(query, cursor))
    if tree.get("error"):
        raise SqlRefused(f"this statement cannot be checked: {tree.get('error_message', '')}")
    for kind, name in _names(tree):
        if kind == "table function" and name not in ALLOWED_TABLE_FUNCTIONS:
            raise SqlRefused(f"the table function {name}() is not allowed here")
        if kind == "function" and name in DENIED_FUNCTIONS:
            raise SqlRefused(f"the function {name}() is not allowed here")
        if kind == "relation" and name in DENIED_RELATIONS:
            raise SqlRefused(f"{name} is not available here")


def _names(tree: Any) -> Iterator[tuple[str, str]]:
    """Every (kind, lower-case name) of a function or relation in a parse tree."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if node.get("type") == "TABLE_FUNCTION":
            function = node.get("function") or {}
            yield "table function", str(function.get("function_name", "")).lower()
            stack.append(function.get("arguments"))
            stack.extend(v for k, v in node.items() if k != "function")
            continue
        if node.get("class") == "FUNCTION":
            yield "function", str(node.get("function_name", "")).lower()
        elif node.get("type") == "BASE_TABLE":
            yield "relation", str(node.get("table_name", "")).strip('"').lower()
        stack.extend(node.values())


_parser_lock = threading.Lock()
_parser_local = threading.local()


@functools.cache
def _parser() -> duckdb.DuckDBPyConnection:
    """A private in-memory database for parsing (no data, no files, nothing to change)."""
    return duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "threads": 1,
            "lock_configuration": True,
        },
    )


def _serialized(query: str, cur: duckdb.DuckDBPyConnection | None) -> str:
    """``json_serialize_sql(query)``: the statement's parse tree as JSON (runs nothing)."""
    if cur is None:
        cur = getattr(_parser_local, "cursor", None)
    if cur is None:
        with _parser_lock:
            cur = _parser().cursor()
        _parser_local.cursor = cur
    rows = cur.execute("SELECT json_serialize_sql($1)", [query]).fetchall()
    return str(rows[0][0]) if rows else "{}"


def _execute(cur: duckdb.DuckDBPyConnection, sql: str) -> None:
    # Called from a frame holding nothing DuckDB could scan: DuckDB looks up unknown
    # table names among the calling frame's variables (replacement scans).
    cur.execute(sql)


def run_readonly(
    cursor: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    fmt: str = "json",
    max_rows: int = 10_000,
    max_bytes: int = 10_000_000,
    timeout: float = 10.0,
) -> QueryResult:
    """Check ``sql`` and run it on ``cursor`` (dedicated to it), read-only and bounded."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    check_statement(sql, cursor)
    timer = threading.Timer(timeout, cursor.interrupt)
    started = time.perf_counter()
    # Not store.transactions.transaction: importing the store package would load the
    # writer and pyarrow into every SQL worker, which runs under an address-space limit.
    cursor.execute("BEGIN TRANSACTION READ ONLY")
    try:
        timer.start()
        try:
            _execute(cursor, sql)
            description = cursor.description or []
            columns = [d[0] for d in description]
            answer = _Answer(fmt, columns, max_rows, max_bytes)
            answer.fill(cursor)
        except duckdb.InterruptException:
            raise SqlRefused(f"the query ran longer than {timeout:g} s and was stopped") from None
        except duckdb.OutOfMemoryException:
            raise SqlRefused(
                "the query needed more memory than a query may use here and was stopped"
            ) from None
        except duckdb.Error as exc:
            raise SqlRefused(_clean(exc)) from None
        finally:
            timer.cancel()
    finally:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
    body, count, truncated_by = answer.finish()
    return QueryResult(
        columns=columns,
        types=[str(d[1]) for d in description],
        fmt=fmt,
        body=body,
        row_count=count,
        truncated_by=truncated_by,
        seconds=time.perf_counter() - started,
    )


class _Answer:
    """Rows fetched and encoded one by one until a limit; what each limit cut."""

    def __init__(self, fmt: str, columns: list[str], max_rows: int, max_bytes: int) -> None:
        self.fmt = fmt
        self.columns = columns
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.parts: list[bytes] = []
        self.kept: list[tuple[Any, ...]] = []  # Parquet is written from the rows at the end
        self.size = len(self._header())
        self.truncated_by: str | None = None

    def _header(self) -> bytes:
        if self.fmt == "csv":
            return _csv_line(self.columns)
        return b"[]"

    def _encode(self, row: tuple[Any, ...]) -> bytes:
        if self.fmt == "csv":
            return _csv_line(row)
        if self.fmt == "text":
            return _JSON.encode([None if v is None else str(v)[:TEXT_CELL_CHARS] for v in row])
        return _JSON.encode(row)

    def fill(self, cursor: duckdb.DuckDBPyConnection) -> None:
        batch = 64
        while True:
            rows = cursor.fetchmany(batch)
            if not rows:
                return
            for row in rows:
                if len(self.parts) >= self.max_rows:
                    self.truncated_by = "rows"
                    return
                encoded = self._encode(row)
                extra = len(encoded) + (1 if self.parts and self.fmt != "csv" else 0)
                if self.size + extra > self.max_bytes:
                    self.truncated_by = "bytes"
                    return
                self.size += extra
                self.parts.append(b"" if self.fmt == "parquet" else encoded)
                if self.fmt == "parquet":
                    self.kept.append(row)
            # Fetch about as many rows as the bytes left can take (one at least).
            average = max(1, self.size // max(1, len(self.parts)))
            batch = max(1, min(1024, (self.max_bytes - self.size) // average + 1))

    def finish(self) -> tuple[bytes, int, str | None]:
        count = len(self.parts)
        if self.fmt == "csv":
            return self._header() + b"".join(self.parts), count, self.truncated_by
        if self.fmt == "parquet":
            return self._parquet()
        return b"[" + b",".join(self.parts) + b"]", count, self.truncated_by

    def _parquet(self) -> tuple[bytes, int, str | None]:
        rows, truncated_by = self.kept, self.truncated_by
        while True:
            body = _to_parquet(self.columns, rows)
            if len(body) <= self.max_bytes or not rows:
                return body, len(rows), truncated_by
            rows, truncated_by = rows[: len(rows) * 9 // 10], "bytes"


def _csv_line(values: Iterable[Any]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue().encode()


def _fallback(value: Any) -> Any:
    return str(value)


# The same JSON as the API's own encoder (msgspec), with anything unknown as text.
_JSON = msgspec.json.Encoder(enc_hook=_fallback)


def _to_parquet(columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> bytes:
    """The rows as a Parquet file, in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    arrays = []
    for column in values:
        try:
            arrays.append(pa.array(list(column)))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            # Mixed or unsupported types: keep them as text.
            arrays.append(pa.array([None if v is None else str(v) for v in column]))
    table = pa.Table.from_arrays(arrays, names=list(columns))
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _clean(exc: duckdb.Error) -> str:
    text = str(exc)
    if "read-only mode" in text or "read only" in text.lower():
        return f"only reads are allowed here: {text}"
    return text


# An absolute path: a slash that does not follow a word character or a dot, then
# at least one more path segment.
_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/'\"`)(,;]+/)*[^\s/'\"`)(,;]+")


def scrub(message: str, secrets: Iterable[str] = ()) -> str:
    """``message`` without absolute paths or any of ``secrets`` (home, data paths)."""
    message = _PATH.sub("…", message)
    for secret in sorted((s for s in secrets if len(s) > 1), key=len, reverse=True):
        message = message.replace(secret, "…")
    return message
