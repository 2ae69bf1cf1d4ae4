"""Insight queries and pages over 10,000,000 test results: a DuckLake beside the file.

The store of `benchmarks/queries.py` (`querydata.build`: 2,000 runs x 5,000 tests,
rollups folded) is built once into ``--cache`` with this environment's DuckDB (1.5.5
in ``.venv-lake``: a file is read by the DuckDB that wrote it or a newer one), then
moved into a lake the way ``datacat migrate-store`` moves it (Debian's PostgreSQL 15
as the catalog, started here by `tests.support.lake`; the data in a directory, or
with ``--data s3`` on moto's S3 server, whose one Python process serving every read
bounds the lake's figures more than DuckLake does). Each query
then runs on both stores, side by side in one run, as the API runs it:

- **warm**: median of ``--reps`` runs on an open store (``Store`` on a copy of the
  file, ``LakeStore`` on the lake), over the default window and the whole store;
- **cold**: a new process opens the store and runs the query once (the file: the
  cache itself, read-only; the page cache is dropped first where this user may);
- **pages**: the dashboard's pages rendered through the app on each store, warm.

Target (issue 11): the lake within 2x of the file, every page <= 600 ms warm. Run in
the lake environment::

    .venv-lake/bin/python benchmarks/lake_queries.py [--reps 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from benchmarks.lake import EXT_DIR, Lab, _lake_env  # noqa: E402
from benchmarks.queries import DEFAULT_RUNS, PROJECT, _drop_caches, _queries, _warm  # noqa: E402
from benchmarks.querydata import build  # noqa: E402
from datacat_server.store import Store, StoreBase  # noqa: E402
from datacat_server.store.lake import LakeSettings  # noqa: E402
from datacat_server.store.lake.migrate import migrate_file  # noqa: E402
from datacat_server.store.lake.store import LakeStore  # noqa: E402

#: The pages timed on each store (the run and test pages get their ids at run time).
PAGES = {
    "overview": "/",
    "flaky": f"/flaky?project={PROJECT}",
    "slow": f"/slow?project={PROJECT}",
    "failures": f"/failures?project={PROJECT}",
    "runs": f"/runs?project={PROJECT}",
}

_COLD = """
import os, sys, time
sys.path.insert(0, {root!r})
from benchmarks.queries import _queries
if {kind!r} == "file":
    import duckdb
    store = None
    con = duckdb.connect({path!r}, read_only=True)
else:
    from datacat_server.store.lake import LakeSettings
    from datacat_server.store.lake.store import LakeStore
    store = LakeStore(LakeSettings.from_env(os.environ))
    con = store.reader()
try:
    fn = _queries(con, {runs})[{name!r}]
    started = time.perf_counter()
    fn()
    print(time.perf_counter() - started)
finally:
    con.close() if store is None else store.close()
