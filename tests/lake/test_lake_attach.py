"""A lake on a real PostgreSQL catalog and moto's S3: our tables, created from their
descriptions, take the writer's Arrow batches, give them back, and their Parquet files
land in the bucket; a second connection (another server) sees them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pytest

from datacat_server.store import tables
from datacat_server.store.lake import LakeSettings, connect, cursor
from datacat_server.store.lake.ddl import LAKE_TYPES, create_tables
from tests.support.lake import LakeSpec

pytestmark = [pytest.mark.lake, pytest.mark.slow]

EVERY_TABLE = (*tables.TABLES, *tables.DERIVED)


@pytest.fixture
def lake(lake_spec: LakeSpec) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(LakeSettings.from_env(lake_spec.env()))
    try:
        yield con
    finally:
        con.close()


def _results(sid: int, count: int) -> pa.Table:
    now = dt.datetime(2026, 12, 1, 12, 0, 0)
    return tables.RESULTS.arrow(
        {
            "sid": [sid] * count,
            "seq": list(range(count)),
            "test_id": [i % 97 + 1 for i in range(count)],
            "outcome": ["failed" if i % 10 == 0 else "passed" for i in range(count)],
            "phase": ["call"] * count,
            "started_at": [now] * count,
            "duration": [0.5 + i / 1000 for i in range(count)],
            "setup_duration": [0.0] * count,
            "call_duration": [0.5 + i / 1000 for i in range(count)],
            "teardown_duration": [0.0] * count,
            "worker": ["gw0"] * count,
            "attempt": [0] * count,
            "final": [True] * count,
            "stored_at": [now] * count,
        },
        count,
    )


def test_our_tables_are_created_as_described(lake: duckdb.DuckDBPyConnection) -> None:
    create_tables(lake, EVERY_TABLE)
    for table in EVERY_TABLE:
        stored = lake.execute(
            "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns"
            " WHERE table_catalog = 'lake' AND table_name = ? ORDER BY ordinal_position",
            [table.name],
        ).fetchall()
        assert stored == [(c.name, LAKE_TYPES.get(c.type, c.type), c.nullable) for c in table]
    # Created once: a second server starting does not fail or change them.
    create_tables(lake, EVERY_TABLE)


def test_a_batch_is_written_read_back_and_lands_as_parquet_in_the_bucket(
    lake: duckdb.DuckDBPyConnection, lake_spec: LakeSpec
) -> None:
    create_tables(lake, EVERY_TABLE)
    session_id = str(uuid.uuid4())
    started = dt.datetime(2026, 12, 1, 11, 59)
    sessions = tables.SESSIONS.arrow(
        {
            "sid": [1],
            "id": [session_id],
            "name": ["ci"],
            "product": ["shop"],
            "version": ["1.0"],
            "labels": [[("team", "payments")]],
            "created_at": [started],
            "updated_at": [started],
            "state": ['{"phase": {"step": 2}}'],
            "hung": [False],
            "last_seen": [started],
            "in_progress": ['{"t.py::a": {"worker": "gw0"}}'],
            "received_at": [started],
        },
        1,
    )
    batch = _results(1, 1_000)
    cur = cursor(lake)
    cur.execute("BEGIN TRANSACTION")
    tables.insert(cur, tables.SESSIONS, sessions)
    tables.insert(cur, tables.RESULTS, batch)
    cur.execute("COMMIT")

    row = lake.execute(
        "SELECT id::VARCHAR, labels['team'], state->>'$.phase.step', typeof(state)"
        " FROM sessions WHERE id = CAST(? AS UUID)",
        [session_id],
    ).fetchall()
    assert row == [(session_id, "payments", "2", "JSON")]
    counts = lake.execute(
        "SELECT count(*), count(DISTINCT seq), count_if(outcome = 'failed'), sum(duration)"
        " FROM results WHERE sid = 1"
    ).fetchall()
    assert counts == [(1_000, 1_000, 100, pytest.approx(sum(0.5 + i / 1000 for i in range(1000))))]
    assert lake.execute("SELECT * FROM results ORDER BY seq").arrow().read_all() == batch

    parquet = {k: v for k, v in lake_spec.objects().items() if k.endswith(".parquet")}
    results_files = [k for k in parquet if k.startswith(f"{lake_spec.prefix}main/results/")]
    assert len(results_files) == 1, parquet
    assert parquet[results_files[0]] > 1_000
    # The lake names that very object as the results' file.
    files = lake.execute("SELECT DISTINCT filename FROM results").fetchall()
    assert files == [(f"s3://{lake_spec.bucket}/{results_files[0]}",)]

    # Another server (here: another DuckDB instance) attaches the same lake and sees it.
    other = connect(LakeSettings.from_env(lake_spec.env()))
    try:
        assert other.execute("SELECT count(*) FROM results").fetchall() == [(1_000,)]
        assert other.execute("SELECT count(*) FROM sessions").fetchall() == [(1,)]
    finally:
        other.close()


def test_a_cursor_starts_elsewhere_unless_made_by_cursor(
    lake: duckdb.DuckDBPyConnection,
) -> None:
    plain = lake.cursor()
    assert plain.execute("SELECT current_database()").fetchall() == [("memory",)]
    made = cursor(lake)
    assert made.execute(
        "SELECT current_database(), current_setting('enable_progress_bar')"
    ).fetchall() == [("lake", False)]


def test_not_null_holds_in_the_lake(lake: duckdb.DuckDBPyConnection) -> None:
    create_tables(lake, (tables.RESULTS,))
    with pytest.raises(duckdb.ConstraintException, match="NOT NULL"):
        lake.execute("INSERT INTO results (sid, seq) VALUES (1, NULL)")


def test_a_locked_down_connection_still_writes_its_lake_and_nothing_else(
    lake: duckdb.DuckDBPyConnection, lake_spec: LakeSpec
) -> None:
    """What the store's SQL sandbox needs (`database.lock_down`): external access off
    with the data path allowed, configuration locked; the lake keeps working."""
    create_tables(lake, (tables.RESULTS,))
    lake.execute(f"SET allowed_directories = ['{lake_spec.data_path}']")
    lake.execute("SET enable_external_access = false")
    lake.execute("SET lock_configuration = true")
    tables.insert(lake, tables.RESULTS, _results(2, 50))
    assert lake.execute("SELECT count(*) FROM results").fetchall() == [(50,)]
    with pytest.raises(duckdb.PermissionException):
        lake.execute(f"SELECT * FROM read_parquet('s3://{lake_spec.bucket}/elsewhere/x.parquet')")
    with pytest.raises(duckdb.PermissionException):
        lake.execute("SELECT * FROM read_csv('/etc/passwd')")
