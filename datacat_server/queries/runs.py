"""Test runs: the list, and one run with its tests."""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec

from datacat_server.queries._common import decode_json, iso, parse_session_id

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


_RUN_COLUMNS = """
    s.id::VARCHAR, u.project, u.branch, u."commit", u.dirty, s.status, u.status, u.reason,
    u.exit_status, u.counts, u.duration, u.started_at, u.finished_at, u.ci_provider, u.ci_url,
    u.python_version, u.python_implementation, u.platform, u.hostname, u.pytest_version,
    u.plugins, u.args, u.workers, s.labels, s.in_progress, u.partial
"""


def _run(row: tuple[Any, ...]) -> RunInfo:
    return RunInfo(
        id=row[0],
        project=row[1],
        branch=row[2],
        commit=row[3],
        dirty=row[4],
        session_status=row[5],
        outcome=row[6],
        reason=row[7] or None,
        exit_status=row[8],
        counts=decode_json(row[9]) or {},
        duration=row[10],
        started_at=iso(row[11]) or "",
        finished_at=iso(row[12]),
        ci_provider=row[13],
        ci_url=row[14],
        python_version=row[15],
        python_implementation=row[16],
        platform=row[17],
        hostname=row[18],
        pytest_version=row[19],
        plugins=list(row[20]),
        args=list(row[21]),
        workers=row[22],
        labels=dict(row[23] or {}),
        in_progress=decode_json(row[24]) or {},
        partial=bool(row[25]),
    )


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
    rows = cur.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs u JOIN session_status s USING (sid)"
        f" WHERE {where} ORDER BY u.received_at DESC, u.sid DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return _with_counts_so_far(cur, [_run(row) for row in rows])


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
    rows = cur.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs u JOIN session_status s USING (sid)"
        " WHERE s.id IN (SELECT unnest(?::UUID[]))",
        [keys],
    ).fetchall()
    found = {run.id: run for run in _with_counts_so_far(cur, [_run(row) for row in rows])}
    return [found[key] for key in keys if key in found]


_TEST_COLUMNS = """
    t.nodeid, t.file, t.line, t.cls, t.func, t.param_id, t.markers, r.subtest,
    r.outcome::VARCHAR, r.phase, r.started_at, r.stopped_at, r.duration, r.setup_duration,
    r.call_duration, r.teardown_duration, d.reason, d.exc_type, d.exc_message, d.traceback,
    d.stdout, d.stderr, d.log, r.worker, r.attempt, r.final, r.cpu_time, r.rss_delta
"""


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
    rows = cur.execute(
        f"SELECT {_TEST_COLUMNS} FROM results r JOIN sessions s USING (sid)"
        " JOIN tests t USING (test_id) LEFT JOIN result_details d USING (sid, seq)"
        f" WHERE {where}"
        f" ORDER BY {_ORDERS.get(order, _ORDERS['failures'])} LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [
        TestRow(
            nodeid=row[0],
            file=row[1],
            line=row[2],
            cls=row[3],
            func=row[4],
            param_id=row[5],
            markers=list(row[6] or []),
            subtest=row[7],
            outcome=row[8],
            phase=row[9],
            started_at=iso(row[10]),
            stopped_at=iso(row[11]),
            duration=row[12],
            setup_duration=row[13],
            call_duration=row[14],
            teardown_duration=row[15],
            reason=row[16],
            exc_type=row[17],
            exc_message=row[18],
            traceback=row[19],
            stdout=row[20],
            stderr=row[21],
            log=row[22],
            worker=row[23],
            attempt=row[24],
            final=row[25],
            cpu_time=row[26],
            rss_delta=row[27],
        )
        for row in rows
    ]


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
    rows = cur.execute(
        "SELECT e.ts, e.name, e.data FROM event_log e JOIN sessions s USING (sid)"
        " WHERE s.id = CAST(? AS UUID)"
        " AND e.name IN ('application_appears_hung', 'application_recovered')"
        " ORDER BY e.ts, e.seq",
        [key],
    ).fetchall()
    return [HangEvent(iso(ts) or "", name, decode_json(data) or {}) for ts, name, data in rows]
