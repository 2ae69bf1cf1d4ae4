"""``datacat migrate-store``: a DuckDB file moved into an empty lake answers the same."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from datacat_client import wire
from datacat_server.queries.flaky import flaky_tests
from datacat_server.queries.runs import list_runs
from datacat_server.queries.window import recent_runs
from datacat_server.store import Store
from datacat_server.store.lake import LakeSettings
from datacat_server.store.lake.store import LakeStore
from tests.server.records import RecordMaker
from tests.server.test_queries import RUNS, _run
from tests.support.lake import LakeSpec

pytestmark = [pytest.mark.lake, pytest.mark.slow]


def _migrate(source: Path, spec: LakeSpec) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "datacat_server", "migrate-store", "--from", str(source)],
        env={**os.environ, **spec.env()},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_file_moved_into_a_lake_has_every_row_and_answers_alike(
    tmp_path: Path, lake_spec: LakeSpec
) -> None:
    path = tmp_path / "single.duckdb"
    store = Store(path, soft_flush_interval=0.05)
    sessions = [_run(store, n, commit=f"c{n // 2}") for n in range(RUNS)]
    app = RecordMaker()
    store.write_sync(
        [
            app.start(product="svc", heartbeat_interval=5.0),
            app.make(wire.StateUpdate, state={"a": {"b": 1}}),
            app.event("hello", {"n": 1}),
            app.make(wire.Metric, name="load", value=0.5),
        ]
    )
    store.fold_rollups()
    cur = store.reader()
    flaky_before = flaky_tests(cur, recent_runs(cur, "shop", None, RUNS))
    runs_before = list_runs(cur, project="shop")
    store.close()

    done = _migrate(path, lake_spec)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "MISMATCH" not in done.stdout
    assert "results" in done.stdout
    assert "ok" in done.stdout

    lake = LakeStore(LakeSettings.from_env(lake_spec.env()), soft_flush_interval=0.05)
    try:
        cur = lake.reader()
        assert flaky_tests(cur, recent_runs(cur, "shop", None, RUNS)) == flaky_before
        assert list_runs(cur, project="shop") == runs_before
        # A batch of a migrated session sent again is stored once, and new ones go on.
        again = lake.write_sync(
            [wire.Event(session_id=app.session_id, seq=2, timestamp=1.0, name="hello")]
        )
        assert again.duplicates == 1
        assert lake.write_sync([app.event("later")]).accepted == 1
        state = cur.execute(
            "SELECT state FROM sessions WHERE id = CAST(? AS UUID)", [app.session_id]
        ).fetchall()
        assert '"b":1' in str(state[0][0]).replace(" ", "")
        assert len(sessions) == RUNS
    finally:
        lake.close()
    # A second migration into the now non-empty lake is refused.
    again_done = _migrate(path, lake_spec)
    assert again_done.returncode == 1
    assert "empty lake" in again_done.stderr
