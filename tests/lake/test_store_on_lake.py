"""The compatibility spike, kept as a test: the store's own code (the writer, the views,
the rollup fold, retention) runs unchanged on a DuckLake attached as each cursor's
default database, with our tables created from their descriptions. One server only:
what several servers need is in docs/lake-design.md."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from datacat_client import wire
from datacat_server.store import rollups, tables
from datacat_server.store.lake import LakeSettings, connect, cursor
from datacat_server.store.lake.ddl import create_tables
from datacat_server.store.retention import RetentionPolicy, delete_old
from datacat_server.store.schema import view_statements
from datacat_server.store.transactions import transaction
from datacat_server.store.writer import Writer
from tests.support.lake import LakeSpec

pytestmark = [pytest.mark.lake, pytest.mark.slow]


class LakeCursors:
    """What `Writer` asks of its `Database`: cursors (here: on the lake)."""

    generation = 0

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def new_cursor(self) -> duckdb.DuckDBPyConnection:
        return cursor(self.con)

    def reopen(self) -> None:
        raise AssertionError("not expected here")


@pytest.fixture
def lake(lake_spec: LakeSpec) -> Iterator[LakeCursors]:
    con = connect(LakeSettings.from_env(lake_spec.env()))
    try:
        create_tables(con, (*tables.TABLES, *tables.DERIVED))
        con.execute("INSERT INTO rollup_state VALUES (TIMESTAMP '1970-01-01')")
        for statement in view_statements(3.0):
            con.execute(statement)
        yield LakeCursors(con)
    finally:
        con.close()


def _write(writer: Writer, records: list[Any]) -> tuple[int, int]:
    result = writer.submit(records).result(timeout=120)
    return result.accepted, result.duplicates


def test_the_writer_views_fold_and_retention_run_on_a_lake(lake: LakeCursors) -> None:
    session = str(uuid.uuid4())
    now = time.time()
    results = [
        wire.TestResult(
            session_id=session,
            seq=10 + i,
            timestamp=now,
            nodeid=f"tests/test_a.py::test_{i}",
            outcome="failed" if i % 5 == 0 else "passed",
            call_duration=0.1,
            exc_type="AssertionError" if i % 5 == 0 else None,
            exc_message="boom" if i % 5 == 0 else None,
        )
        for i in range(50)
    ]
    writer = Writer(lake, soft_flush_interval=0.05)  # type: ignore[arg-type]
    writer.start()
    try:
        start = wire.SessionStart(
            session_id=session,
            seq=1,
            timestamp=now,
            name="ci",
            product="shop",
            labels={"team": "payments"},
            state={"phase": "setup"},
            heartbeat_interval=1.0,
        )
        run = wire.RunStart(session_id=session, seq=2, timestamp=now, project="shop")
        assert _write(writer, [start, run]) == (2, 0)
        patch = wire.StateUpdate(session_id=session, seq=100, timestamp=now, state={"n": 1})
        assert _write(writer, [*results, patch]) == (51, 0)
        assert _write(writer, results[:5]) == (0, 5)  # a retried batch
        finish = wire.RunFinish(
            session_id=session, seq=200, timestamp=now + 1, exit_status=1, status="failed"
        )
        end = wire.SessionEnd(session_id=session, seq=201, timestamp=now + 1)
        assert _write(writer, [finish, end]) == (2, 0)
    finally:
        writer.stop()
    # A restarted server rebuilds what it knows of the session from the lake.
    again = Writer(lake, soft_flush_interval=0.05)  # type: ignore[arg-type]
    again.start()
    try:
        assert _write(again, results[:5]) == (0, 5)
    finally:
        again.stop()

    cur = lake.new_cursor()
    assert cur.execute("SELECT count(*), count_if(outcome = 'failed') FROM results").fetchall() == [
        (50, 10)
    ]
    assert cur.execute("SELECT status, state FROM session_status").fetchall() == [
        ("ended", '{"phase":"setup","n":1}')
    ]
    assert cur.execute("SELECT count(*) FROM events WHERE name = 'exception'").fetchall() == [(10,)]
    assert cur.execute("SELECT status FROM runs").fetchall() == [("failed",)]

    folded = rollups.fold(cur)
    assert folded.folded == 50
    assert cur.execute("SELECT sum(runs), sum(failures) FROM test_rollups").fetchall() == [(50, 10)]

    with transaction(cur):
        gone = delete_old(cur, RetentionPolicy(days=1), now=dt.datetime(2100, 1, 1))
    assert gone.sessions == 1
    assert gone.rows["results"] == 50
    assert cur.execute("SELECT count(*) FROM results").fetchall() == [(0,)]
