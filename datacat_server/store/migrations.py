"""Ordered schema migrations, so that a database made by an older release opens in a newer one.

Each migration runs once, in its own transaction, and is recorded in
``schema_migrations``. Never edit a released migration: add the next one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import duckdb

from datacat_server.errors import StoreError
from datacat_server.store import tables
from datacat_server.store.transactions import transaction

__all__ = ["MIGRATIONS", "Migration", "apply_migrations", "current_version"]


@dataclasses.dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Sequence[str] = ()
    #: For changes SQL alone cannot express; runs after the statements.
    run: Callable[[duckdb.DuckDBPyConnection], None] | None = None


_V1 = (
    "CREATE TYPE outcome AS ENUM ('passed', 'failed', 'skipped', 'xfailed', 'xpassed', 'error')",
    """CREATE TABLE sessions (
        sid INTEGER NOT NULL,
        id UUID NOT NULL,
        name VARCHAR NOT NULL,
        product VARCHAR NOT NULL,
        version VARCHAR NOT NULL,
        labels MAP(VARCHAR, VARCHAR) NOT NULL,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL,
        ended_at TIMESTAMP,
        state JSON NOT NULL,
        hung BOOLEAN NOT NULL,
        heartbeat_interval DOUBLE,
        last_seen TIMESTAMP NOT NULL,
        in_progress JSON
    )""",
    """CREATE TABLE state_updates (
        sid INTEGER NOT NULL, seq BIGINT, ts TIMESTAMP NOT NULL, patch JSON NOT NULL
    )""",
    """CREATE TABLE event_log (
        sid INTEGER NOT NULL, seq BIGINT, ts TIMESTAMP NOT NULL, name VARCHAR NOT NULL,
        data JSON
    )""",
    """CREATE TABLE metric_log (
        sid INTEGER NOT NULL, seq BIGINT, ts TIMESTAMP NOT NULL, name VARCHAR NOT NULL,
        value DOUBLE NOT NULL, tags VARCHAR[] NOT NULL
    )""",
    """CREATE TABLE tests (
        test_id INTEGER NOT NULL, project VARCHAR NOT NULL, nodeid VARCHAR NOT NULL,
        file VARCHAR, line INTEGER, cls VARCHAR, func VARCHAR, param_id VARCHAR,
        markers VARCHAR[], first_seen TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE results (
        sid INTEGER NOT NULL, seq BIGINT NOT NULL, test_id INTEGER NOT NULL,
        subtest VARCHAR, outcome outcome NOT NULL, phase VARCHAR,
        started_at TIMESTAMP, stopped_at TIMESTAMP, duration DOUBLE NOT NULL,
        setup_duration DOUBLE NOT NULL, call_duration DOUBLE NOT NULL,
        teardown_duration DOUBLE NOT NULL, worker VARCHAR NOT NULL,
        attempt SMALLINT NOT NULL, final BOOLEAN NOT NULL, cpu_time DOUBLE, rss_delta BIGINT
    )""",
    """CREATE TABLE result_details (
        sid INTEGER NOT NULL, seq BIGINT NOT NULL, reason VARCHAR, exc_type VARCHAR,
        exc_message VARCHAR, traceback VARCHAR, stdout VARCHAR, stderr VARCHAR, log VARCHAR
    )""",
    """CREATE TABLE runs (
        sid INTEGER NOT NULL, project VARCHAR NOT NULL, branch VARCHAR NOT NULL,
        "commit" VARCHAR NOT NULL, dirty BOOLEAN, ci_provider VARCHAR NOT NULL,
        ci_url VARCHAR NOT NULL, python_version VARCHAR NOT NULL,
        python_implementation VARCHAR NOT NULL, platform VARCHAR NOT NULL,
        hostname VARCHAR NOT NULL, pytest_version VARCHAR NOT NULL, plugins VARCHAR[] NOT NULL,
        args VARCHAR[] NOT NULL, workers INTEGER NOT NULL, started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP, exit_status INTEGER, status VARCHAR, reason VARCHAR,
        counts JSON, duration DOUBLE
    )""",
)

_V2 = (
    # The server's own clock decides retention and what is "latest" (a client's clock
    # can be years off); rows stored before this migration get their client time,
    # never later than now.
    *tables.SESSIONS.add_columns("received_at"),
    "UPDATE sessions SET received_at = least(created_at, now()::TIMESTAMP)",
    *tables.RUNS.add_columns("received_at", "partial"),
    "UPDATE runs SET received_at = least(started_at, now()::TIMESTAMP)",
    # The order results were stored in, for counting flips and folding rollups.
    *tables.RESULTS.add_columns("stored_at"),
    """UPDATE results
       SET stored_at = least(coalesce(results.stopped_at, results.started_at, s.created_at),
                             now()::TIMESTAMP)
       FROM sessions s WHERE results.sid = s.sid""",
    *tables.METRIC_LOG.add_columns("unit", "kind"),
)


def _build_rollups(con: duckdb.DuckDBPyConnection) -> None:
    from datacat_server.store.rollups import fold_in_transaction

    fold_in_transaction(con)


_V3 = (
    *(table.ddl() for table in tables.DERIVED),
    "INSERT INTO rollup_state VALUES (TIMESTAMP '1970-01-01')",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _V1),
    Migration(2, "server receive times, result store order, metric units, partial runs", _V2),
    Migration(3, "per-test rollups, built from the results stored so far", _V3, _build_rollups),
    Migration(
        4,
        "a run's base: a pull request's target branch",
        tables.RUNS.add_columns("base_branch", "base_commit"),
    ),
    Migration(5, "quarantine", tuple(table.ddl() for table in tables.QUARANTINE_TABLES)),
)


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """The newest migration applied to this database (0 for a new one)."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER NOT NULL, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT (now()::TIMESTAMP))"
    )
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def apply_migrations(
    con: duckdb.DuckDBPyConnection, migrations: Sequence[Migration] = MIGRATIONS
) -> list[int]:
    """Bring the database up to the newest migration; return the versions applied."""
    have = current_version(con)
    newest = migrations[-1].version if migrations else 0
    if have > newest:
        raise StoreError(
            f"this database is at schema version {have}, newer than this release"
            f" of DataCat understands ({newest}); upgrade DataCat to open it"
        )
    applied = []
    for migration in migrations:
        if migration.version <= have:
            continue
        with transaction(con):
            for statement in migration.statements:
                con.execute(statement)
            if migration.run is not None:
                migration.run(con)
            con.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                [migration.version, migration.name],
            )
        applied.append(migration.version)
    return applied
