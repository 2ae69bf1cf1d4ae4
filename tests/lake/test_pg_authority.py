"""What the lake's once-per-lake work stands on (docs/lake-design.md): a PostgreSQL
session advisory lock, held through psycopg, is freed as soon as its holder is
SIGKILLed, so another server takes the work over; taken through DuckDB's postgres
extension it is not held at all (its pool returns connections with DISCARD ALL)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from datacat_server.store.lake import LakeSettings, connect
from tests.support.lake import LakeSpec

pytestmark = [pytest.mark.lake, pytest.mark.slow]

LOCK = 4_242


def _wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_a_killed_holder_frees_the_lock_for_another_server(lake_spec: LakeSpec) -> None:
    import psycopg

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, psycopg;"
            "c = psycopg.connect(sys.argv[1], autocommit=True);"
            f"assert c.execute('SELECT pg_try_advisory_lock({LOCK})').fetchone()[0];"
            "print('held', flush=True); time.sleep(120)",
            lake_spec.catalog,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with psycopg.connect(lake_spec.catalog, autocommit=True) as other:

            def take() -> bool:
                row = other.execute(f"SELECT pg_try_advisory_lock({LOCK})").fetchone()
                return bool(row and row[0])

            assert not take()
            holder.kill()
            holder.wait(10)
            assert _wait_for(take, 10), "the lock of a killed holder was not freed"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_a_lock_taken_through_duckdbs_postgres_extension_is_not_held(
    lake_spec: LakeSpec,
) -> None:
    import psycopg

    con = connect(LakeSettings.from_env(lake_spec.env()))
    try:
        con.execute(f"ATTACH '{lake_spec.catalog}' AS pg (TYPE postgres)")
        taken = con.execute(
            f"SELECT * FROM postgres_query('pg', 'SELECT pg_try_advisory_lock({LOCK})')"
        ).fetchall()
        assert taken == [(True,)]
        with psycopg.connect(lake_spec.catalog, autocommit=True) as other:
            row = other.execute(f"SELECT pg_try_advisory_lock({LOCK})").fetchone()
            assert row == (True,)  # nobody holds it any more
    finally:
        con.close()
