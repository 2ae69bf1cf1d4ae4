"""The DuckDB schema: append-only base tables, and the views people query.

Base tables key everything by integers that the writer assigns: ``sid`` (a session's
serial number) and ``test_id`` (a test's identity within its project). Columnar scans
over 4-byte keys are what make the flaky and slow queries fast; the UUIDs and nodeids
live once, in ``sessions`` and ``tests``.

Test results are stored once, typed. The views ``events`` and ``metrics`` present them
as the design's ``test_result`` / ``exception`` events and ``test_duration`` /
``test_cpu_time`` / ``test_rss_delta`` metrics, so the generic views see them without
the plugin sending (and the store keeping) three copies of every result.

The views are derived, so they are recreated at every start (`create_views`); the base
tables change only through numbered migrations (`migrations.py`).
"""

from __future__ import annotations

__all__ = ["VIEWS_SQL", "view_statements"]

_EVENTS_VIEW = """
CREATE OR REPLACE VIEW events AS
SELECT s.id AS session_id, e.sid, e.seq, e.ts AS timestamp, e.name, e.data
FROM event_log e JOIN {sessions} s USING (sid)
UNION ALL
SELECT s.id, r.sid, r.seq, coalesce(r.stopped_at, r.started_at, s.created_at), 'test_result',
       json_object('nodeid', t.nodeid, 'outcome', r.outcome::VARCHAR, 'phase', r.phase,
                   'duration', r.duration, 'worker', r.worker, 'attempt', r.attempt,
                   'final', r.final, 'subtest', r.subtest)
FROM results r JOIN tests t USING (test_id) JOIN {sessions} s USING (sid)
UNION ALL
SELECT s.id, r.sid, r.seq, coalesce(r.stopped_at, r.started_at, s.created_at), 'exception',
       json_object('type', d.exc_type, 'message', d.exc_message,
                   'traceback', string_split(d.traceback, chr(10)),
                   'nodeid', t.nodeid, 'subtest', r.subtest)
FROM result_details d JOIN results r USING (sid, seq) JOIN tests t USING (test_id)
     JOIN {sessions} s ON s.sid = r.sid
WHERE d.exc_type IS NOT NULL AND r.outcome IN ('failed', 'error')
"""

_METRICS_VIEW = """
CREATE OR REPLACE VIEW metrics AS
SELECT s.id AS session_id, m.sid, m.seq, m.ts AS timestamp, m.name, m.value, m.tags, m.unit,
       m.kind
FROM metric_log m JOIN {sessions} s USING (sid)
UNION ALL
SELECT s.id, r.sid, r.seq, coalesce(r.stopped_at, r.started_at, s.created_at), u.name, u.value,
       ['nodeid=' || t.nodeid, 'outcome=' || r.outcome::VARCHAR], u.unit, 'gauge'
FROM results r JOIN tests t USING (test_id) JOIN {sessions} s USING (sid),
     LATERAL (VALUES ('test_duration', r.duration, 's'),
                     ('test_cpu_time', r.cpu_time, 's'),
                     ('test_rss_delta', r.rss_delta::DOUBLE, 'bytes')) u(name, value, unit)
WHERE u.value IS NOT NULL
"""

_TEST_RESULTS_VIEW = """
CREATE OR REPLACE VIEW test_results AS
SELECT s.id AS session_id, r.sid, r.seq, t.project, t.nodeid, t.file, t.line, t.cls, t.func,
       t.param_id, t.markers, r.subtest, r.outcome::VARCHAR AS outcome, r.phase,
       r.started_at, r.stopped_at, r.duration, r.setup_duration, r.call_duration,
       r.teardown_duration, d.reason, d.exc_type, d.exc_message, d.traceback, d.stdout,
       d.stderr, d.log, r.worker, r.attempt, r.final, r.cpu_time, r.rss_delta,
       u.branch, u."commit", r.stored_at
FROM results r
JOIN tests t USING (test_id)
JOIN {sessions} s USING (sid)
LEFT JOIN result_details d USING (sid, seq)
LEFT JOIN {runs} u USING (sid)
"""


def _session_status_view(grace: float) -> str:
    # Status is computed when read, so it is always current and no background job has
    # to flip rows: ended beats crashed beats hung beats running.
    return f"""
CREATE OR REPLACE VIEW session_status AS
SELECT s.*,
       CASE
         WHEN s.ended_at IS NOT NULL THEN 'ended'
         WHEN s.heartbeat_interval IS NOT NULL AND s.heartbeat_interval > 0
              AND epoch_us(s.last_seen)
                  < epoch_us(now()) - s.heartbeat_interval * {float(grace)!r} * 1e6
           THEN 'crashed'
         WHEN s.hung THEN 'hung'
         ELSE 'running'
       END AS status
FROM sessions s
"""


VIEWS_SQL: tuple[str, ...] = (_EVENTS_VIEW, _METRICS_VIEW, _TEST_RESULTS_VIEW)


def view_statements(
    heartbeat_grace: float, *, sessions: str = "sessions", runs: str = "runs"
) -> list[str]:
    """The statements that (re)create every view, for the given grace factor.

    ``sessions`` and ``runs`` name what the record views join for a session's id and a
    run's branch and commit: a lake passes its append-only tables (``session_rows``,
    ``run_starts``), whose columns read there never change, rather than its views.
    """
    joined = [sql.format(sessions=sessions, runs=runs) for sql in VIEWS_SQL]
    return [*joined, _session_status_view(heartbeat_grace)]
