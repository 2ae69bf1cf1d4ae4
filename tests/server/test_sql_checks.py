"""The statement checks and the bounded run of `datacat_server.queries.sql`, without a server."""

from __future__ import annotations

import io
import json

import duckdb
import pyarrow.parquet as pq
import pytest

from datacat_server.queries.sql import (
    ALLOWED_TABLE_FUNCTIONS,
    DENIED_FUNCTIONS,
    DENIED_RELATIONS,
    QueryResult,
    SqlRefused,
    check_statement,
    run_readonly,
    scrub,
)


def _table_functions() -> set[str]:
    con = duckdb.connect()
    rows = con.execute(
        "SELECT DISTINCT function_name FROM duckdb_functions()"
        " WHERE function_type IN ('table', 'table_macro')"
    ).fetchall()
    return {str(row[0]) for row in rows}


def test_every_allowed_name_exists_in_duckdb() -> None:
    con = duckdb.connect()
    functions = {
        str(r[0]) for r in con.execute("SELECT function_name FROM duckdb_functions()").fetchall()
    }
    views = {str(r[0]) for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    assert _table_functions() >= ALLOWED_TABLE_FUNCTIONS
    assert functions >= DENIED_FUNCTIONS
    assert views >= DENIED_RELATIONS


@pytest.mark.parametrize("name", sorted(_table_functions() - ALLOWED_TABLE_FUNCTIONS))
def test_every_other_table_function_is_refused(name: str) -> None:
    with pytest.raises(SqlRefused, match=rf"{name}\(\) is not allowed"):
        check_statement(f"SELECT * FROM {name}()")


@pytest.mark.parametrize("name", sorted(ALLOWED_TABLE_FUNCTIONS))
def test_allowed_table_functions_pass_the_check(name: str) -> None:
    check_statement(f"SELECT * FROM {name}()")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 FROM range(3) WHERE 1 IN (SELECT * FROM checkpoint())",
        "SELECT (SELECT count(*) FROM force_checkpoint())",
        "SELECT * FROM range(3), LATERAL (SELECT * FROM query('SELECT 1'))",
        "SELECT * FROM (SELECT * FROM (SELECT * FROM read_text('x')))",
        "SELECT * FROM unnest((SELECT list(x) FROM read_csv('x')))",
        "SELECT current_setting('home_directory') AS h",
        "SELECT list_transform([1], x -> current_setting('temp_directory'))",
        "SELECT * FROM test_results t JOIN duckdb_databases d ON true",
        "FROM sqlite_master, pg_settings",
    ],
)
def test_names_are_found_wherever_they_hide(sql: str) -> None:
    with pytest.raises(SqlRefused):
        check_statement(sql)


def test_explain_shows_plans_of_selects_only() -> None:
    check_statement("EXPLAIN SELECT * FROM range(3)")
    check_statement("-- a comment\nEXPLAIN /* another */ FROM range(3)")
    for sql in (
        "EXPLAIN ANALYZE SELECT 1",
        "EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'",
        "EXPLAIN COPY (SELECT 1) TO 'x.csv'",
        "EXPLAIN (FORMAT json) SELECT 1",
        "EXPLAIN CHECKPOINT",
    ):
        with pytest.raises(SqlRefused, match="EXPLAIN"):
            check_statement(sql)


def _run(
    sql: str, *, fmt: str = "json", max_rows: int = 100, max_bytes: int = 10_000
) -> QueryResult:
    con = duckdb.connect()
    try:
        return run_readonly(con.cursor(), sql, fmt=fmt, max_rows=max_rows, max_bytes=max_bytes)
    finally:
        con.close()


@pytest.mark.parametrize("fmt", ["json", "csv", "parquet", "text"])
def test_answers_stop_at_the_byte_bound(fmt: str) -> None:
    result = _run("SELECT repeat('x', 100) AS v FROM range(100)", fmt=fmt, max_bytes=2_000)
    assert result.truncated_by == "bytes"
    assert 0 < result.row_count < 100
    assert len(result.body) <= 2_000 or fmt == "parquet"


def test_a_parquet_answer_is_cut_to_the_byte_bound() -> None:
    result = _run(
        "SELECT md5(i::VARCHAR) AS v FROM range(2000) t(i)",
        fmt="parquet",
        max_rows=10_000,
        max_bytes=60_000,
    )
    assert len(result.body) <= 60_000
    table = pq.read_table(io.BytesIO(result.body))
    assert table.num_rows == result.row_count < 2000
    assert result.truncated_by == "bytes"


def test_rows_are_bounded_and_said_so() -> None:
    exact = _run("SELECT * FROM range(10)", max_rows=10)
    assert (exact.row_count, exact.truncated_by) == (10, None)
    cut = _run("SELECT * FROM range(11)", max_rows=10)
    assert (cut.row_count, cut.truncated_by) == (10, "rows")
    assert json.loads(cut.body) == [[i] for i in range(10)]


def test_a_single_row_over_the_bound_gives_no_rows() -> None:
    result = _run("SELECT repeat('x', 5000) AS v", max_bytes=1_000)
    assert (result.row_count, result.truncated_by) == (0, "bytes")
    assert json.loads(result.body) == []


def test_text_cells_are_strings_cut_for_the_console() -> None:
    result = _run("SELECT 1 AS n, NULL AS z, repeat('y', 5000) AS long, [1, 2] AS l", fmt="text")
    assert result.rows == [["1", None, "y" * 2000, "[1, 2]"]]


def test_scrub_removes_paths_and_secrets_but_keeps_the_rest() -> None:
    message = (
        'IO Error: Cannot open "/srv/data/datacat.duckdb" (see https://duckdb.org/docs/x);'
        " 1/2 is fine; home is /home/alice and secret-name"
    )
    clean = scrub(message, ["secret-name"])
    assert "/srv" not in clean
    assert "/home/alice" not in clean
    assert "secret-name" not in clean
    assert "https://duckdb.org/docs/x" in clean
    assert "1/2 is fine" in clean
