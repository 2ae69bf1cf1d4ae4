"""ARCHITECTURE.md's recipe "Add a field" works: a copy of the package gets a throwaway
field exactly as the recipe says (three edits), and a database made by the unchanged
code is migrated and stores the field from both batch formats, bounded by its limit.

If this test breaks because the code moved, update the recipe with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from datacat_server.store import Store
from tests.server.records import RecordMaker

ROOT = Path(__file__).resolve().parents[2]

#: The recipe's edits: (file, the text to add before, the line to add).
EDITS = (
    (
        "datacat_client/wire.py",
        "\n\nclass RunStart(",
        '    flavor: str = ""\n',
    ),
    (
        # Appended last: ALTER TABLE adds a column after the others.
        "datacat_server/store/tables.py",
        '    ),\n    "Test results (and subtests, and rerun attempts): narrow and typed.",\n',
        '        Column("flavor", "VARCHAR", nullable=False, default="\'\'", limit=_NAME),\n',
    ),
    (
        "datacat_server/store/migrations.py",
        "MIGRATIONS: tuple[Migration, ...] = (\n",
        None,  # the new migration goes last in the tuple: see _add_migration
    ),
)

_CHECK = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[3])  # the copy, before the installed checkout
    from datacat_client import wire
    from datacat_server.errors import InvalidInputError
    from datacat_server.limits import Limits, check_records
    from datacat_server.store import Store
    from datacat_server.store.tables import TABLES

    store = Store(sys.argv[1])
    try:
        sid = sys.argv[2]
        rows = [wire.TestResult(session_id=sid, seq=10 + i, timestamp=1.0, nodeid=f"t::{i}",
                                outcome="passed", flavor=f"f{i}") for i in range(3)]
        store.write_sync(rows[:1])
        block = wire.columnar_decoder.decode(wire.encode_columnar(rows[1:])).results
        store.write_sync([], result_columns=block)
        got = store.reader().execute(
            "SELECT seq, flavor FROM results WHERE seq >= 10 ORDER BY seq").fetchall()
        assert got == [(10, "f0"), (11, "f1"), (12, "f2")], got
        assert store.reader().execute(
            "SELECT count(*) FROM results WHERE flavor = ''").fetchall() == [(1,)]
        long = wire.TestResult(session_id=sid, seq=99, timestamp=1.0, nodeid="t::x",
                               outcome="passed", flavor="x" * 50)
        try:
            check_records([long], Limits(max_name_length=20))
        except InvalidInputError as exc:
            assert "the flavor is 50 characters long" in str(exc), exc
        else:
            raise AssertionError("the new field is not bounded")
        cur = store.reader()
        for table in TABLES:
            found = cur.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
                " ORDER BY ordinal_position", [table.name]).fetchall()
            assert [r[0] for r in found] == table.names, (table.name, found)
    finally:
        store.close()
    import datacat_server
    print("recipe ok", datacat_server.__file__)
    """
)


def _add_migration(text: str) -> str:
    closing = text.index("\n)\n", text.index("MIGRATIONS: tuple[Migration, ...] = (\n"))
    line = '\n    Migration(999, "a throwaway field", tuple(tables.RESULTS.add_columns("flavor"))),'
    return text[:closing] + line + text[closing:]


@pytest.mark.slow
def test_adding_a_field_the_way_the_recipe_says(tmp_path: Path) -> None:
    copy = tmp_path / "src"
    for package in ("datacat_client", "datacat_server"):
        shutil.copytree(
            ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    for path, anchor, line in EDITS:
        target = copy / path
        text = target.read_text()
        assert anchor in text, f"the recipe's anchor moved in {path}: update the recipe"
        text = _add_migration(text) if line is None else text.replace(anchor, line + anchor, 1)
        target.write_text(text)
    db = tmp_path / "old.duckdb"
    maker = RecordMaker()
    store = Store(db)  # made by the code as it is, before the field existed
    store.write_sync([maker.start(product="p"), maker.result("t::old")])
    store.close()
    env = {**os.environ, "PYTHONPATH": str(copy)}
    done = subprocess.run(
        [sys.executable, "-c", _CHECK, str(db), maker.session_id, str(copy)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "recipe ok" in done.stdout
    assert str(copy) in done.stdout  # the copy was tested, not the checkout
