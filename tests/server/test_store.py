"""The store: migrations, one writer, exactly once across restarts, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from datacat_client import wire
from datacat_server.errors import StoreError, StoreLockedError, UnknownSessionError
from datacat_server.queries.sessions import get_session
from datacat_server.store import Store
from datacat_server.store.migrations import MIGRATIONS, Migration, apply_migrations, current_version
from tests.server.records import RecordMaker


def test_a_new_database_gets_every_migration(db_path: Path) -> None:
    store = Store(db_path)
    try:
        assert current_version(store.reader()) == MIGRATIONS[-1].version
    finally:
        store.close()


def test_an_older_database_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    first = Migration(1, "one table", ("CREATE TABLE notes (body VARCHAR)",))
    apply_migrations(con, [first])
    con.execute("INSERT INTO notes VALUES ('kept')")
    second = Migration(2, "a column", ("ALTER TABLE notes ADD COLUMN n INTEGER DEFAULT 7",))
    assert apply_migrations(con, [first, second]) == [2]
    assert con.execute("SELECT body, n FROM notes").fetchall() == [("kept", 7)]
    assert apply_migrations(con, [first, second]) == []
    con.close()


def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    broken = Migration(1, "broken", ("CREATE TABLE a (x INTEGER)", "THIS IS NOT SQL"))
    with pytest.raises(duckdb.ParserException):
        apply_migrations(con, [broken])
    assert current_version(con) == 0
    assert con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'a'"
    ).fetchone() == (0,)
    con.close()


def test_a_database_from_a_newer_release_is_refused(db_path: Path) -> None:
    Store(db_path).close()
    con = duckdb.connect(str(db_path))
    con.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
    con.close()
    with pytest.raises(StoreError, match="newer than this release"):
        Store(db_path)


def test_exactly_once_survives_a_restart(db_path: Path) -> None:
    maker = RecordMaker()
    records = [maker.start(product="p"), *(maker.event("e", {"i": i}) for i in range(5))]
    records += [maker.result(f"t::{i}") for i in range(5)]
    store = Store(db_path)
    assert store.write_sync(records).accepted == 11
    store.close()
    # A new process knows nothing in memory: the stored rows must say what is there.
    store = Store(db_path)
    try:
        again = store.write_sync(records)
        assert (again.accepted, again.duplicates) == (0, 11)
        more = [maker.event("late")]
        assert store.write_sync(more).accepted == 1
        detail = get_session(store.reader(), maker.session_id)
        assert detail is not None
        assert [e.name for e in detail.events].count("e") == 5
        assert [e.name for e in detail.events].count("test_result") == 5
        assert [e.name for e in detail.events][-1] == "late"
    finally:
        store.close()


def test_a_run_goes_on_after_a_restart(db_path: Path) -> None:
    maker = RecordMaker()
    store = Store(db_path)
    store.write_sync([maker.start(product="p"), maker.result("t::old")])
    store.close()
    # The first batch after the restart loads the session from the file and looks up
    # a test stored before (and numbers a new one) in the same transaction.
    store = Store(db_path)
    try:
        more = [maker.result("t::old", "failed"), maker.result("t::new")]
        assert store.write_sync(more).accepted == 2
        rows = (
            store.reader()
            .execute("SELECT nodeid, outcome FROM test_results ORDER BY seq")
            .fetchall()
        )
        assert rows == [("t::old", "passed"), ("t::old", "failed"), ("t::new", "passed")]
    finally:
        store.close()


def test_state_survives_a_restart(db_path: Path) -> None:
    maker = RecordMaker()
    store = Store(db_path)
    store.write_sync(
        [maker.start(state={"a": {"b": 1}}), maker.make(wire.StateUpdate, state={"a": {"c": 2}})]
    )
    store.close()
    store = Store(db_path)
    try:
        store.write_sync([maker.make(wire.StateUpdate, state={"d": 3})])
        detail = get_session(store.reader(), maker.session_id)
        assert detail is not None
        assert detail.state == {"a": {"b": 1, "c": 2}, "d": 3}
    finally:
        store.close()


class _Unknown(wire.Event, tag="unknown-kind-for-tests"):
    """A record kind the writer has no stager for: stands in for any failing write."""


def test_a_failing_request_does_not_fail_its_neighbours(store: Store) -> None:
    good, bad = RecordMaker(), RecordMaker()
    store.write_sync([good.start(), bad.start()])
    futures = [
        store.writer.submit([good.event("a")]),
        store.writer.submit([bad.event("b"), bad.make(_Unknown, name="x")]),
        store.writer.submit([good.event("c")]),
    ]
    assert futures[0].result(10).accepted == 1
    with pytest.raises(StoreError, match="unknown record kind"):
        futures[1].result(10)
    assert futures[2].result(10).accepted == 1
    bad_detail = get_session(store.reader(), bad.session_id)
    assert bad_detail is not None
    assert bad_detail.events == []  # rolled back as a whole
    good_detail = get_session(store.reader(), good.session_id)
    assert good_detail is not None
    assert [e.name for e in good_detail.events] == ["a", "c"]


def test_records_of_an_unknown_session_are_refused(store: Store) -> None:
    stranger = RecordMaker()
    with pytest.raises(UnknownSessionError) as caught:
        store.write_sync([stranger.event("x")])
    assert caught.value.session_ids == [stranger.session_id]


def test_concurrent_writers_are_grouped_and_lose_nothing(store: Store) -> None:
    makers = [RecordMaker() for _ in range(8)]
    store.write_sync([m.start() for m in makers])
    futures = [
        store.writer.submit([maker.event("e", {"n": n}) for n in range(50)])
        for _ in range(5)
        for maker in makers
    ]
    assert sum(f.result(30).accepted for f in futures) == 8 * 5 * 50
    total = store.reader().execute("SELECT count(*) FROM event_log").fetchone()
    assert total == (2000,)


def test_a_locked_file_gives_a_clear_error_naming_the_holder(db_path: Path) -> None:
    store = Store(db_path)
    try:
        with pytest.raises(StoreLockedError, match="already open in this process"):
            Store(db_path)
        result = subprocess.run(
            [sys.executable, "-m", "datacat_server", "serve", "--db", str(db_path), "--port", "1"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert "another process holds it" in result.stderr
        assert "PID" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        store.close()
