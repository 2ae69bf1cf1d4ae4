"""The lake foundation's measurements (docs/lake-design.md), on real components.

Starts Debian's PostgreSQL and moto's S3 server (`tests.support.lake`), and measures,
in one run:

- ``ingest``: 1,000-result commits of our ``results`` table (the writer's Arrow batch,
  inserted as the writer does), into a DuckDB file and into the lake; 1 writer, and 2
  writers in 2 processes.
- ``once``: the exactly-once designs on the same workload with 2 writers: none (the
  baseline), a PostgreSQL claim before the lake commit (one row per contiguous run of
  sequence numbers, an exclusion constraint; and one row per result), the trigger in
  the catalog keyed by ``ducklake_set_commit_message``; a redelivered batch under
  each; and deduplication when reading (queries with and without it, the cost of
  deleting duplicates).
- ``sessions``: two servers updating ``sessions`` in the lake (different rows, the same
  row, and the writer's shape: results plus a session update in one transaction), and
  the same with ``sessions`` in a plain PostgreSQL table beside the catalog.
- ``servers``: real ``datacat serve`` processes: ingest through the HTTP API into the
  embedded file and into the lake with 1, 2 and 3 servers (results/s, the batch's
  answer time p50/p95, which comes after the commit, and the servers' CPU ms per 1,000
  results, read from ``/proc``), the servers a load of 100M results a day needs from
  that CPU cost, and failover: three lake servers behind HAProxy, one SIGKILLed while
  clients send, the time until batches are acknowledged again.

Run in the lake environment (``.venv-lake``, ``pip install -e '.[dev,lake]'``)::

    .venv-lake/bin/python benchmarks/lake.py all --seconds 10 --json out.json

Every loop is bounded by ``--seconds``; the components are always stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datacat_server.store import tables
from datacat_server.store.lake import LakeSettings, connect, cursor
from datacat_server.store.lake.ddl import create_tables
from tests.support.lake import BUCKET, PostgresServer, S3Server

BATCH = 1_000
EXT_DIR = Path(tempfile.gettempdir()) / "datacat-bench-lake-ext"


# -- the workload -------------------------------------------------------------------------


def results_batch(sid: int, first_seq: int, count: int = BATCH) -> pa.Table:
    """A commit's worth of ``results`` rows as the writer builds them: 2 % failures,
    a suite of 10,000 tests, three phase durations, CPU and memory."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    seqs = pa.array(range(first_seq, first_seq + count), pa.int64())
    index = pc.cast(pc.subtract(seqs, pa.scalar(first_seq, pa.int64())), pa.int32())
    call = pc.divide(pc.cast(pc.add(pc.bit_wise_and(index, 127), 1), pa.float64()), 100.0)
    outcome = pa.array(["failed" if i % 50 == 0 else "passed" for i in range(count)])
    return tables.RESULTS.arrow(
        {
            "sid": pa.repeat(pa.scalar(sid, pa.int32()), count),
            "seq": seqs,
            "test_id": pc.add(pc.bit_wise_and(pc.add(index, first_seq % 10_000), 8191), 1),
            "outcome": outcome,
            "phase": pa.repeat(pa.scalar("call"), count),
            "started_at": pa.repeat(pa.scalar(now, pa.timestamp("us")), count),
            "stopped_at": pa.repeat(pa.scalar(now, pa.timestamp("us")), count),
            "duration": pc.add(call, 0.002),
            "setup_duration": pa.repeat(pa.scalar(0.001), count),
            "call_duration": call,
            "teardown_duration": pa.repeat(pa.scalar(0.001), count),
            "worker": pa.repeat(pa.scalar("gw0"), count),
            "attempt": pa.repeat(pa.scalar(0, pa.int16()), count),
            "final": pa.repeat(pa.scalar(True), count),
            "cpu_time": call,
            "rss_delta": pa.repeat(pa.scalar(4096, pa.int64()), count),
            "stored_at": pa.repeat(pa.scalar(now, pa.timestamp("us")), count),
        },
        count,
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(commits: list[float]) -> dict[str, float]:
    ms = [c * 1000 for c in commits]
    return {
        "commits": len(ms),
        "p50_ms": round(percentile(ms, 0.5), 2),
        "p95_ms": round(percentile(ms, 0.95), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "max_ms": round(max(ms), 1) if ms else float("nan"),
    }


# -- components ---------------------------------------------------------------------------


class Lab:
    """PostgreSQL + moto, and a fresh lake (catalog database + S3 prefix) on demand."""

    def __init__(self) -> None:
        self.pg = PostgresServer(max_connections=300).start()
        try:
            self.s3 = S3Server().start()
            self.s3.create_bucket(BUCKET)
        except BaseException:
            self.pg.stop()
            raise

    def lake(self, local: Path | None = None) -> LakeSettings:
        database = self.pg.create_database("bench")
        return LakeSettings(
            catalog=self.pg.dsn(database),
            data_path=f"{local}/" if local else f"s3://{BUCKET}/{database}/",
            s3_endpoint=self.s3.endpoint,
            s3_key_id=self.s3.key_id,
            s3_secret=self.s3.secret,
            s3_region=self.s3.region,
            s3_url_style="path",
            s3_use_ssl=False,
            extension_directory=EXT_DIR,
        )

    def snapshot_retries(self) -> int:
        """DuckLake's own retries so far: its snapshot-id collisions in PostgreSQL's log."""
        assert self.pg.root is not None
        text = (self.pg.root / "postgres.log").read_text(errors="replace")
        return text.count('unique constraint "ducklake_snapshot_pkey"')

    def close(self) -> None:
        self.s3.stop()
        self.pg.stop()


def catalog_dbname(settings: LakeSettings) -> str:
    return next(p.split("=", 1)[1] for p in settings.catalog.split() if p.startswith("dbname="))


def psycopg_connect(settings: LakeSettings) -> Any:
    import psycopg

    return psycopg.connect(settings.catalog, autocommit=True)


# -- writers (each in its own process) ----------------------------------------------------


def _open(target: str | LakeSettings) -> duckdb.DuckDBPyConnection:
    if isinstance(target, str):
        return duckdb.connect(target)
    return connect(target)


def writer_process(
    target: str | LakeSettings, writer: int, seconds: float, design: str, start_at: float
) -> dict[str, Any]:
    """Commit 1,000-result batches until ``seconds`` have passed, with the exactly-once
    ``design`` around each commit; retry a batch the lake refused."""
    con = _open(target)
    cur = con.cursor() if isinstance(target, str) else cursor(con, target.alias)
    pg = psycopg_connect(target) if design.startswith(("claim", "sessions_pg")) else None
    session = str(uuid.UUID(int=writer + 1))
    sid = writer + 1
    commits: list[float] = []
    claims: list[float] = []
    conflicts = 0
    seq = 0
    while time.time() < start_at:
        time.sleep(0.005)
    deadline = time.monotonic() + seconds
    batch = results_batch(sid, seq)
    claimed_for = -1  # a batch the lake refused is retried under the claim it has
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            if design == "claim_ranges" and claimed_for != seq:
                assert pg is not None
                claimed = pg.execute(
                    "INSERT INTO ingest_claims (session_id, seqs, owner)"
                    " VALUES (%s, int8range(%s, %s), %s) ON CONFLICT DO NOTHING RETURNING 1",
                    [session, seq, seq + BATCH, f"w{writer}"],
                ).fetchall()
                assert claimed, "a fresh batch must be claimable"
                claimed_for = seq
                claims.append(time.perf_counter() - started)
            elif design == "claim_rows" and claimed_for != seq:
                assert pg is not None
                claimed = pg.execute(
                    "INSERT INTO ingest_claim_rows (session_id, seq, owner)"
                    " SELECT %s, s, %s FROM generate_series(%s::bigint, %s::bigint) s"
                    " ON CONFLICT DO NOTHING RETURNING seq",
                    [session, f"w{writer}", seq, seq + BATCH - 1],
                ).fetchall()
                assert len(claimed) == BATCH
                claimed_for = seq
                claims.append(time.perf_counter() - started)
            cur.execute("BEGIN TRANSACTION")
            tables.insert(cur, tables.RESULTS, batch)
            if design == "trigger":
                key = json.dumps({"s": session, "r": [[seq, seq + BATCH]]})
                cur.execute(
                    "CALL ducklake_set_commit_message('lake', ?, 'ingest', extra_info => ?)",
                    [f"w{writer}", f"ingest:{key}"],
                ).fetchall()
            elif design == "sessions_lake":
                cur.execute(
                    "UPDATE sessions SET last_seen = now()::TIMESTAMP, updated_at ="
                    " now()::TIMESTAMP WHERE sid = ?",
                    [sid],
                ).fetchall()
            cur.execute("COMMIT")
            if design == "sessions_pg":
                assert pg is not None
                pg.execute(
                    "UPDATE sessions SET last_seen = now(), updated_at = now() WHERE sid = %s",
                    [sid],
                )
        except duckdb.TransactionException:
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")
            conflicts += 1
            continue  # the same batch again (its claim, if any, is ours already)
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")
            if "Exceeded the maximum retry count" in str(exc):
                conflicts += 1
                continue
            raise
        commits.append(time.perf_counter() - started)
        seq += BATCH
        batch = results_batch(sid, seq)
    con.close()
    return {
        "writer": writer,
        "rows": len(commits) * BATCH,
        "commits": commits,
        "claims": claims,
        "conflicts": conflicts,
    }


def run_writers(
    target: str | LakeSettings, writers: int, seconds: float, design: str = "none"
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 6  # every process connected (extensions loaded) by then
    with ctx.Pool(writers) as pool:
        jobs = [
            pool.apply_async(writer_process, (target, w, seconds, design, start_at))
            for w in range(writers)
        ]
        done = [job.get(timeout=seconds + 120) for job in jobs]
    commits = [c for d in done for c in d["commits"]]
    claims = [c for d in done for c in d["claims"]]
    rows = sum(d["rows"] for d in done)
    out: dict[str, Any] = {
        "writers": writers,
        "design": design,
        "rows": rows,
        "rows_per_s": round(rows / seconds),
        "per_writer_rows": [d["rows"] for d in done],
        "app_retries": sum(d["conflicts"] for d in done),
        **summary(commits),
    }
    out["load_avg_1m"] = round(os.getloadavg()[0], 1)
    if claims:
        out["claim_p50_ms"] = round(percentile([c * 1000 for c in claims], 0.5), 2)
    return out


# -- setup of each design -----------------------------------------------------------------


TRIGGER_SQL = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE TABLE IF NOT EXISTS ingest_keys (
    session_id uuid NOT NULL, seqs int8range NOT NULL, snapshot_id bigint NOT NULL,
    EXCLUDE USING gist (session_id WITH =, seqs WITH &&));
CREATE OR REPLACE FUNCTION datacat_ingest_keys() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    key jsonb;
    r jsonb;
BEGIN
    IF NEW.commit_extra_info LIKE 'ingest:%' THEN
        key := substr(NEW.commit_extra_info, 8)::jsonb;
        FOR r IN SELECT * FROM jsonb_array_elements(key->'r') LOOP
            INSERT INTO ingest_keys VALUES ((key->>'s')::uuid,
                int8range((r->>0)::bigint, (r->>1)::bigint), NEW.snapshot_id)
            ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'ingest: already stored %', NEW.commit_extra_info
                    USING ERRCODE = 'P0001';
            END IF;
        END LOOP;
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS datacat_ingest_keys ON ducklake_snapshot_changes;
CREATE TRIGGER datacat_ingest_keys AFTER INSERT ON ducklake_snapshot_changes
    FOR EACH ROW EXECUTE FUNCTION datacat_ingest_keys();
"""

CLAIMS_SQL = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE TABLE IF NOT EXISTS ingest_claims (
    session_id uuid NOT NULL, seqs int8range NOT NULL, owner text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    EXCLUDE USING gist (session_id WITH =, seqs WITH &&));
CREATE TABLE IF NOT EXISTS ingest_claim_rows (
    session_id uuid NOT NULL, seq bigint NOT NULL, owner text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (session_id, seq));
"""


def prepare(lake: LakeSettings, sessions: int = 2) -> None:
    """Our tables in a fresh lake, a session row per writer in the lake and in a plain
    PostgreSQL table, and the claim and trigger tables."""
    con = connect(lake)
    create_tables(con, (*tables.TABLES, *tables.DERIVED))
    for sid in range(1, sessions + 1):
        con.execute(
            "INSERT INTO sessions (sid, id, name, product, version, labels, created_at,"
            " updated_at, state, hung, last_seen, received_at) VALUES (?, ?, 'bench', 'p',"
            " '', MAP {}, now()::TIMESTAMP, now()::TIMESTAMP, '{}', false, now()::TIMESTAMP,"
            " now()::TIMESTAMP)",
            [sid, str(uuid.UUID(int=sid))],
        )
    con.close()
    with psycopg_connect(lake) as pg:
        # pg_stat_user_functions then times the trigger's function exactly.
        pg.execute(f"ALTER DATABASE {catalog_dbname(lake)} SET track_functions = 'pl'")
        pg.execute(TRIGGER_SQL)
        pg.execute(CLAIMS_SQL)
        pg.execute(
            "CREATE TABLE IF NOT EXISTS sessions (sid integer PRIMARY KEY, id uuid NOT NULL,"
            " state jsonb NOT NULL DEFAULT '{}', last_seen timestamptz, updated_at timestamptz)"
        )
        for sid in range(1, sessions + 1):
            pg.execute(
                "INSERT INTO sessions (sid, id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [sid, str(uuid.UUID(int=sid))],
            )


def count_duplicates(lake: LakeSettings) -> dict[str, int]:
    con = connect(lake)
    try:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT (sid, seq)) FROM results"
        ).fetchall()[0]
    finally:
        con.close()
    return {"rows": int(total), "distinct": int(distinct), "duplicates": int(total - distinct)}


# -- measurements -------------------------------------------------------------------------


def measure_ingest(lab: Lab, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="datacat-bench-") as tmp:
        path = f"{tmp}/file.duckdb"
        con = duckdb.connect(path)
        create_tables(con, (tables.RESULTS,))  # the same DDL, on a file
        con.close()
        out["file_1"] = run_writers(path, 1, seconds)
        print(f"  ingest file x1: {out['file_1']}", flush=True)
        for name, local in (("lake_s3", None), ("lake_dir", Path(tmp) / "shared")):
            for writers in (1, 2):
                lake = lab.lake(local)
                if local:
                    local.mkdir(exist_ok=True)
                prepare(lake)
                before = lab.snapshot_retries()
                result = run_writers(lake, writers, seconds)
                result["ducklake_retries"] = lab.snapshot_retries() - before
                result.update(count_duplicates(lake))
                out[f"{name}_{writers}"] = result
                if local:
                    import shutil

                    shutil.rmtree(local, ignore_errors=True)
                print(f"  ingest {name} x{writers}: {result}", flush=True)
    return out


def redeliver(lake: LakeSettings, design: str) -> dict[str, Any]:
    """Send writer 0's first batch again under ``design``: how long until it is known to
    be stored already, and what is stored afterwards."""
    con = connect(lake)
    cur = cursor(con)
    session = str(uuid.UUID(int=1))
    batch = results_batch(1, 0)
    started = time.perf_counter()
    outcome = ""
    if design == "trigger":
        cur.execute("BEGIN TRANSACTION")
        tables.insert(cur, tables.RESULTS, batch)
        key = json.dumps({"s": session, "r": [[0, BATCH]]})
        cur.execute(
            "CALL ducklake_set_commit_message('lake', 'again', 'ingest', extra_info => ?)",
            [f"ingest:{key}"],
        ).fetchall()
        try:
            cur.execute("COMMIT")
            outcome = "stored again"
        except duckdb.Error as exc:
            text = str(exc)  # the trigger's words follow the failed query's whole text
            outcome = "refused: " + text[max(0, text.find("ERROR:  ingest:")) :][:100]
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")
    elif design.startswith("claim"):
        with psycopg_connect(lake) as pg:
            if design == "claim_ranges":
                claimed = pg.execute(
                    "INSERT INTO ingest_claims (session_id, seqs, owner) VALUES"
                    " (%s, int8range(0, %s), 'again') ON CONFLICT DO NOTHING RETURNING 1",
                    [session, BATCH],
                ).fetchall()
            else:
                claimed = pg.execute(
                    "INSERT INTO ingest_claim_rows (session_id, seq, owner)"
                    " SELECT %s, s, 'again' FROM generate_series(0, %s) s"
                    " ON CONFLICT DO NOTHING RETURNING seq",
                    [session, BATCH - 1],
                ).fetchall()
            # Claimed before: stored, or in flight on another server. The lake says which.
            present = cur.execute(
                "SELECT count(*) FROM results WHERE sid = 1 AND seq BETWEEN 0 AND ?",
                [BATCH - 1],
            ).fetchall()[0][0]
            outcome = f"claimed {len(claimed)} rows; {present} already in the lake: not stored"
    seconds = time.perf_counter() - started
    con.close()
    return {"seconds_ms": round(seconds * 1000, 1), "outcome": outcome, **count_duplicates(lake)}


def measure_once(lab: Lab, seconds: float, rounds: int = 2) -> dict[str, Any]:
    """Each design ``rounds`` times, the order rotated each round (this machine is
    shared: a design measured only while it was busy would look worse)."""
    designs = ["none", "claim_ranges", "claim_rows", "trigger"]
    runs: dict[str, list[dict[str, Any]]] = {d: [] for d in designs}
    for round_ in range(rounds):
        for design in designs[round_ % len(designs) :] + designs[: round_ % len(designs)]:
            lake = lab.lake()
            prepare(lake)
            before = lab.snapshot_retries()
            result = run_writers(lake, 2, seconds, design)
            result["ducklake_retries"] = lab.snapshot_retries() - before
            result.update(count_duplicates(lake))
            if design == "trigger":
                with psycopg_connect(lake) as pg:
                    row = pg.execute(
                        "SELECT calls, total_time FROM pg_stat_user_functions"
                        " WHERE funcname = 'datacat_ingest_keys'"
                    ).fetchone()
                if row and row[0]:
                    result["trigger_calls"] = int(row[0])
                    result["trigger_ms_per_commit"] = round(float(row[1]) / int(row[0]), 3)
            if design != "none":
                result["redelivered"] = redeliver(lake, design)
            runs[design].append(result)
            print(f"  once {design} (round {round_ + 1}): {result}", flush=True)
    out: dict[str, Any] = {"runs": runs}
    for design, results in runs.items():
        out[design] = {
            key: statistics.median(r[key] for r in results)
            for key in ("rows_per_s", "p50_ms", "p95_ms", "max_ms", "duplicates", "app_retries")
        }
        if design.startswith("claim"):
            out[design]["claim_p50_ms"] = statistics.median(r["claim_p50_ms"] for r in results)
        if design == "trigger" and all("trigger_ms_per_commit" in r for r in results):
            out[design]["trigger_ms_per_commit"] = statistics.median(
                r["trigger_ms_per_commit"] for r in results
            )
    out["dedup_on_read"] = measure_dedup(lab)
    return out


def measure_retention(lab: Lab, seconds: float) -> dict[str, Any]:
    """Retention's DELETE of one session's results while a writer appends to the same
    table: DuckLake refuses whichever of the two commits second."""
    lake = lab.lake()
    prepare(lake)
    con = connect(lake)
    cur = cursor(con)
    for start in range(0, 20 * BATCH, BATCH):  # sessions 100..119, a batch each
        tables.insert(cur, tables.RESULTS, results_batch(100 + start // BATCH, start))
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 6
    out: dict[str, Any] = {}
    with ctx.Pool(1) as pool:
        job = pool.apply_async(writer_process, (lake, 0, seconds, "none", start_at))
        while time.time() < start_at + 1:
            time.sleep(0.01)
        attempts, won, latencies = 0, 0, []
        deadline = time.monotonic() + seconds - 2
        sid = 100
        while time.monotonic() < deadline and sid < 120:
            attempts += 1
            started = time.perf_counter()
            try:
                cur.execute("BEGIN TRANSACTION")
                cur.execute("DELETE FROM results WHERE sid = ?", [sid]).fetchall()
                cur.execute("COMMIT")
            except duckdb.Error:
                with contextlib.suppress(duckdb.Error):
                    cur.execute("ROLLBACK")
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            won += 1
            sid += 1
        writer = job.get(timeout=seconds + 120)
    out = {
        "delete_attempts": attempts,
        "deletes_committed": won,
        "delete_success_rate": round(won / max(1, attempts), 3),
        "delete_p50_ms": round(percentile(latencies, 0.5), 1),
        "writer_rows": writer["rows"],
        "writer_retries": writer["conflicts"],
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }
    con.close()
    print(f"  retention under ingest: {out}", flush=True)
    return out


def measure_ids(lab: Lab, rounds: int = 20) -> dict[str, Any]:
    """Test ids from PostgreSQL: a suite's 1,000 new tests in one statement, then the
    same 1,000 known ones; and reading 10,000 live session rows from PostgreSQL through
    DuckDB's postgres extension beside the same rows in the lake."""
    lake = lab.lake()
    prepare(lake)
    pg = psycopg_connect(lake)
    pg.execute(
        "CREATE SEQUENCE IF NOT EXISTS test_id_seq;"
        "CREATE TABLE IF NOT EXISTS test_ids (project text NOT NULL, nodeid text NOT NULL,"
        " test_id integer NOT NULL DEFAULT nextval('test_id_seq'), PRIMARY KEY (project, nodeid))"
    )
    assign = (
        "WITH wanted AS (SELECT * FROM unnest(%s::text[], %s::text[]) AS w(project, nodeid)),"
        " fresh AS (INSERT INTO test_ids (project, nodeid) SELECT * FROM wanted"
        " ON CONFLICT DO NOTHING RETURNING project, nodeid, test_id)"
        " SELECT * FROM fresh UNION ALL SELECT t.project, t.nodeid, t.test_id FROM test_ids t"
        " JOIN wanted USING (project, nodeid)"
    )
    new_ms, known_ms = [], []
    for round_ in range(rounds):
        nodeids = [f"tests/test_mod_{round_}.py::test_{i}[p-{i % 7}]" for i in range(BATCH)]
        projects = ["shop"] * BATCH
        for bucket in (new_ms, known_ms):
            started = time.perf_counter()
            got = pg.execute(assign, [projects, nodeids]).fetchall()
            bucket.append((time.perf_counter() - started) * 1000)
            assert len({row[2] for row in got}) == BATCH
    pg.execute(
        "INSERT INTO sessions (sid, id, last_seen, updated_at) SELECT s, gen_random_uuid(),"
        " now(), now() FROM generate_series(10, 10009) s ON CONFLICT DO NOTHING"
    )
    con = connect(lake)
    con.execute(f"ATTACH '{lake.catalog}' AS pg (TYPE postgres, READ_ONLY)")
    con.execute(
        "INSERT INTO sessions (sid, id, name, product, version, labels, created_at, updated_at,"
        " state, hung, last_seen, received_at) SELECT s, uuid(), 'b', 'p', '', MAP {},"
        " now()::TIMESTAMP, now()::TIMESTAMP, '{}', false, now()::TIMESTAMP, now()::TIMESTAMP"
        " FROM range(10, 10010) r(s)"
    )
    reads = {
        "pg_sessions_all_ms": "SELECT count(*), max(last_seen) FROM pg.sessions",
        "pg_sessions_page_ms": "SELECT * FROM pg.sessions ORDER BY sid DESC LIMIT 50",
        "lake_sessions_all_ms": "SELECT count(*), max(last_seen) FROM lake.sessions",
        "lake_join_pg_page_ms": "SELECT l.sid, l.name, p.last_seen FROM lake.sessions l"
        " JOIN pg.sessions p USING (sid) ORDER BY l.sid DESC LIMIT 50",
    }
    out: dict[str, Any] = {
        "assign_1000_new_ms": round(statistics.median(new_ms), 2),
        "lookup_1000_known_ms": round(statistics.median(known_ms), 2),
    }
    for name, sql in reads.items():
        times = []
        for _ in range(5):
            started = time.perf_counter()
            con.execute(sql).fetchall()
            times.append((time.perf_counter() - started) * 1000)
        out[name] = round(statistics.median(times), 1)
    con.close()
    pg.close()
    print(f"  ids and live rows: {out}", flush=True)
    return out


def measure_dedup(lab: Lab, rows: int = 1_000_000, dup_fraction: float = 0.01) -> dict[str, Any]:
    """Reads with and without deduplication over ``rows`` results of which 1 % are
    stored twice, written as 1,000-row commits (many files), then merged."""
    lake = lab.lake()
    prepare(lake)
    con = connect(lake)
    cur = cursor(con)
    for start in range(0, rows, BATCH):
        tables.insert(cur, tables.RESULTS, results_batch(1 + (start // 100_000), start))
    dups = int(rows * dup_fraction)
    for start in range(0, dups, BATCH):  # redelivered batches, spread over the history
        first = start * int(1 / dup_fraction)
        tables.insert(cur, tables.RESULTS, results_batch(1 + (first // 100_000), first))
    plain = "SELECT test_id, count_if(outcome = 'failed') AS f, avg(duration) AS d FROM {src} GROUP BY test_id"
    dedup_src = (
        "(SELECT * FROM results QUALIFY row_number() OVER (PARTITION BY sid, seq"
        " ORDER BY stored_at) = 1)"
    )
    anyvalue_src = (
        "(SELECT sid, seq, any_value(test_id) AS test_id, any_value(outcome) AS outcome,"
        " any_value(duration) AS duration FROM results GROUP BY sid, seq)"
    )
    one_session = "SELECT count(*), count_if(outcome = 'failed') FROM {src} WHERE sid = 3"
    queries = {
        "plain": plain.format(src="results"),
        "qualify": plain.format(src=dedup_src),
        "group_by_key": plain.format(src=anyvalue_src),
        "one_session_plain": one_session.format(src="results"),
        "one_session_qualify": one_session.format(
            src="(SELECT * FROM results WHERE sid = 3 QUALIFY row_number() OVER"
            " (PARTITION BY sid, seq ORDER BY stored_at) = 1)"
        ),
    }

    def timed() -> dict[str, float]:
        found = {}
        for name, sql in queries.items():
            runs = []
            for _ in range(3):
                started = time.perf_counter()
                cur.execute(sql).fetchall()
                runs.append((time.perf_counter() - started) * 1000)
            found[name] = round(statistics.median(runs), 1)
        return found

    files = cur.execute("SELECT count(DISTINCT filename) FROM results").fetchall()[0][0]
    out: dict[str, Any] = {"rows": rows + dups, "duplicates": dups, "files_before": files}
    out["many_files_ms"] = timed()
    started = time.perf_counter()
    cur.execute("CALL ducklake_merge_adjacent_files('lake')").fetchall()
    out["merge_s"] = round(time.perf_counter() - started, 2)
    out["files_after"] = cur.execute("SELECT count(DISTINCT filename) FROM results").fetchall()[0][
        0
    ]
    out["merged_ms"] = timed()
    # Compaction that removes the duplicates themselves (keeps the first of each key).
    started = time.perf_counter()
    cur.execute("BEGIN TRANSACTION")
    deleted = cur.execute(
        "DELETE FROM results WHERE rowid IN (SELECT rowid FROM results QUALIFY row_number()"
        " OVER (PARTITION BY sid, seq ORDER BY snapshot_id, rowid) > 1)"
    ).fetchall()
    cur.execute("COMMIT")
    out["delete_duplicates_s"] = round(time.perf_counter() - started, 2)
    out["deleted"] = int(deleted[0][0])
    out["after_delete"] = count_duplicates(lake)
    out["after_delete_ms"] = timed()
    con.close()
    print(f"  dedup on read: {out}", flush=True)
    return out


def session_updater(
    lake: LakeSettings, writer: int, seconds: float, same_row: bool, start_at: float
) -> dict[str, Any]:
    con = connect(lake)
    sid = 1 if same_row else writer + 1
    ok, conflicts, streak, worst = 0, 0, 0, 0
    latencies = []
    while time.time() < start_at:
        time.sleep(0.005)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            con.execute(
                "UPDATE sessions SET last_seen = now()::TIMESTAMP, updated_at = now()::TIMESTAMP,"
                " state = CAST(json_object('n', ?) AS JSON) WHERE sid = ?",
                [ok, sid],
            ).fetchall()
        except duckdb.TransactionException:
            conflicts += 1
            streak += 1
            worst = max(worst, streak)
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            continue
        latencies.append(time.perf_counter() - started)
        ok += 1
        streak = 0
    con.close()
    return {"ok": ok, "conflicts": conflicts, "worst_streak": worst, "latencies": latencies}


def pg_session_updater(
    lake: LakeSettings, writer: int, seconds: float, same_row: bool, start_at: float
) -> dict[str, Any]:
    pg = psycopg_connect(lake)
    sid = 1 if same_row else writer + 1
    ok = 0
    latencies = []
    while time.time() < start_at:
        time.sleep(0.005)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        pg.execute(
            "UPDATE sessions SET last_seen = now(), updated_at = now(),"
            " state = state || jsonb_build_object('n', %s::int) WHERE sid = %s",
            [ok, sid],
        )
        latencies.append(time.perf_counter() - started)
        ok += 1
    pg.close()
    return {"ok": ok, "conflicts": 0, "worst_streak": 0, "latencies": latencies}


def run_updaters(fn: Any, lake: LakeSettings, seconds: float, same_row: bool) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 6
    with ctx.Pool(2) as pool:
        jobs = [pool.apply_async(fn, (lake, w, seconds, same_row, start_at)) for w in range(2)]
        done = [job.get(timeout=seconds + 120) for job in jobs]
    ok = sum(d["ok"] for d in done)
    conflicts = sum(d["conflicts"] for d in done)
    latencies = [x * 1000 for d in done for x in d["latencies"]]
    return {
        "updates": ok,
        "updates_per_s": round(ok / seconds),
        "conflicts": conflicts,
        "conflict_rate": round(conflicts / max(1, ok + conflicts), 3),
        "worst_streak": max(d["worst_streak"] for d in done),
        "per_server": [d["ok"] for d in done],
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p95_ms": round(percentile(latencies, 0.95), 2),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def measure_sessions(lab: Lab, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for same in (False, True):
        name = "same_row" if same else "different_rows"
        lake = lab.lake()
        prepare(lake)
        out[f"lake_{name}"] = run_updaters(session_updater, lake, seconds, same)
        print(f"  sessions lake {name}: {out[f'lake_{name}']}", flush=True)
        out[f"pg_{name}"] = run_updaters(pg_session_updater, lake, seconds, same)
        print(f"  sessions pg {name}: {out[f'pg_{name}']}", flush=True)
    for design in ("sessions_lake", "sessions_pg"):
        lake = lab.lake()
        prepare(lake)
        result = run_writers(lake, 2, seconds, design)
        result.update(count_duplicates(lake))
        out[f"writer_shape_{design}"] = result
        print(f"  writer shape {design}: {result}", flush=True)
    return out


def measure_pg_authority(lab: Lab, rounds: int = 500) -> dict[str, Any]:
    """Round trips to PostgreSQL a server would add: a sequence, a claim, an advisory lock
    (psycopg), and the same sequence through DuckDB's postgres extension."""
    lake = lab.lake()
    prepare(lake)
    pg = psycopg_connect(lake)
    pg.execute("CREATE SEQUENCE IF NOT EXISTS sids")
    out = {}

    def timed(fn: Callable[[int], Any]) -> float:
        started = time.perf_counter()
        for i in range(rounds):
            fn(i)
        return round((time.perf_counter() - started) / rounds * 1000, 3)

    out["psycopg_nextval_ms"] = timed(lambda i: pg.execute("SELECT nextval('sids')").fetchone())
    out["psycopg_try_advisory_xact_lock_ms"] = timed(
        lambda i: pg.execute("SELECT pg_try_advisory_lock(7), pg_advisory_unlock(7)").fetchone()
    )
    con = connect(lake)
    con.execute(f"ATTACH '{lake.catalog}' AS pg (TYPE postgres)")
    out["duckdb_postgres_query_nextval_ms"] = timed(
        lambda i: con.execute(
            "SELECT * FROM postgres_query('pg', 'SELECT nextval(''sids'')')"
        ).fetchall()
    )
    # The extension hands connections back to its pool with DISCARD ALL: a session
    # advisory lock taken through it is released at once.
    con.execute("SELECT * FROM postgres_query('pg', 'SELECT pg_try_advisory_lock(99)')").fetchall()
    held = pg.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 99"
    ).fetchone()
    out["advisory_lock_through_duckdb_still_held"] = bool(held and held[0])
    con.close()
    pg.close()
    print(f"  pg authority: {out}", flush=True)
    return out


# -- real servers -------------------------------------------------------------------------


def _cpu_ms(pid: int) -> float:
    """User + system CPU of a process, in ms (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def _batches(session: str, count: int, size: int) -> list[bytes]:
    """``count`` format-2 batches of ``size`` results of one session, encoded."""
    import msgspec

    now = time.time()
    out = []
    for number in range(count):
        first = 1 + number * size
        out.append(
            msgspec.json.encode(
                {
                    "results": [
                        {
                            "session_id": session,
                            "seq": list(range(first, first + size)),
                            "nodeid": [f"tests/test_b.py::test_{i % 2000}" for i in range(size)],
                            "outcome": ["failed" if i % 50 == 0 else "passed" for i in range(size)],
                            "timestamp": [now] * size,
                            "call_duration": [0.01] * size,
                        }
                    ],
                    "records": (
                        [
                            {
                                "kind": "session_start",
                                "session_id": session,
                                "seq": 0,
                                "timestamp": now,
                                "product": "bench",
                            }
                        ]
                        if number == 0
                        else []
                    ),
                }
            )
        )
    return out


def _send(urls: list[str], batches: list[bytes], until: float, latencies: list[float]) -> int:
    """Post the batches in order, to the servers in turn, until ``until``; results sent."""
    import httpx

    sent = 0
    with httpx.Client(timeout=60) as client:
        for number, body in enumerate(batches):
            if time.monotonic() > until and number > 0:
                break
            url = urls[number % len(urls)]
            started = time.perf_counter()
            answer = client.post(
                f"{url}/api/ingest/v2", content=body, headers={"content-type": "application/json"}
            )
            latencies.append(time.perf_counter() - started)
            if answer.status_code != 200:
                raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:200]}")
            sent += int(answer.json()["accepted"])
    return sent


def _ingest_through(
    urls: list[str], pids: list[int], seconds: float, clients: int = 4, size: int = 1_000
) -> dict[str, Any]:
    import threading

    batches = [_batches(str(uuid.uuid4()), 400, size) for _ in range(clients)]
    latencies: list[float] = []
    totals = [0] * clients
    cpu_before = sum(_cpu_ms(pid) for pid in pids)
    started = time.monotonic()
    until = started + seconds

    def client(index: int) -> None:
        totals[index] = _send(urls, batches[index], until, latencies)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    cpu = sum(_cpu_ms(pid) for pid in pids) - cpu_before
    stored = sum(totals)
    out = {
        "servers": len(urls),
        "results": stored,
        "results_per_s": round(stored / wall),
        **{k: v for k, v in summary(latencies).items() if k in ("p50_ms", "p95_ms")},
        "server_cpu_ms_per_1000": round(cpu / stored * 1000, 1),
    }
    print(out, flush=True)
    return out


def measure_servers(lab: Lab, seconds: float) -> dict[str, Any]:
    """Ingest through 1, 2, 3 lake servers and the embedded file; then failover."""
    from tests.support.server import ServerProcess

    work = Path(tempfile.mkdtemp(prefix="datacat-bench-servers-"))
    out: dict[str, Any] = {"load_before": os.getloadavg()}
    file_server = ServerProcess(work / "file.duckdb").start(timeout=120)
    try:
        assert file_server.proc is not None
        out["file"] = _ingest_through([file_server.url], [file_server.proc.pid], seconds)
    finally:
        file_server.stop()
    for count in (1, 2, 3):
        env = _lake_env(lab.lake())
        servers = [ServerProcess(work / f"lake{count}-{i}.duckdb", env=env) for i in range(count)]
        try:
            for server in servers:
                server.start(timeout=180)
            pids = [s.proc.pid for s in servers if s.proc is not None]
            out[f"lake_{count}"] = _ingest_through([s.url for s in servers], pids, seconds)
        finally:
            for server in servers:
                server.stop()
    one = out["lake_1"]["server_cpu_ms_per_1000"]
    out["servers_needed"] = {
        label: max(1, -(-rate * one // 1_000_000))
        for label, rate in (("average_1200_per_s", 1_200), ("burst_50000_per_s", 50_000))
    }
    out["failover"] = measure_failover(lab, work)
    out["load_after"] = os.getloadavg()
    return out


def _lake_env(lake: LakeSettings) -> dict[str, str]:
    return {
        "DATACAT_STORE": "lake",
        "DATACAT_LAKE_CATALOG": lake.catalog,
        "DATACAT_LAKE_DATA_PATH": lake.data_path,
        "DATACAT_S3_ENDPOINT": lake.s3_endpoint or "",
        "DATACAT_S3_KEY_ID": lake.s3_key_id or "",
        "DATACAT_S3_SECRET": lake.s3_secret or "",
        "DATACAT_S3_URL_STYLE": "path",
        "DATACAT_S3_USE_SSL": "false",
        "DATACAT_DUCKDB_EXTENSION_DIR": str(EXT_DIR),
    }


def measure_failover(lab: Lab, work: Path, rounds: int = 3) -> dict[str, Any]:
    """Three lake servers behind HAProxy; a client sends 100-result batches without
    pause; one server is SIGKILLed: how long until a batch is acknowledged again, and
    the longest any batch waited around the kill."""
    import httpx

    from tests.support.lake import HAProxy
    from tests.support.server import ServerProcess

    env = _lake_env(lab.lake())
    servers = [ServerProcess(work / f"fail-{i}.duckdb", env=env) for i in range(3)]
    proxy = None
    found: list[dict[str, float]] = []
    try:
        for server in servers:
            server.start(timeout=180)
        proxy = HAProxy({f"s{i}": s.port for i, s in enumerate(servers)}, check_interval=0.5)
        proxy.start()
        for round_ in range(rounds):
            session = str(uuid.uuid4())
            batches = _batches(session, 2_000, 100)
            acks: list[tuple[float, float]] = []
            victim = servers[round_ % 3]
            killed_at = 0.0
            with httpx.Client(timeout=60) as client:
                for number, body in enumerate(batches):
                    if number == 20:
                        killed_at = time.monotonic()
                        victim.kill()
                    started = time.monotonic()
                    answer = client.post(
                        f"{proxy.url}/api/ingest/v2",
                        content=body,
                        headers={"content-type": "application/json"},
                    )
                    while answer.status_code != 200:  # a 502/503: the client retries
                        time.sleep(0.05)
                        answer = client.post(
                            f"{proxy.url}/api/ingest/v2",
                            content=body,
                            headers={"content-type": "application/json"},
                        )
                    acks.append((started, time.monotonic()))
                    if killed_at and time.monotonic() - killed_at > 5:
                        break
            after = [done for _, done in acks if done > killed_at]
            waited = [done - start for start, done in acks if done > killed_at]
            found.append(
                {
                    "first_ack_after_kill_ms": round((min(after) - killed_at) * 1000, 1),
                    "longest_batch_around_kill_ms": round(max(waited) * 1000, 1),
                }
            )
            print(found[-1], flush=True)
            victim.start(timeout=180)
    finally:
        if proxy is not None:
            proxy.stop()
        for server in servers:
            server.stop()
    return {"rounds": found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what", choices=["ingest", "once", "sessions", "retention", "pg", "servers", "all"]
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"duckdb {duckdb.__version__}, cpus {os.cpu_count()}", flush=True)
    lab = Lab()
    results: dict[str, Any] = {"duckdb": duckdb.__version__, "seconds": args.seconds}
    try:
        EXT_DIR.mkdir(parents=True, exist_ok=True)
        if args.what in ("pg", "all"):
            results["pg"] = measure_pg_authority(lab)
            results["ids"] = measure_ids(lab)
        if args.what in ("ingest", "all"):
            results["ingest"] = measure_ingest(lab, args.seconds)
        if args.what in ("once", "all"):
            results["once"] = measure_once(lab, args.seconds)
        if args.what in ("sessions", "all"):
            results["sessions"] = measure_sessions(lab, args.seconds)
        if args.what in ("retention", "all"):
            results["retention"] = measure_retention(lab, args.seconds)
        if args.what in ("servers", "all"):
            results["servers"] = measure_servers(lab, args.seconds)
    finally:
        lab.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
