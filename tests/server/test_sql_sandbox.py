"""The read-only SQL endpoint: what it answers, and everything it refuses, changing nothing."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from litestar.testing import TestClient

from datacat_server.app import create_app
from datacat_server.settings import Settings
from tests.server.records import RecordMaker, batch

Client = TestClient  # type: ignore[type-arg]


@pytest.fixture
def sql_client(db_path: Path) -> Any:
    settings = Settings(
        db_path=db_path, soft_flush_interval=0.05, sql_timeout=1.0, sql_max_rows=100
    )
    with TestClient(app=create_app(settings)) as client:
        maker = RecordMaker()
        client.post(
            "/api/ingest",
            content=batch(
                maker.start(product="p", state={"a": 1}),
                *(maker.event("e", {"i": i}) for i in range(5)),
            ),
        )
        yield client


def _sql(client: Client, sql: str, **params: Any) -> Any:
    return client.post("/api/sql", json={"sql": sql}, params=params)


def _fingerprint(client: Client) -> Any:
    """What must not change: the data, the tables, and the settings."""
    return [
        _sql(client, "SELECT count(*) FROM event_log").json()["rows"],
        _sql(client, "SELECT table_name FROM information_schema.tables ORDER BY 1").json()["rows"],
        _sql(
            client,
            "SELECT name, value FROM duckdb_settings() WHERE name IN"
            " ('enable_external_access', 'lock_configuration', 'memory_limit', 'threads')"
            " ORDER BY name",
        ).json()["rows"],
    ]


def test_answers_json_csv_and_parquet(sql_client: Client) -> None:
    answer = _sql(sql_client, "SELECT name, count(*) AS n FROM events GROUP BY name")
    assert answer.status_code == 200
    assert answer.json()["columns"] == ["name", "n"]
    assert answer.json()["rows"] == [["e", 5]]
    assert answer.json()["truncated"] is False
    csv_answer = _sql(sql_client, "SELECT 1 AS a, 'x,y' AS b", format="csv")
    assert csv_answer.headers["content-type"].startswith("text/csv")
    assert csv_answer.text == 'a,b\r\n1,"x,y"\r\n'
    parquet = _sql(sql_client, "SELECT 1 AS a, 'x' AS b", format="parquet")
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.to_pylist() == [{"a": 1, "b": "x"}]
    link = sql_client.get("/api/sql", params={"q": "SELECT 42 AS answer", "format": "json"})
    assert link.json()["rows"] == [[42]]


@pytest.mark.parametrize(
    "sql",
    [
        "FROM sessions",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "VALUES (1), (2)",
        "DESCRIBE test_results",
        "SHOW TABLES",
        "SUMMARIZE event_log",
        "EXPLAIN SELECT 1",
    ],
)
def test_every_kind_of_read_runs(sql_client: Client, sql: str) -> None:
    assert _sql(sql_client, sql).status_code == 200


def test_the_row_limit_truncates(sql_client: Client) -> None:
    answer = _sql(sql_client, "SELECT * FROM range(1000)")
    assert len(answer.json()["rows"]) == 100
    assert answer.json()["truncated"] is True


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "disabled by configuration"),
        ("SELECT * FROM read_text('/etc/hostname')", "disabled by configuration"),
        ("SELECT * FROM glob('/etc/*')", "disabled by configuration"),
        ("SELECT * FROM read_parquet('/tmp/x.parquet')", "disabled by configuration"),
        ("COPY sessions TO '/tmp/stolen.csv'", "COPY statement"),
        ("COPY (SELECT 1) TO '/tmp/stolen.csv'", "COPY statement"),
        ("EXPORT DATABASE '/tmp/stolen'", "EXPORT statement"),
        ("ATTACH '/tmp/other.duckdb' AS other", "ATTACH statement"),
        ("ATTACH ':memory:' AS mem", "ATTACH statement"),
        ("DETACH other", "DETACH statement"),
        ("INSTALL httpfs", "LOAD statement"),
        ("LOAD httpfs", "LOAD statement"),
        ("LOAD parquet", "LOAD statement"),
        ("CREATE TABLE x (a INTEGER)", "CREATE statement"),
        ("CREATE VIEW v AS SELECT 1", "CREATE statement"),
        ("CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", "CREATE"),
        ("INSERT INTO event_log VALUES (1, 1, now(), 'x', '{}')", "INSERT statement"),
        ("UPDATE sessions SET name = 'owned'", "UPDATE statement"),
        ("DELETE FROM event_log", "DELETE statement"),
        ("TRUNCATE event_log", "DELETE statement"),
        ("DROP TABLE event_log", "DROP statement"),
        ("ALTER TABLE sessions ADD COLUMN x INTEGER", "ALTER statement"),
        ("SET memory_limit = '100GB'", "SET statement"),
        ("SET enable_external_access = true", "SET statement"),
        ("RESET memory_limit", "SET statement"),
        ("USE memory", "SET statement"),
        ("PRAGMA memory_limit = '100GB'", "SET statement"),
        ("PRAGMA show_tables", "PRAGMA statement"),
        ("CHECKPOINT", "CALL statement"),
        ("CALL checkpoint()", "CALL statement"),
        ("EXPLAIN DELETE FROM event_log", "read-only mode"),
        ("EXPLAIN ANALYZE DELETE FROM event_log", "read-only mode"),
        ("EXPLAIN ANALYZE COPY sessions TO '/tmp/stolen.csv'", "disabled by configuration"),
        ("SELECT 1; DELETE FROM event_log", "one statement at a time"),
        ("SELECT 1; SELECT 2", "one statement at a time"),
        ("UPDATE EXTENSIONS", "not allowed"),
        ("SELECT nextval('no_such_sequence')", ""),
        ("", "no SQL given"),
        ("SELEC 1", "does not parse"),
    ],
)
def test_refused_with_a_clear_message_and_nothing_changes(
    sql_client: Client, sql: str, needle: str
) -> None:
    before = _fingerprint(sql_client)
    answer = _sql(sql_client, sql)
    assert answer.status_code == 400, answer.text
    assert needle in answer.json()["detail"]
    assert _fingerprint(sql_client) == before
    assert not Path("/tmp/stolen.csv").exists()


def test_a_write_hidden_in_a_select_fails_read_only(sql_client: Client) -> None:
    answer = _sql(sql_client, "SELECT * FROM (SELECT 1) t, (SELECT setseed(0.5))")
    assert answer.status_code in (200, 400)
    assert _fingerprint(sql_client)[0] == [[5]]


def test_a_query_that_runs_forever_is_stopped_and_others_are_answered_meanwhile(
    sql_client: Client,
) -> None:
    results: dict[str, Any] = {}

    def forever() -> None:
        started = time.monotonic()
        results["answer"] = _sql(
            sql_client, "SELECT count(*) FROM range(1000000000000) a, range(1000000) b"
        )
        results["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=forever)
    thread.start()
    time.sleep(0.2)
    meanwhile = time.monotonic()
    assert sql_client.get("/health").status_code == 200
    assert _sql(sql_client, "SELECT 1").json()["rows"] == [[1]]
    assert time.monotonic() - meanwhile < 1.0
    thread.join(30)
    assert results["answer"].status_code == 400
    assert "longer than 1 s" in results["answer"].json()["detail"]
    assert results["seconds"] < 5
    # The cursor it ran on works again.
    assert _sql(sql_client, "SELECT 2").json()["rows"] == [[2]]
