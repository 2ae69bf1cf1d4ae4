"""The stored tables (`datacat_server.store.tables`) as DuckLake can hold them.

DuckLake 1.5.5 differs from a DuckDB file in what a table may declare (measured, see
docs/lake-design.md):

- no user-defined types, and no ENUM at all: ``outcome`` is stored as VARCHAR
  (Parquet dictionary-encodes it; the queries compare it with text either way);
- no default for a LIST column (``failing_sids INTEGER[] DEFAULT []``): left out, the
  writer always gives the value;
- a column added by ALTER TABLE can never become NOT NULL (``SET NOT NULL`` needs
  column statistics a new column does not have); tables made here are created whole,
  at the current description, so their NOT NULLs hold. `Table.arrow` refuses a
  missing value for a NOT NULL column before DuckDB sees it, on both stores.

Everything else the descriptions use works as on a file: MAP, JSON, UUID, lists,
constant and ``now()`` defaults, NOT NULL at CREATE TABLE.
"""

from __future__ import annotations

import dataclasses

import duckdb

from datacat_server.store import schema, tables
from datacat_server.store.migrations import Migration
from datacat_server.store.tables import Column, Table
from datacat_server.store.transactions import transaction

__all__ = [
    "INGEST_LOG",
    "LAKE_MIGRATIONS",
    "LAKE_TABLES",
    "LAKE_TYPES",
    "PG_ALIAS",
    "RUN_FINISHES",
    "RUN_STARTS",
    "SESSION_ROWS",
    "SESSION_TABLES",
    "TEST_ROWS",
    "column_ddl",
    "create_tables",
    "table_ddl",
    "view_statements",
]

#: Our column types DuckLake cannot store → what stands in for them.
LAKE_TYPES: dict[str, str] = {"outcome": "VARCHAR"}


def column_ddl(column: Column) -> str:
    """The column's definition in a DuckLake CREATE TABLE."""
    kind = LAKE_TYPES.get(column.type, column.type)
    default = column.default
    if default is not None and kind.endswith("[]"):
        default = None  # "Default value for LIST type not supported"
    default_sql = f" DEFAULT {default}" if default is not None else ""
    not_null = "" if column.nullable else " NOT NULL"
    return f'"{column.name}" {kind}{default_sql}{not_null}'


def table_ddl(table: Table) -> str:
    """CREATE TABLE IF NOT EXISTS for ``table`` in the current (lake) database."""
    body = ",\n    ".join(column_ddl(c) for c in table.columns)
    return f"CREATE TABLE IF NOT EXISTS {table.name} (\n    {body}\n)"


def create_tables(cur: duckdb.DuckDBPyConnection, tables: tuple[Table, ...]) -> None:
    """Create ``tables`` that do not exist yet, in one transaction (one snapshot)."""
    with transaction(cur):
        for table in tables:
            cur.execute(table_ddl(table))


# -- the lake's own layout: append-only tables, and views with the file store's names -----

#: A run's columns set by its finish: on a lake they are a row of their own.
FINISH_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in tables.RUNS if c.source is tables.Source.UPDATED
)

#: Each session once, as it started; what changes (status, state, liveness) lives in
#: PostgreSQL (`datacat_server.store.lake.pg`), and the ``sessions`` view joins both.
SESSION_ROWS = dataclasses.replace(
    tables.SESSIONS,
    name="session_rows",
    doc="One row per session, as it started (the `sessions` view adds what changed).",
)

#: Test identities; a server appends the row of an id it has not written before, so an
#: id may appear more than once (servers that restarted, or whose creator died before
#: its commit): the ``tests`` view keeps the first.
TEST_ROWS = dataclasses.replace(
    tables.TESTS, name="test_rows", doc="Test identities, possibly repeated (see `tests`)."
)

RUN_STARTS = tables.Table(
    "run_starts",
    tuple(c for c in tables.RUNS if c.name not in FINISH_COLUMNS),
    "One row per run, as it started (the `runs` view adds its finish).",
)

RUN_FINISHES = tables.Table(
    "run_finishes",
    (tables.RUNS.column("sid"), *(tables.RUNS.column(name) for name in FINISH_COLUMNS)),
    "A run's finish, appended once (the first one counts).",
)

