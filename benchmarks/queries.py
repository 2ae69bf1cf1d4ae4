"""The query layer over 10,000,000 test results: warm and cold latency, pages, SQLite.

The store (2,000 runs x 5,000 tests, 1 % flaky, 2 % noisy, a few regressions; see
`querydata.py`) is built once and kept in ``--cache`` (default
``/tmp/datacat-bench-10m-v2.duckdb``; v2: with noisy tests and regressions inside the
windows). Each query runs as the API runs it: over its default window (the last 100
runs; regressions 200) and over the whole store. The regressions found are checked
against the store's known answers.

- **warm**: median of ``--reps`` runs on an open connection;
- **cold**: a new process (nothing of DuckDB's in memory), with the OS page cache
  dropped first when this user may (root: ``/proc/sys/vm/drop_caches``), one run;
- **pages**: the overview and flaky pages rendered through the app (Litestar's test
  client), warm;
- **SQLite**: the flaky and run-detail queries on the same rows in SQLite (stdlib),
  with an index on (test, run); built once into ``--cache``.sqlite.

    python benchmarks/queries.py [--reps 7] [--no-sqlite] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from benchmarks.querydata import (  # noqa: E402
    NOISY_EVERY,
    NOISY_OFFSET,
    REGRESSED_AGE,
    REGRESSED_EVERY,
    build,
)
from datacat_server.queries.failures import failure_clusters  # noqa: E402
from datacat_server.queries.flaky import flaky_tests  # noqa: E402
from datacat_server.queries.regressions import regressions  # noqa: E402
from datacat_server.queries.runs import get_run, run_tests  # noqa: E402
from datacat_server.queries.slow import slow_tests  # noqa: E402
from datacat_server.queries.test_history import test_history  # noqa: E402
from datacat_server.queries.window import recent_runs  # noqa: E402

PROJECT = "bench"
NODEID = "tests/test_mod_53.py::test_case_2699[p4]"
#: The runs each query looks at by default in the API (the rest: 100).
DEFAULT_RUNS = {"regressions": 200}


def _queries(con: duckdb.DuckDBPyConnection, runs: int) -> dict[str, Callable[[], Any]]:
    run_id = con.execute("SELECT id::VARCHAR FROM sessions WHERE sid = 1500").fetchone()[0]  # type: ignore[index]

    def window() -> Any:
        return recent_runs(con, PROJECT, None, runs)

    return {
        "flaky": lambda: flaky_tests(con, window()),
        "slow": lambda: slow_tests(con, window()),
        "regressions": lambda: regressions(con, window()),
        "failure clusters": lambda: failure_clusters(con, window()),
        "test history": lambda: test_history(con, PROJECT, NODEID, window()),
        "run detail": lambda: (get_run(con, run_id), run_tests(con, run_id, limit=500)),
    }


def _check_regressions(con: duckdb.DuckDBPyConnection) -> dict[str, bool]:
    """Regressions over 100 and 200 runs against the store's known answers: every test
    that regressed inside the window is found on main at the first main run since (the
    2,000 runs' last is run 2,000), and no noisy test is."""
    answers = {}
    main = [row[0] for row in con.execute("SELECT sid FROM runs WHERE branch = 'main'").fetchall()]
    main.sort()
    ids = dict(con.execute("SELECT id::VARCHAR, sid FROM sessions").fetchall())
    for runs in (100, 200):
        found = {
            (r.nodeid, r.branch): r.run
            for r in regressions(con, recent_runs(con, PROJECT, None, runs), limit=1000)
        }
        expected, exact = set(), True
        for k in range(1, 5000 // REGRESSED_EVERY + 1):
            landed = 2000 - REGRESSED_AGE * k  # 0-based run index; sid = index + 1
            if landed < 2000 - runs:
                continue
            nodeid = con.execute(
                "SELECT nodeid FROM tests WHERE test_id = ?", [k * REGRESSED_EVERY]
            ).fetchall()[0][0]
            expected.add(nodeid)
            first_main = next(sid for sid in main if sid >= landed + 1)
            exact &= ids.get(found.get((nodeid, "main"), ""), -1) == first_main
        on_main = {nodeid for nodeid, branch in found if branch == "main"}
        noisy = {
            nodeid
            for nodeid, _ in found
            if int(nodeid.split("test_case_")[1].split("[")[0]) % NOISY_EVERY == NOISY_OFFSET - 1
        }
        answers[f"{runs} runs"] = on_main == expected and exact and not noisy
        print(
            f"regressions over {runs} runs: {len(on_main & expected)}/{len(expected)} found on"
            f" main, at their run: {exact}; others: {sorted(on_main - expected)}; noisy: {len(noisy)}"
        )
    return answers


def _warm(fn: Callable[[], Any], reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=False)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


_COLD = """
import sys, time, duckdb
sys.path.insert(0, {root!r})
from benchmarks.queries import _queries
con = duckdb.connect({path!r}, read_only=True)
fn = _queries(con, {runs})[{name!r}]
started = time.perf_counter()
fn()
print(time.perf_counter() - started)
"""


def _cold(path: Path, name: str, runs: int) -> float:
    _drop_caches()
    code = _COLD.format(root=str(ROOT), path=str(path), runs=runs, name=name)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600
    )
    return float(done.stdout.strip().splitlines()[-1])


def _pages(path: Path, reps: int) -> dict[str, float]:
    from litestar.testing import TestClient

    from datacat_server.app import create_app
    from datacat_server.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="datacat-pages-"))
    copy = work / "pages.duckdb"
    shutil.copy(path, copy)
    timings = {}
    try:
        with TestClient(create_app(Settings(db_path=copy))) as client:
            for name, url in (("overview page", "/"), ("flaky page", "/flaky")):
                if client.get(url).status_code != 200:
                    continue  # the dashboard is not mounted in this build
                timings[name] = _warm(lambda url=url: client.get(url), reps)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return timings


