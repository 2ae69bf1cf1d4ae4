"""Test runs: the list, and one run with its tests."""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec

from datacat_server.queries._common import (
    decode_json,
    iso,
    parse_session_id,
    select_list,
    structs,
)

__all__ = [
    "UNFINISHED",
    "HangEvent",
    "RunInfo",
    "TestRow",
    "count_run_tests",
    "count_runs",
    "get_run",
    "get_runs",
    "list_runs",
    "run_hangs",
    "run_tests",
]

#: The outcome filter for runs that have not finished (alive, hung or crashed).
UNFINISHED = "running"


class RunInfo(msgspec.Struct):
    """One pytest run: where it ran, on what code, and how it ended.

    Two fields say how it is doing, under their JSON names: ``status`` is its
    session's (alive or not: `session_status`), ``outcome`` how pytest ended.
    """

    id: str
    project: str
    branch: str
    commit: str
    dirty: bool | None
    #: The session's status: ``running``, ``ended``, ``hung`` or ``crashed``.
    session_status: str = msgspec.field(name="status")
    #: How pytest ended (the ``runs.status`` column): ``passed``, ``failed``,
    #: ``stopped``, ``interrupted``, ``internal_error``, ``usage_error``, ``no_tests``;
    #: None while it runs.
    outcome: str | None
    reason: str | None
    exit_status: int | None
    #: pytest's own counts (``passed``, ``failed``, ``subtests passed``, ...).
    counts: dict[str, int]
    duration: float | None
    started_at: str
    finished_at: str | None
    ci_provider: str
    ci_url: str
    python_version: str
    python_implementation: str
    platform: str
    hostname: str
    pytest_version: str
    plugins: list[str]
    args: list[str]
    workers: int
    labels: dict[str, str]
    #: Tests started and not finished (the test a crashed run was in).
    in_progress: dict[str, Any]
    #: Only part of the suite was selected (``-k``, ``-m``, ``--lf``, named files): its
    #: pass rate and duration do not compare with whole runs.
    partial: bool


class TestRow(msgspec.Struct):
    """One test result: a test, a subtest, or one attempt of a rerun test."""

    __test__ = False

    nodeid: str
    file: str | None
    line: int | None
    cls: str | None
    func: str | None
    param_id: str | None
    markers: list[str]
    subtest: str | None
    outcome: str
    phase: str | None
    started_at: str | None
    stopped_at: str | None
    duration: float
    setup_duration: float
    call_duration: float
    teardown_duration: float
    reason: str | None
    exc_type: str | None
    exc_message: str | None
    traceback: str | None
    stdout: str | None
    stderr: str | None
    log: str | None
    worker: str
    attempt: int
    final: bool
    cpu_time: float | None
    rss_delta: int | None


#: What each `RunInfo` field is read from where it is not the ``runs`` column of its name.
_RUN_COLUMNS = select_list(
    RunInfo,
    "u",
    {
        "id": "s.id::VARCHAR",
        "commit": 'u."commit"',
        "session_status": "s.status",
        "outcome": "u.status",
        "labels": "s.labels",
        "in_progress": "s.in_progress",
    },
)
#: Stored values as `RunInfo` holds them.
_RUN_CONVERT: dict[str, Any] = {
    "reason": lambda v: v or None,
    "counts": lambda v: decode_json(v) or {},
    "started_at": lambda v: iso(v) or "",
    "finished_at": iso,
    "plugins": list,
    "args": list,
    "labels": lambda v: dict(v or {}),
    "in_progress": lambda v: decode_json(v) or {},
    "partial": bool,
}


