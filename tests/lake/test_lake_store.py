"""`LakeStore`: two stores (two servers' worth: each its own DuckDB connection and
PostgreSQL connections) on one real lake (PostgreSQL 15 catalog, moto S3)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from datacat_client import wire
from datacat_server.app import create_app
from datacat_server.settings import Settings
from datacat_server.store.lake import LakeSettings
from datacat_server.store.lake.store import LakeStore
from datacat_server.store.retention import RetentionPolicy
from tests.support.lake import LakeSpec

pytestmark = [pytest.mark.lake, pytest.mark.slow]

Opener = Callable[..., LakeStore]


@pytest.fixture
def open_store(lake_spec: LakeSpec) -> Iterator[Opener]:
    """Opens stores on this test's lake; closes them all afterwards."""
    opened: list[LakeStore] = []

    def opener(**kwargs: Any) -> LakeStore:
        kwargs.setdefault("soft_flush_interval", 0.05)
        store = LakeStore(LakeSettings.from_env(lake_spec.env()), **kwargs)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _results(session: str, seqs: range, now: float) -> list[wire.Record]:
    return [
        wire.TestResult(
            session_id=session,
            seq=seq,
            timestamp=now,
            nodeid=f"tests/test_a.py::test_{seq}",
            outcome="failed" if seq % 7 == 0 else "passed",
            call_duration=0.01,
        )
        for seq in seqs
    ]


def _status(store: LakeStore, session: str) -> tuple[str, Any]:
    rows = (
        store.reader()
        .execute("SELECT status, state FROM session_status WHERE id = CAST(? AS UUID)", [session])
        .fetchall()
    )
    assert len(rows) == 1, rows
    return str(rows[0][0]), rows[0][1]


def test_two_servers_compose_one_session_and_store_each_result_once(open_store: Opener) -> None:
    one, two = open_store(), open_store()
    session, now = str(uuid.uuid4()), time.time()
    start = wire.SessionStart(
        session_id=session, seq=0, timestamp=now, product="shop", heartbeat_interval=30.0
    )
    assert one.write_sync([start]).accepted == 1
    run = wire.RunStart(session_id=session, seq=1, timestamp=now, project="shop", branch="main")
    patch = wire.StateUpdate(session_id=session, seq=2, timestamp=now, state={"a": {"x": 1}})
    assert one.write_sync([run, patch]).accepted == 2
    # Consecutive batches land on different servers; a batch retried on the other one
    # (the first answered too late) is stored once.
    batch = _results(session, range(10, 60), now)
    assert two.write_sync(batch).accepted == 50
    again = one.write_sync(batch)
    assert (again.accepted, again.duplicates) == (0, 50)
    assert one.write_sync(_results(session, range(60, 80), now)).accepted == 20
    late = wire.StateUpdate(session_id=session, seq=81, timestamp=now, state={"a": {"y": 2}})
    beat = wire.Heartbeat(session_id=session, seq=82, timestamp=now + 1)
    assert one.write_sync([late, beat]).accepted == 2
    finish = wire.RunFinish(
        session_id=session, seq=90, timestamp=now + 2, exit_status=1, status="failed"
    )
    end = wire.SessionEnd(session_id=session, seq=91, timestamp=now + 2)
    assert two.write_sync([finish, end]).accepted == 2
    assert two.write_sync([end]).duplicates == 1
    for store in (one, two):
        status, state = _status(store, session)
        assert status == "ended"
        assert state == '{"a":{"x":1,"y":2}}' or __import__("json").loads(state) == {
            "a": {"x": 1, "y": 2}
        }
        cur = store.reader()
        counted = cur.execute(
            "SELECT count(*), count(DISTINCT seq) FROM results r JOIN sessions s USING (sid)"
            " WHERE s.id = CAST(? AS UUID)",
            [session],
        ).fetchall()
        assert counted == [(70, 70)]
        finished = cur.execute("SELECT status, exit_status FROM runs").fetchall()
        assert finished == [("failed", 1)]
        history = cur.execute(
            "SELECT seq FROM state_updates u JOIN sessions s USING (sid)"
            " WHERE s.id = CAST(? AS UUID) ORDER BY seq",
            [session],
        ).fetchall()
        assert history == [(2,), (81,)]


