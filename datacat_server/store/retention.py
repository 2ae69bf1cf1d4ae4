"""Retention: deleting sessions (and everything they logged) older than a number of days.

Deleting is the one change that is not an append, so it runs in the writer thread
(`Writer.maintain`), in one transaction, followed by a checkpoint so that DuckDB
reuses the freed blocks: under a steady load with retention on, the file stops
growing. Test identities (``tests``) stay: they are small and a test that comes back
keeps its id.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping

import duckdb
import msgspec

from datacat_server.store import rollups
from datacat_server.store.tables import TABLES

__all__ = ["RetentionPolicy", "RetentionResult", "delete_old", "expired_sql"]


class RetentionResult(msgspec.Struct):
    sessions: int
    #: Rows deleted, by table.
    rows: dict[str, int]


@dataclasses.dataclass(frozen=True)
class RetentionPolicy:
    """Keep data for ``days`` (None: forever), or per project as ``projects`` says."""

    days: float | None = None
    projects: Mapping[str, float] = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> RetentionPolicy:
        """``"30"``, ``"30,demo=7,shop=90"`` or ``"shop=90"`` (see DATACAT_RETENTION_DAYS)."""
        days: float | None = None
        projects: dict[str, float] = {}
        for part in (item.strip() for item in (text or "").split(",")):
            if not part:
                continue
            name, sep, value = part.rpartition("=")
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"retention: {value!r} is not a number of days") from None
            if not 0 < number <= 36_500:
                raise ValueError(f"retention: {part!r} must be between 0 and 36500 days")
            if sep:
                projects[name.strip()] = number
            else:
                days = number
        return cls(days, projects)

    @property
    def active(self) -> bool:
        return self.days is not None or bool(self.projects)


def _cutoff(days: float, now: dt.datetime) -> dt.datetime:
    return now - dt.timedelta(days=days)


def expired_sql(policy: RetentionPolicy, now: dt.datetime) -> tuple[str, list[object]] | None:
    """A query of the sids of every session created before its cutoff (None: the
    policy keeps everything).

    A session belongs to the project of its run (pytest) or, for other programs, to
    its product; a project named in the policy uses its own days, others the default.
    """
    named = list(policy.projects)
    conditions: list[str] = []
    params: list[object] = []
    for project, days in policy.projects.items():
        conditions.append("(s.product = ? AND s.received_at < ?)")
        params += [project, _cutoff(days, now)]
    if policy.days is not None:
        conditions.append("(s.product NOT IN (SELECT unnest(?::VARCHAR[])) AND s.received_at < ?)")
        params += [named, _cutoff(policy.days, now)]
    if not conditions:
        return None
    return f"SELECT s.sid FROM sessions s WHERE {' OR '.join(conditions)}", params


def delete_old(
    cur: duckdb.DuckDBPyConnection, policy: RetentionPolicy, now: dt.datetime | None = None
) -> RetentionResult:
    """Delete every session created before its cutoff (`expired_sql`). Runs in the
    caller's transaction."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    query = expired_sql(policy, now)
    if query is None:
        return RetentionResult(0, {})
    cur.execute(f"CREATE OR REPLACE TEMP TABLE _expired AS {query[0]}", query[1])
    # fetchall: the writer's cursor must not keep an unfinished result (DuckDB 2.0).
    expired = cur.execute("SELECT count(*) FROM _expired").fetchall()[0]
    rows: dict[str, int] = {}
    for table in TABLES:
        if table.name == "tests":
            continue
        done = cur.execute(f"DELETE FROM {table.name} WHERE sid IN (SELECT sid FROM _expired)")
        deleted = done.fetchall()
        rows[table.name] = int(deleted[0][0]) if deleted else 0
    cur.execute("DROP TABLE _expired")
    if expired[0]:
        # Rollups cannot take results back out: start them again (the writer's folder
        # rebuilds them; answers stay exact meanwhile, from the results themselves).
        rollups.reset(cur)
    return RetentionResult(int(expired[0]), rows)
