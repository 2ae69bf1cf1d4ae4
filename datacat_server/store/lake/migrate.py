"""Moving a single-node DuckDB file into an empty lake (``datacat migrate-store``).

The file is attached read-only to a lake connection; its rows go into the lake's tables
in one lake transaction, and what the lake keeps in PostgreSQL (each session's live
row and state patches, test ids, the sequences behind them) in one PostgreSQL
transaction committed after it. ``ingest_log`` gets each session's stored sequence
numbers as runs, so a client that sends a batch of a migrated session again is
answered as the file store would have (duplicates). Every table's rows are counted in
both places afterwards.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import duckdb

from datacat_server.errors import StoreError
from datacat_server.store import tables
from datacat_server.store.lake import ddl, pg
from datacat_server.store.lake.connect import LakeSettings, cursor
from datacat_server.store.lake.store import prepare
from datacat_server.store.staging import HUNG, RECOVERED
from datacat_server.store.transactions import transaction

__all__ = ["Count", "describe", "migrate_file"]


@dataclasses.dataclass(frozen=True)
class Count:
    """Rows of one table in the file and where they went."""

    table: str
    source: int
    target: int

    @property
    def ok(self) -> bool:
        return self.source == self.target


#: lake table (or PostgreSQL's) ← the file's rows it holds.
_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("sessions", "SELECT count(*) FROM src.sessions", "SELECT count(*) FROM session_rows"),
    ("tests", "SELECT count(*) FROM src.tests", "SELECT count(*) FROM test_rows"),
    ("runs", "SELECT count(*) FROM src.runs", "SELECT count(*) FROM run_starts"),
    (
        "finished runs",
        "SELECT count(*) FROM src.runs WHERE finished_at IS NOT NULL",
        "SELECT count(*) FROM run_finishes",
    ),
    *(
        (name, f"SELECT count(*) FROM src.{name}", f"SELECT count(*) FROM {name}")
        for name in (
            "results",
            "result_details",
            "state_updates",
            "event_log",
            "metric_log",
            *(t.name for t in tables.DERIVED),
            *(t.name for t in tables.QUARANTINE_TABLES),
        )
    ),
)

_SEQ_RUNS = """
WITH d AS (
    SELECT DISTINCT sid, seq FROM (
        SELECT sid, seq FROM src.state_updates WHERE seq IS NOT NULL
        UNION ALL SELECT sid, seq FROM src.event_log WHERE seq IS NOT NULL
        UNION ALL SELECT sid, seq FROM src.metric_log WHERE seq IS NOT NULL
        UNION ALL SELECT sid, seq FROM src.results)
),
g AS (SELECT sid, seq, seq - row_number() OVER (PARTITION BY sid ORDER BY seq) AS grp FROM d)
SELECT s.id AS session_id, min(g.seq) AS lo, max(g.seq) AS hi
FROM g JOIN src.sessions s USING (sid) GROUP BY s.id, g.sid, g.grp
UNION ALL SELECT id, -1, -1 FROM src.sessions
"""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def migrate_file(source: Path, settings: LakeSettings, heartbeat_grace: float = 3.0) -> list[Count]:
    """Copy the DuckDB file ``source`` into the (empty) lake; returns the counts."""
    if not source.is_file():
        raise StoreError(f"{source} is not a file")
    con = prepare(settings, heartbeat_grace)
    conn = pg.connect(settings.catalog, name="datacat migrate-store")
    try:
        cur = cursor(con, settings.alias)
        try:
            cur.execute(f"ATTACH {_literal(str(source))} AS src (READ_ONLY)")
        except duckdb.Error as exc:
            raise StoreError(
                f"cannot open {source}: {exc} (stop the server that has it open first)"
            ) from None
        held = conn.execute("SELECT count(*) FROM datacat.sessions_live").fetchone()
        rows = cur.execute("SELECT count(*) FROM session_rows").fetchall()
        if (held and held[0]) or rows[0][0]:
            raise StoreError("the lake already holds sessions: migrate into an empty lake")
        with conn.transaction():
            _postgres(cur, conn)
            with transaction(cur):
                _lake(cur)
        counts = _counts(cur, conn)
        cur.execute("DETACH src")
        cur.close()
        return counts
    finally:
        conn.close()
        con.close()


def _lake(cur: duckdb.DuckDBPyConnection) -> None:
    def copy(target: tables.Table, select: str) -> None:
        cur.execute(f"INSERT INTO {target.name} BY NAME {select}").fetchall()

    copy(ddl.SESSION_ROWS, "SELECT * FROM src.sessions")
    copy(ddl.TEST_ROWS, "SELECT * FROM src.tests")
    for table in (
        tables.STATE_UPDATES,
        tables.EVENT_LOG,
        tables.METRIC_LOG,
        tables.RESULTS,
        tables.RESULT_DETAILS,
        *tables.QUARANTINE_TABLES,
        *tables.DERIVED,
    ):
        if table.name == "rollup_state":
            cur.execute("DELETE FROM rollup_state").fetchall()
        copy(table, f"SELECT * FROM src.{table.name}")
    starts = ", ".join(f'"{name}"' for name in ddl.RUN_STARTS.names)
    copy(ddl.RUN_STARTS, f"SELECT {starts} FROM src.runs")
    finishes = ", ".join(f'"{name}"' for name in ddl.RUN_FINISHES.names)
    copy(ddl.RUN_FINISHES, f"SELECT {finishes} FROM src.runs WHERE finished_at IS NOT NULL")
    copy(ddl.INGEST_LOG, _SEQ_RUNS)


def _postgres(cur: duckdb.DuckDBPyConnection, conn: Any) -> None:
    sessions = cur.execute(
        """
        SELECT s.sid, s.id::VARCHAR, s.product, s.state::VARCHAR, epoch_us(s.ended_at), s.hung,
               s.heartbeat_interval, epoch_us(s.last_seen), epoch_us(s.updated_at),
               s.in_progress::VARCHAR, epoch_us(s.received_at),
               coalesce((SELECT max(seq) FROM src.state_updates u WHERE u.sid = s.sid), -1),
               coalesce((SELECT max(seq) FROM src.event_log e WHERE e.sid = s.sid
                         AND e.name IN (?, ?)), -1),
               EXISTS (SELECT 1 FROM src.runs r WHERE r.sid = s.sid),
               EXISTS (SELECT 1 FROM src.runs r WHERE r.sid = s.sid AND r.finished_at IS NOT NULL)
        FROM src.sessions s
        """,
        [HUNG, RECOVERED],
    ).fetchall()
    columns: list[Any] = list(zip(*sessions, strict=True)) if sessions else [()] * 15
    conn.execute(
        "INSERT INTO datacat.sessions_live (sid, id, product, state, ended_at, hung,"
        " heartbeat_interval, last_seen, updated_at, in_progress, received_at, state_seq,"
        " hung_seq, has_run, run_finished)"
        " SELECT * FROM unnest(%s::int[], %s::uuid[], %s::text[], %s::jsonb[], %s::int8[],"
        " %s::bool[], %s::float8[], %s::int8[], %s::int8[], %s::jsonb[], %s::int8[],"
        " %s::int8[], %s::int8[], %s::bool[], %s::bool[])",
        [list(column) for column in columns],
    )
    patches = cur.execute(
        "SELECT sid, seq, epoch_us(ts) / 1e6, patch::VARCHAR FROM src.state_updates"
    ).fetchall()
    if patches:
        conn.execute(
            "INSERT INTO datacat.state_patches (sid, seq, ts, patch)"
            " SELECT * FROM unnest(%s::int[], %s::int8[], %s::float8[], %s::jsonb[])",
            [list(column) for column in zip(*patches, strict=True)],
        )
    tests = cur.execute("SELECT project, nodeid, test_id FROM src.tests").fetchall()
    if tests:
        conn.execute(
            "INSERT INTO datacat.test_ids (project, nodeid, test_id)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::int[])",
            [list(column) for column in zip(*tests, strict=True)],
        )
    for sequence, table, column in (
        ("datacat.sids", "datacat.sessions_live", "sid"),
        ("datacat.test_ids_seq", "datacat.test_ids", "test_id"),
    ):
        conn.execute(
            f"SELECT setval('{sequence}', coalesce((SELECT max({column}) FROM {table}), 0) + 1,"
            " false)"
        )


def _counts(cur: duckdb.DuckDBPyConnection, conn: Any) -> list[Count]:
    counts = []
    for name, source, target in _CHECKS:
        counts.append(
            Count(
                name,
                int(cur.execute(source).fetchall()[0][0]),
                int(cur.execute(target).fetchall()[0][0]),
            )
        )
    for name, source, table in (
        ("live sessions (PostgreSQL)", "SELECT count(*) FROM src.sessions", "sessions_live"),
        ("test ids (PostgreSQL)", "SELECT count(*) FROM src.tests", "test_ids"),
    ):
        row = conn.execute(f"SELECT count(*) FROM datacat.{table}").fetchone()
        counts.append(
            Count(name, int(cur.execute(source).fetchall()[0][0]), int(row[0]) if row else -1)
        )
    return counts


def describe(counts: list[Count]) -> str:
    """The counts as lines for people."""
    width = max(len(c.table) for c in counts)
    return "\n".join(
        f"{c.table:<{width}}  {c.source:>10}  {c.target:>10}  {'ok' if c.ok else 'MISMATCH'}"
        for c in counts
    )