def test_a_silent_session_is_crashed_on_every_server(open_store: Opener) -> None:
    one, two = open_store(heartbeat_grace=1.0), open_store(heartbeat_grace=1.0)
    session, now = str(uuid.uuid4()), time.time()
    start = wire.SessionStart(
        session_id=session, seq=0, timestamp=now, product="svc", heartbeat_interval=0.5
    )
    one.write_sync([start])
    two.write_sync([wire.Heartbeat(session_id=session, seq=1, timestamp=now)])
    assert _status(one, session)[0] == "running"
    assert _wait(lambda: _status(one, session)[0] == "crashed", 10)
    assert _status(two, session)[0] == "crashed"


def test_one_server_leads_and_another_takes_over_when_it_goes(open_store: Opener) -> None:
    one = open_store(lead_interval=0.2)
    two = open_store(lead_interval=0.2)
    assert _wait(lambda: one.leads() or two.leads(), 5)
    time.sleep(0.6)
    assert one.leads() != two.leads()
    leader, other = (one, two) if one.leads() else (two, one)
    leader.close()
    assert _wait(other.leads, 10)


def test_servers_starting_at_once_set_the_lake_up_once(lake_spec: LakeSpec) -> None:
    stores: list[LakeStore] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            stores.append(LakeStore(LakeSettings.from_env(lake_spec.env())))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    try:
        assert errors == []
        assert len(stores) == 3
        rows = stores[0].reader().execute("SELECT version FROM schema_migrations").fetchall()
        assert rows == [(1,)]
    finally:
        for store in stores:
            store.close()


def test_retention_deletes_from_the_lake_and_postgresql(open_store: Opener) -> None:
    store = open_store()
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    now = time.time()
    for session in (old, new):
        store.write_sync(
            [
                wire.SessionStart(session_id=session, seq=0, timestamp=now, product="p"),
                *_results(session, range(1, 6), now),
            ]
        )
    future = time.time() + 2 * 86_400
    import datetime as dt

    at = dt.datetime.fromtimestamp(future, dt.UTC).replace(tzinfo=None)
    # Both are two days old by then; keep one day: both go.
    result = store.apply_retention(RetentionPolicy(days=1), now=at)
    assert result.sessions == 2
    assert result.rows["results"] == 10
    cur = store.reader()
    assert cur.execute("SELECT count(*) FROM sessions").fetchall() == [(0,)]
    assert cur.execute("SELECT count(*) FROM ingest_log").fetchall() == [(0,)]
    live = store.writer.authority.sessions([old, new])
    assert live == {}


def test_every_endpoint_answers_on_a_lake(open_store: Opener, lake_spec: LakeSpec) -> None:
    store = open_store()
    settings = Settings(soft_flush_interval=0.05, allow_anonymous=True)
    session, now = str(uuid.uuid4()), time.time()
    store.write_sync(
        [
            wire.SessionStart(session_id=session, seq=0, timestamp=now, product="shop"),
            wire.RunStart(session_id=session, seq=1, timestamp=now, project="shop"),
            *_results(session, range(2, 12), now),
            wire.RunFinish(
                session_id=session, seq=12, timestamp=now, exit_status=1, status="failed"
            ),
            wire.SessionEnd(session_id=session, seq=13, timestamp=now),
        ]
    )
    with TestClient(app=create_app(settings, store=store)) as client:
        made = client.post("/api/sessions", json={"name": "x", "product": "p"})
        assert made.status_code in (200, 201), made.text
        for path in (
            "/health",
            "/api/sessions",
            f"/api/sessions/{session}",
            f"/api/sessions/{session}/state-history",
            "/",
            "/runs",
            f"/runs/{session}",
            "/sessions",
            f"/sessions/{session}",
            "/flaky?project=shop",
            "/failures?project=shop",
            "/slow?project=shop",
            "/explore",
            "/sql",
        ):
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.text[:500])
        sql = client.post("/api/sql", json={"sql": "SELECT count(*) AS n FROM results"})
        assert sql.status_code == 200, sql.text
        assert "10" in sql.text
        # People's SQL reads the lake, and nothing else, and writes nothing.
        for refused in (
            "SELECT * FROM read_csv('/etc/passwd')",
            "DELETE FROM results",
        ):
            answer = client.post("/api/sql", json={"sql": refused})
            assert answer.status_code == 400, (refused, answer.text)
