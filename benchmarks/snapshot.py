"""What people's SQL costs the server: snapshots of 10,000,000 test results, and queries
through the worker pool.

The store is the one ``queries.py`` uses (built once into ``--cache``, see
``querydata.py``), copied to a temporary directory and opened as the server opens it.

- **snapshot**: ``make_snapshot`` on a cursor of the server's database, ``--reps``
  times: wall seconds, CPU seconds of the whole process, size of the file;
- **writer meanwhile**: the writer commits batches of 1,000 events in a loop, before
  and during one more snapshot: commits per second and the slowest commit, to show
  that copying does not block it;
- **pool**: the first query through `SqlPool` (worker start and snapshot), then a warm
  aggregate over every result (median of ``--reps``), beside the same query on the
  server's own cursor.

    python benchmarks/snapshot.py [--cache PATH] [--reps 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.querydata import build  # noqa: E402
from datacat_server.settings import Settings  # noqa: E402
from datacat_server.sqlpool.pool import open_sql_pool  # noqa: E402
from datacat_server.sqlpool.source import make_snapshot  # noqa: E402
from datacat_server.store import Store  # noqa: E402
from tests.server.records import RecordMaker  # noqa: E402

QUERY = "SELECT outcome, count(*), avg(duration) FROM test_results GROUP BY outcome"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def snapshots(store: Store, reps: int) -> dict[str, Any]:
    cursor = store.db.new_cursor()
    runs = []
    for i in range(reps):
        path = store.db.snapshot_dir / f"bench{i}" / store.db.path.name
        path.parent.mkdir(parents=True)
        cost = make_snapshot(cursor, path, 3.0)
        runs.append({"wall": cost.wall, "cpu": cost.cpu, "bytes": path.stat().st_size})
        shutil.rmtree(path.parent)
    return {
        "runs": runs,
        "wall_median": statistics.median(r["wall"] for r in runs),
        "cpu_median": statistics.median(r["cpu"] for r in runs),
        "bytes": runs[-1]["bytes"],
        "database_bytes": store.db.path.stat().st_size,
    }


def writer_meanwhile(store: Store, seconds: float) -> dict[str, Any]:
    """Commits of 1,000 events: alone for ``seconds``, then while a snapshot is made."""
    maker = RecordMaker()
    store.write_sync([maker.start(product="bench")])

    def commits(until: threading.Event | float) -> list[float]:
        took = []
        while (time.monotonic() < until) if isinstance(until, float) else not until.is_set():
            started = time.monotonic()
            store.write_sync([maker.event("e", {"i": i}) for i in range(1000)])
            took.append(time.monotonic() - started)
        return took

    alone = commits(time.monotonic() + seconds)
    finished = threading.Event()
    during: list[float] = []
    writer = threading.Thread(target=lambda: during.extend(commits(finished)))
    writer.start()
    path = store.db.snapshot_dir / "bench-writer" / store.db.path.name
    path.parent.mkdir(parents=True)
    started = time.monotonic()
    cost = make_snapshot(store.db.new_cursor(), path, 3.0)
    finished.set()
    writer.join()
    shutil.rmtree(path.parent)
    return {
        "alone_commits_per_s": len(alone) / sum(alone),
        "alone_slowest_s": max(alone),
        "during_commits_per_s": len(during) / max(sum(during), 1e-9),
        "during_slowest_s": max(during),
        "during_commits": len(during),
        "snapshot_wall_with_writer": cost.wall,
        "snapshot_window_s": time.monotonic() - started,
    }


async def pool_queries(store: Store, reps: int) -> dict[str, Any]:
    pool = open_sql_pool(store, Settings(db_path=store.db.path, sql_timeout=60))
    try:
        started = time.monotonic()
        await pool.run("SELECT 1")
        first = time.monotonic() - started
        warm = []
        for _ in range(reps):
            started = time.monotonic()
            await pool.run(QUERY)
            warm.append(time.monotonic() - started)
    finally:
        await pool.close()
    own = []
    cursor = store.db.new_cursor()
    for _ in range(reps):
        started = time.monotonic()
        cursor.execute(QUERY).fetchall()
        own.append(time.monotonic() - started)
    return {
        "first_query_s": first,
        "warm_pool_median_s": statistics.median(warm),
        "warm_in_process_median_s": statistics.median(own),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/datacat-bench-10m.duckdb"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not args.cache.exists():
        print(f"building {args.cache} (once)...", flush=True)
        build(args.cache)
    with tempfile.TemporaryDirectory(prefix="datacat-snapshot-bench-") as tmp:
        path = Path(tmp) / "datacat.duckdb"
        shutil.copyfile(args.cache, path)
        store = Store(path)
        try:
            cpu = _cpu()
            figures = {
                "snapshot": snapshots(store, args.reps),
                "writer": writer_meanwhile(store, 5.0),
                "pool": asyncio.run(pool_queries(store, args.reps)),
                "process_cpu_s": _cpu() - cpu,
            }
        finally:
            store.close()
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
