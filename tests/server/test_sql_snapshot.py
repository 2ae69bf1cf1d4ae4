"""Snapshots for SQL workers: a consistent copy with the views, made while the writer writes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import pytest

from benchmarks.querydata import build
from datacat_server.sqlpool.source import make_snapshot
from datacat_server.store import Store
from tests.server.records import RecordMaker


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_a_snapshot_has_every_table_and_view(store: Store) -> None:
    maker = RecordMaker()
    store.write_sync([maker.start(product="p"), maker.event("e"), maker.result("t.py::t")])
    path = store.db.snapshot_dir / "1" / "datacat.duckdb"
    path.parent.mkdir(parents=True)
    make_snapshot(store.db.new_cursor(), path, 3.0)
    snapshot = duckdb.connect(str(path), read_only=True)
    try:
        relations = {
            (str(name), str(kind))
            for name, kind in snapshot.execute(
                "SELECT table_name, table_type FROM information_schema.tables"
            ).fetchall()
        }
        for view in ("events", "metrics", "test_results", "session_status"):
            assert (view, "VIEW") in relations
        assert ("results", "BASE TABLE") in relations
        assert _count(snapshot, "test_results") == 1
        assert _count(snapshot, "events") == 2  # the event and the result as an event
    finally:
        snapshot.close()


def test_a_snapshot_goes_nowhere_but_the_snapshot_directory(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "datacat.duckdb"
    outside.parent.mkdir()
    with pytest.raises(duckdb.PermissionException):
        make_snapshot(store.db.new_cursor(), outside, 3.0)
    assert not outside.exists()


@pytest.mark.slow
def test_the_writer_commits_while_a_snapshot_is_made(tmp_path: Path) -> None:
    path = tmp_path / "datacat.duckdb"
    build(path, runs=200, tests=2000)  # 400,000 results
    store = Store(path, soft_flush_interval=0.05)
    try:
        maker = RecordMaker()
        store.write_sync([maker.start(product="p")])
        before = _count(store.reader(), "event_log")
        target = store.db.snapshot_dir / "1" / "datacat.duckdb"
        target.parent.mkdir(parents=True)
        window: list[float] = []

        def snapshot() -> None:
            window.append(time.monotonic())
            make_snapshot(store.db.new_cursor(), target, 3.0)
            window.append(time.monotonic())

        copier = threading.Thread(target=snapshot)
        copier.start()
        commits = []
        while copier.is_alive():
            started = time.monotonic()
            store.write_sync([maker.event("e")])
            commits.append((started, time.monotonic()))
        copier.join()
        after = _count(store.reader(), "event_log")
        start, end = window
        assert any(start < began and done < end for began, done in commits)
        snapshot = duckdb.connect(str(target), read_only=True)
        try:
            assert _count(snapshot, "results") == 400_000
            assert before <= _count(snapshot, "event_log") <= after
        finally:
            snapshot.close()
    finally:
        store.close()
