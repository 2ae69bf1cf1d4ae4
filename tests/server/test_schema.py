"""The declared schema (`store/tables.py`) and the database the migrations build agree."""

from __future__ import annotations

from pathlib import Path

import duckdb
import msgspec
import pytest

from datacat_client import wire
from datacat_server.limits import field_rules
from datacat_server.store import Store
from datacat_server.store.kinds import KINDS
from datacat_server.store.migrations import MIGRATIONS, apply_migrations
from datacat_server.store.tables import DERIVED, QUARANTINE_TABLES, TABLES, Column, Source, Table

ALL_TABLES = (*TABLES, *DERIVED, *QUARANTINE_TABLES)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str, bool]]:
    rows = con.execute(
        "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns"
        " WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [(name, kind, nullable) for name, kind, nullable in rows]


def _declared(table: Table) -> list[tuple[str, str, bool]]:
    return [(c.name, c.info_type, c.nullable) for c in table]


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda t: t.name)
def test_the_migrations_build_every_table_as_it_is_described(table: Table, tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    apply_migrations(con)
    assert _columns(con, table.name) == _declared(table)


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda t: t.name)
def test_a_table_created_from_its_description_is_the_same(table: Table) -> None:
    con = duckdb.connect()
    con.execute(
        "CREATE TYPE outcome AS ENUM ('passed', 'failed', 'skipped', 'xfailed', 'xpassed', 'error')"
    )
    con.execute(table.ddl())
    assert _columns(con, table.name) == _declared(table)


def test_a_database_of_the_first_release_is_migrated_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    apply_migrations(con, MIGRATIONS[:1])
    con.execute(
        "INSERT INTO sessions VALUES (1, uuid(), 'n', 'p', '', MAP {},"
        " TIMESTAMP '3000-01-01', now()::TIMESTAMP, NULL, '{}', false, NULL,"
        " now()::TIMESTAMP, NULL)"
    )
    con.execute(
        "INSERT INTO tests VALUES (1, 'p', 't.py::a', NULL, NULL, NULL, NULL, NULL, [], now()::TIMESTAMP)"
    )
    con.execute(
        "INSERT INTO results VALUES (1, 1, 1, NULL, 'passed', 'call',"
        " TIMESTAMP '2026-01-01 10:00', TIMESTAMP '2026-01-01 10:00:01',"
        " 1.0, 0, 1.0, 0, '', 0, true, NULL, NULL)"
    )
    con.close()
    store = Store(path)
    try:
        cur = store.reader()
        # A client clock in the future is clamped to when the migration ran.
        received = cur.execute("SELECT received_at <= now()::TIMESTAMP FROM sessions").fetchall()
        assert received == [(True,)]
        assert cur.execute("SELECT stored_at::VARCHAR FROM results").fetchall() == [
            ("2026-01-01 10:00:01",)
        ]
        assert cur.execute("SELECT unit, kind FROM metric_log").fetchall() == []
        for table in ALL_TABLES:
            assert _columns(cur, table.name) == _declared(table), table.name
    finally:
        store.close()


def test_a_not_null_column_added_later_needs_a_default() -> None:
    table = Table("t", (Column("a", "INTEGER"), Column("b", "INTEGER", nullable=False)))
    with pytest.raises(ValueError, match="needs a default"):
        table.add_columns("b")


#: Wire fields that are bounded elsewhere: ids are parsed as UUIDs, enumerations by type.
_NOT_TEXT = {"session_id", "outcome", "kind", "phase_type"}


@pytest.mark.parametrize("record_type", list(KINDS), ids=lambda t: t.__name__)
def test_every_text_a_client_sends_is_bounded(record_type: type) -> None:
    """A field of text (or lists or maps of it) without a limit would let one client make
    every page huge: each must be stored in a described column that says its limit."""
    bounded = {rule.field for rule in field_rules(record_type)}
    for info in msgspec.structs.fields(record_type):
        text = (
            any(marker in str(info.type) for marker in ("str", "dict", "Any"))
            and info.name not in _NOT_TEXT
        )
        if text:
            assert info.name in bounded, f"{record_type.__name__}.{info.name} has no limit"


def test_every_result_field_reaches_a_column_or_says_where_it_goes() -> None:
    """A new `TestResult` field must be stored: in `results`, `result_details` or
    `tests` (from its first result)."""
    stored = {
        c.wire_field
        for kind in (KINDS[wire.TestResult],)
        for table in kind.tables
        for c in table
        if c.source in (Source.WIRE, Source.DERIVED)
    }
    fields = {f.name for f in msgspec.structs.fields(wire.TestResult)}
    assert fields - stored - {"session_id", "seq", "timestamp"} == set()
