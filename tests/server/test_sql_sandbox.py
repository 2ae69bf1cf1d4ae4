"""The read-only SQL endpoint: what it answers, and everything it refuses, changing nothing.

One app for the module (its SQL workers start once). The snapshot is not refreshed
during these tests (a long interval), so every file the server and its workers could
write is fingerprinted before and after each statement: the database, its WAL, the
snapshot directory and the workers' directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from datacat_server.app import create_app
from datacat_server.settings import Settings
from tests.server.records import RecordMaker, batch
from tests.support.wait import wait_for

Client = TestClient  # type: ignore[type-arg]

TIMEOUT = 3.0


@dataclasses.dataclass
class Sandbox:
    client: Client
    app: Litestar
    settings: Settings
    root: Path

    def sql(self, sql: str, **params: Any) -> Any:
        return self.client.post("/api/sql", json={"sql": sql}, params=params)

    @property
    def places(self) -> list[Path]:
        """Every directory SQL could write to if a layer failed."""
        home = self.app.state.sql.home
        assert home is not None
        return [self.root, home]

    def files(self) -> dict[str, str]:
        """Every file under the places, with a hash of its content."""
        found = {}
        for place in self.places:
            for path in sorted(place.rglob("*")):
                if path.is_file():
                    found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        return found

    def settled_files(self) -> dict[str, str]:
        """The files, once the writer has nothing left to flush."""
        before = self.files()
        for _ in range(50):
            time.sleep(0.1)
            now = self.files()
            if now == before:
                return now
            before = now
        raise AssertionError("the files keep changing")

    def data(self) -> Any:
        """The data, read by the server itself."""
        cur = self.app.state.store.reader()
        return [
            cur.execute("SELECT count(*) FROM event_log").fetchall(),
            cur.execute("SELECT count(*) FROM sessions").fetchall(),
            cur.execute(
                "SELECT table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY 1"
            ).fetchall(),
        ]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    root = tmp_path_factory.mktemp("sql")
    settings = Settings(
        db_path=root / "datacat.duckdb",
        soft_flush_interval=0.05,
        sql_timeout=TIMEOUT,
        sql_max_rows=100,
        sql_snapshot_interval=3600,
    )
    app = create_app(settings)
    with TestClient(app=app) as client:
        maker = RecordMaker()
        client.post(
            "/api/ingest",
            content=batch(
                maker.start(product="p", state={"a": 1}),
                *(maker.event("e", {"i": i}) for i in range(5)),
            ),
        )
        box = Sandbox(client, app, settings, root)
        assert box.sql("SELECT 1").status_code == 200  # workers and snapshot are ready
        yield box


def test_answers_json_csv_and_parquet(sandbox: Sandbox) -> None:
    answer = sandbox.sql("SELECT name, count(*) AS n FROM events GROUP BY name")
    assert answer.status_code == 200
    body = answer.json()
    assert body["columns"] == ["name", "n"]
    assert body["rows"] == [["e", 5]]
    assert (body["truncated"], body["truncated_by"]) == (False, None)
    assert body["as_of"].endswith("Z")
    assert answer.headers["x-datacat-as-of"]
    csv_answer = sandbox.sql("SELECT 1 AS a, 'x,y' AS b", format="csv")
    assert csv_answer.headers["content-type"].startswith("text/csv")
    assert csv_answer.text == 'a,b\r\n1,"x,y"\r\n'
    parquet = sandbox.sql("SELECT 1 AS a, 'x' AS b", format="parquet")
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.to_pylist() == [{"a": 1, "b": "x"}]
    link = sandbox.client.get("/api/sql", params={"q": "SELECT 42 AS answer", "format": "json"})
    assert link.json()["rows"] == [[42]]


def test_values_are_encoded_as_before(sandbox: Sandbox) -> None:
    answer = sandbox.sql(
        "SELECT 1.5::DECIMAL(4, 1) AS d, TIMESTAMP '2026-01-02 03:04:05' AS t,"
        " DATE '2026-01-02' AS day, INTERVAL 3 DAY AS i, 'ab'::BLOB AS b, [1, 2] AS l,"
        " {'k': 1} AS s, 'nan'::DOUBLE AS n, 170141183460469231731687303715884105727::HUGEINT AS h"
    )
    assert answer.json()["rows"] == [
        [
            "1.5",
            "2026-01-02T03:04:05",
            "2026-01-02",
            "P3D",
            "YWI=",
            [1, 2],
            {"k": 1},
            None,
            170141183460469231731687303715884105727,
        ]
    ]


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
        "/* why */ EXPLAIN SELECT count(*) FROM events",
        "SELECT * FROM range(3)",
        "SELECT * FROM duckdb_tables()",
        "SELECT count(*) FROM test_results",
        "SELECT * FROM session_status",
        "SELECT count(*) FROM metrics",
    ],
)
def test_every_kind_of_read_runs(sandbox: Sandbox, sql: str) -> None:
    answer = sandbox.sql(sql)
    assert answer.status_code == 200, answer.text


def test_the_row_limit_truncates(sandbox: Sandbox) -> None:
    answer = sandbox.sql("SELECT * FROM range(1000)")
    assert len(answer.json()["rows"]) == 100
    assert answer.json()["truncated"] is True
    assert answer.json()["truncated_by"] == "rows"
    assert answer.headers["x-datacat-truncated"] == "rows"
    exact = sandbox.sql("SELECT * FROM range(100)")
    assert (len(exact.json()["rows"]), exact.json()["truncated"]) == (100, False)


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv() is not allowed"),
        ("SELECT * FROM read_text('/etc/hostname')", "read_text() is not allowed"),
        ("SELECT * FROM glob('/etc/*')", "glob() is not allowed"),
        ("SELECT * FROM read_parquet('/tmp/x.parquet')", "read_parquet() is not allowed"),
        ("SELECT * FROM read_duckdb('/tmp/x.duckdb')", "read_duckdb() is not allowed"),
        ("SELECT * FROM '/etc/passwd'", "does not exist"),
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
        ("FORCE CHECKPOINT", "CALL statement"),
        ("CALL checkpoint()", "CALL statement"),
        ("SELECT * FROM checkpoint()", "checkpoint() is not allowed"),
        ("FROM force_checkpoint()", "force_checkpoint() is not allowed"),
        ('SELECT * FROM "CheckPoint"()', "checkpoint() is not allowed"),
        ("SELECT * FROM system.main.checkpoint()", "checkpoint() is not allowed"),
        ("SELECT 1 WHERE EXISTS (FROM checkpoint())", "checkpoint() is not allowed"),
        ("WITH c AS (FROM checkpoint()) SELECT * FROM c", "checkpoint() is not allowed"),
        ("SELECT * FROM query('CHECKPOINT')", "query() is not allowed"),
        ("SELECT * FROM query_table('duckdb_databases')", "query_table() is not allowed"),
        ("SELECT * FROM json_execute_serialized_sql('{}')", "is not allowed"),
        ("SELECT * FROM arrow_scan(1, 2, 3)", "arrow_scan() is not allowed"),
        ("SELECT * FROM enable_logging()", "enable_logging() is not allowed"),
        ("SELECT * FROM enable_profiling()", "enable_profiling() is not allowed"),
        ("SELECT * FROM truncate_duckdb_logs()", "is not allowed"),
        ("SELECT * FROM histogram('events', name)", "histogram() is not allowed"),
        ("SELECT * FROM duckdb_settings()", "duckdb_settings() is not allowed"),
        ("SELECT * FROM duckdb_databases()", "duckdb_databases() is not allowed"),
        ("SELECT * FROM duckdb_extensions()", "duckdb_extensions() is not allowed"),
        ("SELECT * FROM duckdb_secrets()", "duckdb_secrets() is not allowed"),
        ("SELECT * FROM duckdb_temporary_files()", "is not allowed"),
        ("FROM duckdb_databases", "duckdb_databases is not available"),
        ("FROM system.main.duckdb_databases", "duckdb_databases is not available"),
        ("FROM pragma_database_list", "pragma_database_list is not available"),
        ("FROM pg_settings", "pg_settings is not available"),
        ("SELECT current_setting('home_directory')", "current_setting() is not allowed"),
        ("SELECT write_log('x')", "write_log() is not allowed"),
        ("EXPLAIN DELETE FROM event_log", "EXPLAIN may only show the plan of a SELECT"),
        ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN ANALYZE runs the statement"),
        ("explain analyse select 1", "EXPLAIN ANALYZE runs the statement"),
        ("EXPLAIN ANALYZE DELETE FROM event_log", "EXPLAIN ANALYZE runs the statement"),
        ("EXPLAIN ANALYZE COPY sessions TO '/tmp/stolen.csv'", "EXPLAIN ANALYZE"),
        ("EXPLAIN ANALYZE FORCE CHECKPOINT", "EXPLAIN ANALYZE"),
        ("EXPLAIN (ANALYZE) SELECT 1", "EXPLAIN ANALYZE"),
        ("EXPLAIN SELECT * FROM checkpoint()", "checkpoint() is not allowed"),
        ("SELECT 1; DELETE FROM event_log", "one statement at a time"),
        ("SELECT 1; SELECT 2", "one statement at a time"),
        ("UPDATE EXTENSIONS", "not allowed"),
        ("SELECT nextval('no_such_sequence')", "nextval() is not allowed"),
        ("", "no SQL given"),
        ("SELEC 1", "does not parse"),
        ("SELECT 1 AS " + "x" * 100_001, "longer than 100,000 characters"),
    ],
)
def test_refused_with_a_clear_message_and_nothing_changes(
    sandbox: Sandbox, sql: str, needle: str
) -> None:
    files, data = sandbox.settled_files(), sandbox.data()
    answer = sandbox.sql(sql)
    assert answer.status_code == 400, answer.text
    assert needle in answer.json()["detail"]
    assert sandbox.files() == files
    assert sandbox.data() == data
    assert not Path("/tmp/stolen.csv").exists()


def test_the_workers_directory_stays_empty(sandbox: Sandbox) -> None:
    home = sandbox.app.state.sql.home
    assert home is not None
    assert list(home.iterdir()) == []
    assert not os.access(home, os.W_OK) or os.geteuid() == 0  # root may write anywhere


def test_failures_name_no_path_and_no_home(sandbox: Sandbox) -> None:
    db = sandbox.settings.db_path.resolve()
    snapshot = next(sandbox.app.state.store.db.snapshot_dir.glob("*/datacat.duckdb"))
    home = os.path.expanduser("~")
    for sql in (
        f"SELECT * FROM '{db}'",
        f"SELECT CAST('{snapshot}' AS INTEGER)",
        f"SELECT error('{home}/.ssh/id_rsa')",
        f"SELECT error('{sandbox.app.state.sql.home}')",
        f'SELECT * FROM "{snapshot}"',
        f"SELECT * FROM no_such_table_{db.name.replace('.', '_')}",
    ):
        answer = sandbox.sql(sql)
        assert answer.status_code == 400, (sql, answer.text)
        detail = answer.json()["detail"]
        for secret in (str(db), str(db.parent), str(snapshot), home):
            assert secret not in detail, (sql, detail)


@pytest.mark.slow  # 3-11 s here: out of the fast subset
def test_a_query_that_runs_forever_is_stopped_and_others_are_answered_meanwhile(
    sandbox: Sandbox,
) -> None:
    results: dict[str, Any] = {}

    def forever() -> None:
        started = time.monotonic()
        results["answer"] = sandbox.sql(
            "SELECT count(*) FROM range(1000000000000) a, range(1000000) b"
        )
        results["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=forever)
    thread.start()
    wait_for(lambda: sandbox.client.get("/health").json()["sql"]["busy"], "a busy SQL worker")
    meanwhile = time.monotonic()
    assert sandbox.client.get("/health").status_code == 200
    assert sandbox.sql("SELECT 1").json()["rows"] == [[1]]
    assert time.monotonic() - meanwhile < TIMEOUT
    thread.join(30)
    assert results["answer"].status_code == 400
    assert f"longer than {TIMEOUT:g} s" in results["answer"].json()["detail"]
    assert results["seconds"] < TIMEOUT + 5
    assert sandbox.sql("SELECT 2").json()["rows"] == [[2]]


@pytest.mark.slow
def test_a_worker_that_does_not_answer_is_killed_at_the_deadline(sandbox: Sandbox) -> None:
    # A stopped worker cannot even interrupt its own query (as with list_sort, which
    # checks for interrupts only when done): the server kills it at the deadline.
    pool = sandbox.app.state.sql
    restarts = pool.describe()["restarts"]
    results: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        results["answer"] = sandbox.sql("SELECT sleep_ms(1000)")
        results["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while not pool._busy:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (worker,) = pool._busy
    os.kill(worker.proc.pid, signal.SIGSTOP)
    thread.join(30)
    assert results["answer"].status_code == 400
    assert f"longer than {TIMEOUT:g} s" in results["answer"].json()["detail"]
    assert TIMEOUT <= results["seconds"] < TIMEOUT + 10
    assert pool.describe()["restarts"] == restarts + 1
    while worker.proc.returncode is None:  # reaped by the event loop soon
        assert time.monotonic() < deadline + 30
        time.sleep(0.01)
    assert worker.proc.returncode == -signal.SIGKILL
    assert sandbox.sql("SELECT 3").json()["rows"] == [[3]]


@pytest.mark.slow
@pytest.mark.parametrize("n", [50_000_000, 150_000_000])
def test_memory_bombs_end_cleanly_and_the_next_query_works(sandbox: Sandbox, n: int) -> None:
    answer = sandbox.sql(f"SELECT len(list_sort(range({n})))")
    assert answer.status_code == 400, answer.text
    assert sandbox.sql("SELECT 4").json()["rows"] == [[4]]
    assert sandbox.client.get("/health").json()["status"] == "ok"
