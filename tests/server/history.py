"""Test-run histories with known answers, written through the real writer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from datacat_client import wire
from datacat_server.store import Store
from tests.server.records import RecordMaker

#: Run n of a history starts at T0 + n hours.
T0 = 1_800_000_000.0


def write_run(store: Store, number: int, results: list[dict[str, Any]], **run: Any) -> str:
    """One pytest run as the plugin records it (`run_records`), written; its id."""
    run_id, records = run_records(number, results, **run)
    store.write_sync(records)
    return run_id


def write_runs(
    store: Store,
    runs: Iterable[tuple[list[dict[str, Any]], dict[str, Any]]],
    *,
    per_write: int = 25,
) -> list[str]:
    """Runs 0, 1, ... (each its results and `run_records` options), ``per_write`` runs
    to a write (a run's rows keep their order: the same transaction, then by session)."""
    ids: list[str] = []
    batch: list[Any] = []
    for number, (results, options) in enumerate(runs):
        run_id, records = run_records(number, results, **options)
        ids.append(run_id)
        batch += records
        if len(ids) % per_write == 0:
            store.write_sync(batch)
            batch = []
    if batch:
        store.write_sync(batch)
    return ids


def run_records(
    number: int,
    results: list[dict[str, Any]],
    *,
    project: str,
    branch: str = "main",
    commit: str = "",
    partial: bool = False,
    finish: bool = True,
    duration: float | None = None,
    counts: dict[str, int] | None = None,
    **run: Any,
) -> tuple[str, list[Any]]:
    """The records of run ``number`` (started T0 + n hours) and its id: ``results``
    are `wire.TestResult` fields (``nodeid`` and ``outcome`` at least), stored in this
    order; ``run``: more `wire.RunStart` fields; ``counts``: pytest's counts at the
    finish, when they differ from the results'. Runs written together in one batch keep
    their order (by session)."""
    maker = RecordMaker()
    start = T0 + number * 3600
    records: list[Any] = [
        maker.start(product=project, name="pytest", timestamp=start),
        maker.make(
            wire.RunStart,
            project=project,
            branch=branch,
            commit=commit or f"c{number:04d}",
            partial=partial,
            timestamp=start,
            **run,
        ),
    ]
    at = start
    for fields in results:
        took = (
            fields.get("setup_duration", 0.0)
            + fields.get("call_duration", 0.0)
            + fields.get("teardown_duration", 0.0)
        )
        records.append(
            maker.make(
                wire.TestResult, started_at=at, stopped_at=at + took, timestamp=at + took, **fields
            )
        )
        at += took
    if finish:
        counts = counts or Counter(
            ("subtests " if r.get("subtest") else "") + r["outcome"]
            for r in results
            if r.get("final", True)
        )
        failed = counts.get("failed", 0) + counts.get("error", 0) > 0
        records.append(
            maker.make(
                wire.RunFinish,
                exit_status=1 if failed else 0,
                status="failed" if failed else "passed",
                counts=dict(counts),
                duration=at - start if duration is None else duration,
                timestamp=at,
            )
        )
        records.append(maker.make(wire.SessionEnd, timestamp=at))
    return maker.session_id, records