INGEST_LOG = tables.Table(
    "ingest_log",
    (
        tables.Column("session_id", "UUID", nullable=False, source=tables.Source.WRITER),
        tables.Column(
            "lo",
            "BIGINT",
            nullable=False,
            source=tables.Source.WRITER,
            doc="First sequence number of a run stored (-1: the session's start).",
        ),
        tables.Column("hi", "BIGINT", nullable=False, source=tables.Source.WRITER),
    ),
    "Which (session, sequence numbers) each commit stored, in that commit: what a batch"
    " retried on another server is checked against.",
)

#: Every table of a lake, in the order they are created.
LAKE_TABLES: tuple[Table, ...] = (
    SESSION_ROWS,
    tables.STATE_UPDATES,
    tables.EVENT_LOG,
    tables.METRIC_LOG,
    TEST_ROWS,
    tables.RESULTS,
    tables.RESULT_DETAILS,
    RUN_STARTS,
    RUN_FINISHES,
    INGEST_LOG,
    *tables.DERIVED,
    *tables.QUARANTINE_TABLES,
)

#: The tables retention deletes a session's rows from.
SESSION_TABLES: tuple[str, ...] = (
    "session_rows",
    "state_updates",
    "event_log",
    "metric_log",
    "results",
    "result_details",
    "run_starts",
    "run_finishes",
)

#: The name the catalog's PostgreSQL database is attached as (read-only), for the
#: ``sessions`` view.
PG_ALIAS = "datacat_pg"

#: A session's fields that change, as `datacat_server.store.lake.pg` keeps them:
#: timestamps as microseconds since the epoch.
_LIVE = {
    "updated_at": "make_timestamp(l.updated_at)",
    "ended_at": "make_timestamp(l.ended_at)",
    "state": "CAST(l.state AS JSON)",
    "hung": "l.hung",
    "heartbeat_interval": "l.heartbeat_interval",
    "last_seen": "make_timestamp(l.last_seen)",
    "in_progress": "CAST(l.in_progress AS JSON)",
}


def _sessions_view() -> str:
    columns = []
    for name in tables.SESSIONS.names:
        live = _LIVE.get(name)
        if live is None:
            columns.append(f'r."{name}"')
        else:
            columns.append(f'CASE WHEN l.sid IS NULL THEN r."{name}" ELSE {live} END AS "{name}"')
    return (
        "CREATE OR REPLACE VIEW sessions AS SELECT "
        + ", ".join(columns)
        + f" FROM session_rows r LEFT JOIN {PG_ALIAS}.datacat.sessions_live l ON l.sid = r.sid"
    )


def _runs_view() -> str:
    columns = [
        f'f."{name}"' if name in FINISH_COLUMNS else f'r."{name}"' for name in tables.RUNS.names
    ]
    return (
        "CREATE OR REPLACE VIEW runs AS SELECT "
        + ", ".join(columns)
        + " FROM run_starts r LEFT JOIN (SELECT * FROM run_finishes"
        " QUALIFY row_number() OVER (PARTITION BY sid ORDER BY finished_at) = 1) f"
        " USING (sid)"
    )


def view_statements(heartbeat_grace: float) -> list[str]:
    """The views of a lake: ``sessions``, ``tests`` and ``runs`` over its append-only
    tables (and PostgreSQL's live session rows), then the file store's views."""
    return [
        _sessions_view(),
        "CREATE OR REPLACE VIEW tests AS SELECT * FROM test_rows"
        " QUALIFY row_number() OVER (PARTITION BY test_id ORDER BY first_seen) = 1",
        _runs_view(),
        *schema.view_statements(heartbeat_grace, sessions="session_rows", runs="run_starts"),
    ]


def _create_layout(cur: duckdb.DuckDBPyConnection) -> None:
    for table in LAKE_TABLES:
        cur.execute(table_ddl(table))
    cur.execute("INSERT INTO rollup_state VALUES (TIMESTAMP '1970-01-01')")


#: A lake's migrations, recorded in its own ``schema_migrations`` (applied under the
#: schema lock: `datacat_server.store.lake.pg.SCHEMA_LOCK`). A later one may add
#: nullable columns only: DuckLake cannot make an added column NOT NULL.
LAKE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "lake: append-only tables", run=_create_layout),
)