def list_runs(
    cur: duckdb.DuckDBPyConnection,
    *,
    project: str | None = None,
    branch: str | None = None,
    outcome: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[RunInfo]:
    """Runs, newest first, optionally of one project, branch or outcome (``running``:
    not finished yet, whether alive, hung or crashed)."""
    where, params = _runs_where(project, branch, outcome)
    result = cur.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs u JOIN session_status s USING (sid)"
        f" WHERE {where} ORDER BY u.received_at DESC, u.sid DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return _with_counts_so_far(cur, structs(result, RunInfo, _RUN_CONVERT))


def count_runs(
    cur: duckdb.DuckDBPyConnection,
    *,
    project: str | None = None,
    branch: str | None = None,
    outcome: str | None = None,
) -> int:
    """How many runs `list_runs` pages through with these filters."""
    where, params = _runs_where(project, branch, outcome)
    rows = cur.execute(f"SELECT count(*) FROM runs u WHERE {where}", params).fetchall()
    return int(rows[0][0])


def _runs_where(
    project: str | None, branch: str | None, outcome: str | None
) -> tuple[str, list[Any]]:
    where, params = ["TRUE"], []
    for column, value in (("u.project", project), ("u.branch", branch)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if outcome == UNFINISHED:
        where.append("u.status IS NULL")
    elif outcome:
        where.append("u.status = ?")
        params.append(outcome)
    return " AND ".join(where), params


def _with_counts_so_far(cur: duckdb.DuckDBPyConnection, runs: list[RunInfo]) -> list[RunInfo]:
    """Runs that have not ended carry no counts from pytest yet: count what is stored.

    Named like pytest's own (``passed``, ``failed``, ``subtests passed``, ...), final
    attempts only.
    """
    unfinished = [run.id for run in runs if run.outcome is None]
    if not unfinished:
        return runs
    rows = cur.execute(
        "SELECT s.id::VARCHAR,"
        " CASE WHEN r.subtest IS NULL THEN '' ELSE 'subtests ' END || r.outcome::VARCHAR,"
        " count(*) FROM results r JOIN sessions s USING (sid)"
        " WHERE s.id IN (SELECT unnest(?::UUID[])) AND r.final GROUP BY ALL",
        [unfinished],
    ).fetchall()
    counts: dict[str, dict[str, int]] = {}
    for run_id, name, number in rows:
        counts.setdefault(run_id, {})[name] = number
    return [
        msgspec.structs.replace(run, counts=counts.get(run.id, {}))
        if run.outcome is None and not run.counts
        else run
        for run in runs
    ]


def get_run(cur: duckdb.DuckDBPyConnection, run_id: str) -> RunInfo | None:
    """One run (its session id), or None."""
    found = get_runs(cur, [run_id])
    return found[0] if found else None


def get_runs(cur: duckdb.DuckDBPyConnection, run_ids: list[str]) -> list[RunInfo]:
    """The runs of these session ids that exist, in the order given."""
    keys = [key for key in map(parse_session_id, run_ids) if key is not None]
    if not keys:
        return []
    result = cur.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs u JOIN session_status s USING (sid)"
        " WHERE s.id IN (SELECT unnest(?::UUID[]))",
        [keys],
    )
    found = {
        run.id: run for run in _with_counts_so_far(cur, structs(result, RunInfo, _RUN_CONVERT))
    }
    return [found[key] for key in keys if key in found]


#: Where each `TestRow` field is read from: ``results`` (r) unless named here, ``tests``
#: (t) or ``result_details`` (d).
_TEST_COLUMNS = select_list(
    TestRow,
    "r",
    {
        **{name: f"t.{name}" for name in ("nodeid", "file", "line", "cls", "func", "param_id")},
        "markers": "t.markers",
        "outcome": "r.outcome::VARCHAR",
        **{
            name: f"d.{name}"
            for name in (
                "reason",
                "exc_type",
                "exc_message",
                "traceback",
                "stdout",
                "stderr",
                "log",
            )
        },
    },
)
_TEST_CONVERT: dict[str, Any] = {
    "markers": lambda v: list(v or []),
    "started_at": iso,
    "stopped_at": iso,
}


_ORDERS = {
    "failures": "(r.outcome IN ('failed', 'error')) DESC, t.nodeid, r.attempt,"
    " r.subtest NULLS LAST, r.seq",
    "slowest": "r.duration DESC, t.nodeid, r.seq",
    "nodeid": "t.nodeid, r.attempt, r.subtest NULLS LAST, r.seq",
}


def _tests_where(key: str, outcome: str | None, search: str | None) -> tuple[str, list[Any]]:
    where, params = ["s.id = CAST(? AS UUID)"], [key]
    if outcome:
        where.append("r.outcome::VARCHAR = ?")
        params.append(outcome)
    if search:
        where.append("(t.nodeid ILIKE ? ESCAPE '\\' OR r.subtest ILIKE ? ESCAPE '\\')")
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        params += [pattern, pattern]
    return " AND ".join(where), params


def count_run_tests(
    cur: duckdb.DuckDBPyConnection,
    run_id: str,
    *,
    outcome: str | None = None,
    search: str | None = None,
) -> int:
    """How many results `run_tests` pages through with these filters."""
    key = parse_session_id(run_id)
    if key is None:
        return 0
    where, params = _tests_where(key, outcome, search)
    join_tests = " JOIN tests t USING (test_id)" if search else ""
    rows = cur.execute(
        f"SELECT count(*) FROM results r JOIN sessions s USING (sid){join_tests} WHERE {where}",
        params,
    ).fetchall()
    return int(rows[0][0])


def run_tests(
    cur: duckdb.DuckDBPyConnection,
    run_id: str,
    *,
    outcome: str | None = None,
    search: str | None = None,
    order: str = "failures",
    limit: int = 500,
    offset: int = 0,
) -> list[TestRow]:
    """A run's results: failures and errors first, then by node id (``order="failures"``);
    or the slowest first (``"slowest"``), or by node id (``"nodeid"``)."""
    key = parse_session_id(run_id)
    if key is None:
        return []
    where, params = _tests_where(key, outcome, search)
    result = cur.execute(
        f"SELECT {_TEST_COLUMNS} FROM results r JOIN sessions s USING (sid)"
        " JOIN tests t USING (test_id) LEFT JOIN result_details d USING (sid, seq)"
        f" WHERE {where}"
        f" ORDER BY {_ORDERS.get(order, _ORDERS['failures'])} LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return structs(result, TestRow, _TEST_CONVERT)


class HangEvent(msgspec.Struct):
    """A hang report of a run (``application_appears_hung``) or its recovery."""

    timestamp: str
    name: str
    data: dict[str, Any]


def run_hangs(cur: duckdb.DuckDBPyConnection, run_id: str) -> list[HangEvent]:
    """The hang and recovery events of a run, oldest first, with their thread stacks."""
    key = parse_session_id(run_id)
    if key is None:
        return []
    found = cur.execute(
        f"SELECT {select_list(HangEvent, 'e', {'timestamp': 'e.ts'})}"
        " FROM event_log e JOIN sessions s USING (sid) WHERE s.id = CAST(? AS UUID)"
        " AND e.name IN ('application_appears_hung', 'application_recovered')"
        " ORDER BY e.ts, e.seq",
        [key],
    )
    convert = {"timestamp": lambda v: iso(v) or "", "data": lambda v: decode_json(v) or {}}
    return structs(found, HangEvent, convert)
