"""What the SQL console lists: the tables and views people can query, with columns."""

from __future__ import annotations

import duckdb
import msgspec

__all__ = ["EXAMPLE_QUERIES", "Relation", "describe_store"]


class Relation(msgspec.Struct):
    name: str
    #: ``table`` or ``view``.
    kind: str
    columns: list[tuple[str, str]]
    description: str


_DESCRIPTIONS = {
    "test_results": "One row per test result, with its test, run, failure text: start here.",
    "runs": "One row per pytest run: project, branch, commit, CI, counts, how it ended.",
    "sessions": "One row per session (a test run or any program), with its current state.",
    "session_status": "sessions with their status (running, ended, hung, crashed).",
    "events": "Every event, including test results and exceptions, by session.",
    "metrics": "Every metric value, including test durations, by session.",
    "state_updates": "Every state patch, in order: the state history.",
    "tests": "One row per test identity (project, nodeid) and where it is.",
    "results": "The narrow, typed results table (integer keys).",
    "result_details": "Skip reasons, exceptions, tracebacks and output of results.",
    "event_log": "Events logged by clients (the events view adds test results).",
    "metric_log": "Metrics logged by clients (the metrics view adds test metrics).",
    "schema_migrations": "The schema versions this database went through.",
}

_ORDER = list(_DESCRIPTIONS)

#: Questions nobody planned for, as SQL to start from.
EXAMPLE_QUERIES: list[tuple[str, str]] = [
    (
        "Slowest tests of the latest run",
        "SELECT nodeid, duration FROM test_results\n"
        "WHERE sid = (SELECT max(sid) FROM runs)\nORDER BY duration DESC LIMIT 20",
    ),
    (
        "Failures per branch, last 7 days",
        "SELECT branch, count(*) AS failures FROM test_results\n"
        "WHERE outcome IN ('failed', 'error') AND started_at > now()::TIMESTAMP - INTERVAL 7 DAY\n"
        "GROUP BY branch ORDER BY failures DESC",
    ),
    (
        "Pass rate per day",
        "SELECT date_trunc('day', started_at) AS day,\n"
        "       avg((outcome = 'passed')::INT) AS pass_rate, count(*) AS results\n"
        "FROM test_results GROUP BY day ORDER BY day",
    ),
    (
        "Sessions that ever had a dark theme",
        "SELECT DISTINCT s.id, s.name FROM sessions s JOIN state_updates u USING (sid)\n"
        "WHERE json_extract_string(u.patch, '$.settings.theme') = 'dark'",
    ),
    ("Describe the test results view", "DESCRIBE test_results"),
]


def describe_store(cur: duckdb.DuckDBPyConnection) -> list[Relation]:
    """The store's tables and views (the main schema), most useful first."""
    rows = cur.execute(
        "SELECT c.table_name, t.table_type, list(c.column_name ORDER BY c.ordinal_position),"
        " list(c.data_type ORDER BY c.ordinal_position)"
        " FROM information_schema.columns c JOIN information_schema.tables t"
        " USING (table_catalog, table_schema, table_name)"
        " WHERE c.table_schema = 'main' AND c.table_catalog = current_database()"
        " GROUP BY ALL"
    ).fetchall()
    relations = [
        Relation(
            name=name,
            kind="view" if kind == "VIEW" else "table",
            columns=list(zip(columns, types, strict=True)),
            description=_DESCRIPTIONS.get(name, ""),
        )
        for name, kind, columns, types in rows
    ]
    rank = {name: i for i, name in enumerate(_ORDER)}
    relations.sort(key=lambda r: (rank.get(r.name, len(rank)), r.name))
    return relations
