"""The SQL worker pool and its snapshots: limits, replacement, the queue, freshness, health."""

from __future__ import annotations

import inspect
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from litestar.utils.sync import AsyncCallable

from datacat_server.app import create_app
from datacat_server.settings import Settings, parse_bytes
from datacat_server.sqlpool.pool import PoolConfig, SqlPool, open_sql_pool
from datacat_server.sqlpool.source import CopyCost, SnapshotSource
from datacat_server.store import Store
from tests.server.records import RecordMaker, batch

Client = TestClient  # type: ignore[type-arg]


def _client(db_path: Path, **settings: Any) -> Client:
    return TestClient(
        app=create_app(Settings(db_path=db_path, soft_flush_interval=0.05, **settings))
    )


def _sql(client: Client, sql: str) -> Any:
    return client.post("/api/sql", json={"sql": sql})


def _pool(client: Client) -> dict[str, Any]:
    state: dict[str, Any] = client.get("/health").json()["sql"]
    return state


def _wait(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _pids() -> set[int]:
    """The SQL workers running now."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"datacat_server.sqlpool.worker" in cmdline:
                found.add(int(entry.name))
    return found


@pytest.fixture
def client(db_path: Path) -> Iterator[Client]:
    with _client(db_path, sql_timeout=5.0, sql_snapshot_interval=0.5) as test_client:
        yield test_client


def test_no_worker_runs_before_the_first_query(client: Client) -> None:
    assert _pool(client) == {
        "status": "idle",
        "workers": 0,
        "size": 2,
        "busy": 0,
        "queued": 0,
        "restarts": 0,
        "snapshot_age": None,
        "snapshot_seconds": None,
        "refresh_interval": 0.5,
    }
    assert _sql(client, "SELECT 1").status_code == 200
    _wait(lambda: _pool(client)["workers"] == 2)
    state = _pool(client)
    assert state["status"] == "ok"
    assert state["snapshot_age"] is not None


def test_a_query_reads_what_was_written_before_it(client: Client, db_path: Path) -> None:
    maker = RecordMaker()
    client.post("/api/ingest", content=batch(maker.start(product="p")))
    first = _sql(client, "SELECT count(*) FROM event_log").json()
    assert first["rows"] == [[0]]
    for n in range(1, 4):  # copies are quick here: each query waits for a fresh one
        client.post("/api/ingest", content=batch(maker.event("e")))
        assert _sql(client, "SELECT count(*) FROM event_log").json()["rows"] == [[n]]
    later = _sql(client, "SELECT count(*) FROM events").json()
    assert later["as_of"] > first["as_of"]
    snapshots = db_path.with_name(db_path.name + ".snapshots")
    pool: SqlPool = client.app.state.sql
    # Idle workers move to each new snapshot, and one nobody reads is deleted: the
    # newest stays, and the next one while it is being made.
    _wait(lambda: len(pool._idle) == 2 and len(list(snapshots.iterdir())) <= 2)
    generations = {w.view.generation for w in pool._idle if w.view is not None}
    assert len(generations) <= 2
    client.__exit__(None, None, None)
    assert list(snapshots.iterdir()) == []


def test_leftover_snapshots_are_removed_at_start(db_path: Path) -> None:
    leftover = db_path.with_name(db_path.name + ".snapshots") / "17"
    leftover.mkdir(parents=True)
    (leftover / "datacat.duckdb").write_bytes(b"old")
    unrelated = leftover.parent / "keep-me.txt"
    unrelated.write_text("not ours")
    with _client(db_path):
        assert not leftover.exists()
        assert unrelated.exists()


@pytest.mark.slow
def test_a_full_queue_answers_503_with_retry_after(db_path: Path) -> None:
    with _client(db_path, sql_workers=1, sql_queue=0, sql_timeout=5.0) as client:
        assert _sql(client, "SELECT 1").status_code == 200
        results: dict[str, Any] = {}
        thread = threading.Thread(
            target=lambda: results.update(slow=_sql(client, "SELECT sleep_ms(3000)"))
        )
        thread.start()
        _wait(lambda: _pool(client)["busy"] == 1)
        busy = _sql(client, "SELECT 2")
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1"
        assert "busy" in busy.json()["detail"]
        thread.join(20)
        assert results["slow"].status_code == 200
        assert _sql(client, "SELECT 3").json()["rows"] == [[3]]


@pytest.mark.slow
def test_a_query_past_its_cpu_seconds_is_stopped_and_its_worker_replaced(db_path: Path) -> None:
    with _client(db_path, sql_workers=1, sql_cpu_seconds=1.0, sql_timeout=30.0) as client:
        assert _sql(client, "SELECT 1").status_code == 200
        (before,) = _pids() & _worker_pids(client)
        answer = _sql(client, "SELECT count(*) FROM range(1000000000000) a, range(1000000) b")
        assert answer.status_code == 400
        assert "CPU time" in answer.json()["detail"]
        assert _sql(client, "SELECT 2").json()["rows"] == [[2]]
        assert _pool(client)["restarts"] == 1
        assert before not in _pids()


def _worker_pids(client: Client) -> set[int]:
    pool: SqlPool = client.app.state.sql
    return {w.proc.pid for w in [*pool._idle, *pool._busy]}


def test_a_worker_killed_from_outside_is_replaced(client: Client) -> None:
    assert _sql(client, "SELECT 1").status_code == 200
    _wait(lambda: _pool(client)["workers"] == 2)
    for pid in _worker_pids(client):
        os.kill(pid, signal.SIGKILL)
    for i in range(3):
        answer = _sql(client, f"SELECT {i}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["rows"] == [[i]]
    _wait(lambda: _pool(client)["workers"] == 2)


def test_workers_stop_with_the_server(db_path: Path) -> None:
    with _client(db_path) as client:
        assert _sql(client, "SELECT 1").status_code == 200
        _wait(lambda: len(_worker_pids(client)) == 2)
        pids = _worker_pids(client)
        home = client.app.state.sql.home
    assert not pids & _pids()
    assert not home.exists()


def test_a_pool_that_cannot_start_answers_503_and_the_server_stays_healthy(
    client: Client,
) -> None:
    store = client.app.state.store
    # Far too little memory for DuckDB: no worker can open the data.
    broken = SqlPool(PoolConfig(memory=20_000_000), SnapshotSource(store.db, interval=1.0))
    client.app.state.sql = broken
    try:
        answer = _sql(client, "SELECT 1")
        assert answer.status_code == 503
        assert answer.headers["retry-after"]
        assert "path" not in answer.text
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert health.json()["sql"]["status"] in ("down", "degraded")
        maker = RecordMaker()
        ingest = client.post("/api/ingest", content=batch(maker.start(product="p")))
        assert ingest.status_code == 200
    finally:
        client.blocking_portal.call(broken.close)


def test_sql_settings_come_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "DATACAT_SQL_WORKERS": "3",
            "DATACAT_SQL_QUEUE": "4",
            "DATACAT_SQL_WORKER_MEMORY": "1.5GiB",
            "DATACAT_SQL_CPU_SECONDS": "7",
            "DATACAT_SQL_MAX_BYTES": "1000",
            "DATACAT_SQL_SNAPSHOT_INTERVAL": "9",
            "DATACAT_SQL_SNAPSHOT_DIR": str(tmp_path / "snaps"),
        },
        db_path=tmp_path / "datacat.duckdb",
    )
    store = Store(settings.db_path, snapshot_dir=settings.sql_snapshot_dir)
    try:
        pool = open_sql_pool(store, settings)
        assert pool.config == PoolConfig(
            workers=3,
            queue=4,
            memory=int(1.5 * 2**30),
            timeout=10.0,
            cpu_seconds=7.0,
            max_rows=10_000,
            max_bytes=1000,
        )
        assert pool.source.describe()["refresh_interval"] == 9.0
        assert store.db.snapshot_dir == (tmp_path / "snaps").resolve()
    finally:
        store.close()
    assert parse_bytes("3GB") == 3 * 10**9
    assert parse_bytes("512 MiB") == 512 * 2**20
    for bad, needle in (
        ({"sql_worker_memory": "lots"}, "DATACAT_SQL_WORKER_MEMORY must be a size"),
        ({"sql_worker_memory": "100MB"}, "at least 256MB"),
        ({"sql_workers": 0}, "DATACAT_SQL_WORKERS must be at least 1"),
        ({"sql_max_bytes": 0}, "DATACAT_SQL_MAX_BYTES must be at least 1"),
        ({"sql_cpu_seconds": 0}, "must be positive"),
    ):
        with pytest.raises(ValueError, match=needle):
            Settings(**bad)  # type: ignore[arg-type]


def test_no_guard_or_dependency_waits_for_a_thread(client: Client) -> None:
    """Slow requests may hold every thread of the pool; the guard and the dependencies
    every request goes through must never need one."""
    for route in client.app.routes:
        for handler in getattr(route, "route_handlers", []):
            for guard in handler.resolve_guards():
                assert inspect.iscoroutinefunction(guard), (route.path, guard)
            for name, provider in handler.resolve_dependencies().items():
                assert not isinstance(provider.dependency, AsyncCallable), name


def test_no_copy_is_made_while_nothing_changes(client: Client) -> None:
    maker = RecordMaker()
    client.post("/api/ingest", content=batch(maker.start(product="p")))
    assert _sql(client, "SELECT 1").status_code == 200
    source: SnapshotSource = client.app.state.sql.source
    _wait(lambda: not source._changed(source._latest))  # the writer's last soft flush
    made = source._generation
    deadline = time.monotonic() + 3 * source.min_interval
    while time.monotonic() < deadline:
        assert _sql(client, "SELECT count(*) FROM sessions").json()["rows"] == [[1]]
        time.sleep(0.1)
    assert source._generation == made


@pytest.mark.slow
def test_a_store_slow_to_copy_answers_from_its_snapshot_meanwhile(client: Client) -> None:
    maker = RecordMaker()
    client.post("/api/ingest", content=batch(maker.start(product="p")))
    assert _sql(client, "SELECT count(*) FROM event_log").json()["rows"] == [[0]]
    source: SnapshotSource = client.app.state.sql.source
    source._last_cost = CopyCost(wall=3.0, cpu=0.01)  # as if a copy took 3 s
    assert source.min_interval == 6.0  # never more often than twice a copy's time
    client.post("/api/ingest", content=batch(maker.event("e")))
    stale = _sql(client, "SELECT count(*) FROM event_log").json()
    assert stale["rows"] == [[0]]  # answered from the snapshot it had, without waiting

    def fresh() -> bool:
        return bool(_sql(client, "SELECT count(*) FROM event_log").json()["rows"] == [[1]])

    _wait(fresh, timeout=30)  # a copy was made once one was due


@pytest.mark.slow
def test_a_thousand_rows_of_a_megabyte_are_cut_by_bytes(db_path: Path) -> None:
    # DuckDB makes these rows in one 1 GB vector: the worker must hold it (3 GB of
    # address space) and answer the first rows that fit in the byte bound.
    settings = Settings(db_path=db_path)
    big = "SELECT repeat('x', 1000000) AS big FROM range(1000)"
    with _client(db_path, sql_timeout=60.0) as client:
        answer = _sql(client, big)
        assert answer.status_code == 200, answer.text
        assert answer.json()["truncated_by"] == "bytes"
        assert len(answer.content) < settings.sql_max_bytes + 1000
        assert 1 <= len(answer.json()["rows"]) < 10
        as_csv = client.post("/api/sql", json={"sql": big}, params={"format": "csv"})
        assert as_csv.status_code == 200, as_csv.text
        assert len(as_csv.content) <= settings.sql_max_bytes
        assert as_csv.headers["x-datacat-truncated"] == "bytes"