"""


def _cold(kind: str, path: Path, env: dict[str, str], name: str, runs: int) -> float:
    if kind == "file":
        _drop_caches()
    code = _COLD.format(root=str(ROOT), kind=kind, path=str(path), runs=runs, name=name)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        env={**os.environ, **env},
    )
    return float(done.stdout.strip().splitlines()[-1])


def _pages(store: StoreBase, reps: int) -> dict[str, float]:
    from litestar.testing import TestClient

    from datacat_server.app import create_app
    from datacat_server.settings import Settings

    cur = store.reader()
    run_id = cur.execute("SELECT id::VARCHAR FROM sessions WHERE sid = 1500").fetchall()[0][0]
    nodeid = cur.execute("SELECT nodeid FROM tests WHERE test_id = 2699").fetchall()[0][0]
    pages = {
        **PAGES,
        "run": f"/runs/{run_id}",
        "test history": f"/tests?project={PROJECT}&nodeid={nodeid}",
    }
    timings = {}
    with TestClient(create_app(Settings(allow_anonymous=True), store=store)) as client:
        for name, url in pages.items():
            answer = client.get(url)
            if answer.status_code != 200:
                raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:300]}")
            timings[name] = _warm(lambda url=url: client.get(url), reps)
    return timings


@contextmanager
def _stores(cache: Path, lab: Lab, local: bool) -> Iterator[tuple[Store, LakeSettings, LakeStore]]:
    work = Path(tempfile.mkdtemp(prefix="datacat-lake-queries-"))
    copy = work / "file.duckdb"
    shutil.copy(cache, copy)
    settings = lab.lake(work / "lake-data" if local else None)
    started = time.perf_counter()
    counts = migrate_file(cache, settings)
    print(
        f"moved into the lake in {time.perf_counter() - started:.0f} s"
        f" ({sum(c.target for c in counts):,} rows, counts equal: {all(c.ok for c in counts)})",
        flush=True,
    )
    file_store = Store(copy)
    lake_store = LakeStore(settings)
    try:
        yield file_store, settings, lake_store
    finally:
        lake_store.close()
        file_store.close()
        shutil.rmtree(work, ignore_errors=True)


def _row(name: str, label: str, file: dict[str, Any], lake: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f}"

    return (
        f"{name:18} {label:>8} {ms(file['warm_s']):>8} {ms(lake['warm_s']):>8}"
        f" {lake['warm_s'] / file['warm_s']:6.1f}x {ms(file['cold_s']):>8} {ms(lake['cold_s']):>8}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(f"/tmp/datacat-bench-10m-duckdb{duckdb.__version__.replace('.', '')}.duckdb"),
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--data",
        choices=["dir", "s3"],
        default="dir",
        help="where the lake's Parquet files go: a local directory (DuckLake's own cost) or"
        " moto's S3 server (one Python process serves every read: it bounds the figures)",
    )
    parser.add_argument("--no-cold", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not args.cache.exists():
        print(f"building {args.cache} (2,000 runs x 5,000 tests) ...", flush=True)
        build(args.cache)
    EXT_DIR.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {
        "duckdb": duckdb.__version__,
        "cpus": os.cpu_count(),
        "data": args.data,
        "load_before": os.getloadavg(),
        "queries": {},
    }
    lab = Lab()
    try:
        with _stores(args.cache, lab, args.data == "dir") as (file_store, settings, lake_store):
            env = _lake_env(settings)
            total = lake_store.reader().execute("SELECT count(*) FROM results").fetchall()[0][0]
            figures["results"] = total
            print(f"\n{total:,} test results in each store; {os.cpu_count()} CPUs")
            print(
                f"{'query':18} {'window':>8} {'file ms':>8} {'lake ms':>8} {'lake/f':>7}"
                f" {'cold f':>8} {'cold l':>8}"
            )
            stores: dict[str, StoreBase] = {"file": file_store, "lake": lake_store}
            for whole in (False, True):
                for name in _queries(file_store.reader(), 100):
                    default = DEFAULT_RUNS.get(name, 100)
                    runs, label = (2000, "all") if whole else (default, f"{default} runs")
                    row: dict[str, dict[str, Any]] = {}
                    for kind, store in stores.items():
                        fn: Callable[[], Any] = _queries(store.reader(), runs)[name]
                        row[kind] = {
                            "warm_s": _warm(fn, args.reps),
                            "cold_s": None
                            if args.no_cold
                            else _cold(kind, args.cache, env, name, runs),
                        }
                    row["lake"]["ratio_to_file"] = row["lake"]["warm_s"] / row["file"]["warm_s"]
                    figures["queries"][f"{name} / {label}"] = row
                    print(_row(name, label, row["file"], row["lake"]), flush=True)
            figures["pages"] = {kind: _pages(store, args.reps) for kind, store in stores.items()}
            for page in figures["pages"]["file"]:
                file_s, lake_s = figures["pages"]["file"][page], figures["pages"]["lake"][page]
                print(
                    f"page {page:13} file {file_s * 1000:5.0f} ms  lake {lake_s * 1000:5.0f} ms"
                    f"  {lake_s / file_s:5.1f}x"
                )
    finally:
        lab.close()
    figures["load_after"] = os.getloadavg()
    print("\ntargets: the lake within 2x of the file; every page <= 600 ms warm")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