def _sqlite(path: Path, sqlite_path: Path) -> dict[str, float]:
    if not sqlite_path.exists():
        print(f"building {sqlite_path} (once) ...", flush=True)
        con = duckdb.connect(str(path), read_only=True)
        lite = sqlite3.connect(sqlite_path)
        lite.execute(
            "CREATE TABLE results (sid INTEGER, test_id INTEGER, outcome TEXT, duration REAL,"
            " nodeid TEXT)"
        )
        cur = con.execute(
            "SELECT r.sid, r.test_id, r.outcome::VARCHAR, r.duration, t.nodeid"
            " FROM results r JOIN tests t USING (test_id)"
        )
        while rows := cur.fetchmany(100_000):
            lite.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?)", rows)
        lite.execute("CREATE TABLE runs AS SELECT 0 AS sid, '' AS commit_ WHERE 0")
        lite.executemany(
            "INSERT INTO runs VALUES (?, ?)",
            con.execute('SELECT sid, "commit" FROM runs').fetchall(),
        )
        lite.execute("CREATE INDEX results_test ON results (test_id, sid)")
        lite.execute("CREATE INDEX results_run ON results (sid)")
        lite.commit()
        lite.close()
        con.close()
    lite = sqlite3.connect(sqlite_path)
    flaky = """
        WITH f AS (SELECT test_id, sid, outcome != 'passed' AS bad FROM results
                   WHERE outcome IN ('passed', 'failed', 'error')),
        w AS (SELECT test_id, bad, lag(bad) OVER (PARTITION BY test_id ORDER BY sid) AS prev FROM f)
        SELECT test_id, sum(bad) AS failures, count(*) AS n,
               sum(CASE WHEN bad != prev THEN 1 ELSE 0 END) AS flips
        FROM w GROUP BY test_id HAVING failures > 0 AND failures < n
        ORDER BY flips DESC LIMIT 50
    """
    detail = """
        SELECT nodeid, outcome, duration FROM results WHERE sid = 1500
        ORDER BY outcome IN ('failed', 'error') DESC, nodeid LIMIT 500
    """
    timings = {}
    for name, sql in (("flaky", flaky), ("run detail", detail)):
        started = time.perf_counter()
        lite.execute(sql).fetchall()
        timings[name] = time.perf_counter() - started
    lite.close()
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/datacat-bench-10m-v2.duckdb"))
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-cold", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not args.cache.exists():
        print(f"building {args.cache} (2,000 runs x 5,000 tests) ...", flush=True)
        build(args.cache)
    con = duckdb.connect(str(args.cache), read_only=True)
    total = con.execute("SELECT count(*) FROM results").fetchone()[0]  # type: ignore[index]
    figures: dict[str, Any] = {"results": total, "queries": {}}
    print(f"\n{total:,} test results; {os.cpu_count()} CPUs; duckdb {duckdb.__version__}")
    print(f"cold runs drop the page cache: {_drop_caches()}\n")
    print(f"{'query':18} {'window':>8} {'warm ms':>9} {'cold ms':>9} {'all / window':>13}")
    for whole in (False, True):
        for name in _queries(con, 100):
            default = DEFAULT_RUNS.get(name, 100)
            runs, label = (2000, "all") if whole else (default, f"{default} runs")
            fn = _queries(con, runs)[name]
            warm = _warm(fn, args.reps)
            cold = None if args.no_cold else _cold(args.cache, name, runs)
            figures["queries"][f"{name} / {label}"] = {"warm_s": warm, "cold_s": cold}
            cold_text = "-" if cold is None else f"{cold * 1000:9.0f}"
            ratio = ""
            if whole:
                window_warm = figures["queries"][f"{name} / {default} runs"]["warm_s"]
                figures["queries"][f"{name} / all"]["ratio_to_window"] = warm / window_warm
                ratio = f"{warm / window_warm:12.1f}x"
            print(f"{name:18} {label:>8} {warm * 1000:9.0f} {cold_text:>9} {ratio:>13}")
    figures["known_answers"] = _check_regressions(con)
    con.close()
    pages = _pages(args.cache, args.reps)
    figures["pages"] = pages
    for name, seconds in pages.items():
        print(f"{name:18} {'100 runs':>8} {seconds * 1000:9.0f}")
    print(
        "\ntargets: each query <= 250 ms warm and <= 1 s cold, over the whole store within"
        " 2x of the default window; each page <= 300 ms warm"
    )
    if not args.no_sqlite:
        sqlite_path = args.cache.with_suffix(".sqlite")
        lite = _sqlite(args.cache, sqlite_path)
        figures["sqlite"] = lite
        duck = figures["queries"]
        for name in ("flaky", "run detail"):
            ours = duck[f"{name} / all"]["warm_s"]
            print(
                f"SQLite {name:12} {lite[name] * 1000:9.0f} ms  = {lite[name] / ours:5.1f} x"
                f" DuckDB over the whole store ({ours * 1000:.0f} ms)"
            )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
