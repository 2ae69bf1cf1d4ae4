"""The runs a query looks at: the last N runs of a project (and branch).

Results are appended in run order, so one run's rows sit together and a window of
recent runs is a narrow range of ``sid``: passing that range lets DuckDB skip every
row group outside it (its min/max zone maps), and the exact set of runs is then a
semi-join. This keeps the flaky, slow and failure queries proportional to the window,
not to the whole history.
"""

from __future__ import annotations

import dataclasses

import duckdb

from datacat_server.queries._common import rows as rows_by_name

__all__ = [
    "ROLLUP_MIN_RUNS",
    "Window",
    "asked_window",
    "default_project",
    "projects",
    "recent_runs",
]


#: Whole histories longer than this many runs are read from the rollups.
ROLLUP_MIN_RUNS = 200


@dataclasses.dataclass(frozen=True)
class Window:
    """A set of runs (by session serial), and the range that holds them.

    ``whole`` says the window holds every run of its project (and branch): insights
    then read the per-test rollups instead of the results (`queries/streams.py`).
    """

    sids: list[int]
    lo: int
    hi: int
    project: str | None = None
    branch: str | None = None
    whole: bool = False

    @property
    def empty(self) -> bool:
        return not self.sids

    @property
    def reads_rollups(self) -> bool:
        """Whether insights over this window read the rollups: it holds every run of
        its project, and more of them than a default window (below that, reading the
        results costs no more and gives exact quantiles)."""
        return self.whole and len(self.sids) > ROLLUP_MIN_RUNS

    def where(self, alias: str = "r") -> tuple[str, list[object]]:
        """SQL selecting the rows of ``alias`` (a table with ``sid``) in the window.

        When the window holds every run in its range (one project, no branch filter),
        the range alone says it, and the semi-join is skipped.
        """
        if len(self.sids) == self.hi - self.lo + 1:
            return f"{alias}.sid BETWEEN ? AND ?", [self.lo, self.hi]
        return (
            f"{alias}.sid BETWEEN ? AND ? AND {alias}.sid IN (SELECT unnest(?::INTEGER[]))",
            [self.lo, self.hi, self.sids],
        )

    def named(self, alias: str = "r") -> tuple[str, dict[str, object]]:
        """`where` for statements that take named parameters (``$window_*``). The list
        is a parameter, not written in: measured here over a range of 10M results, a
        literal IN list of the serials was 5x slower."""
        params: dict[str, object] = {"window_lo": self.lo, "window_hi": self.hi}
        sql = f"{alias}.sid BETWEEN $window_lo AND $window_hi"
        if len(self.sids) != self.hi - self.lo + 1:
            sql += f" AND {alias}.sid IN (SELECT unnest($window_sids::INTEGER[]))"
            params["window_sids"] = self.sids
        return sql, params


def recent_runs(
    cur: duckdb.DuckDBPyConnection,
    project: str | None,
    branch: str | None = None,
    runs: int = 100,
) -> Window:
    """The last ``runs`` runs of ``project`` (on ``branch`` if given), newest first."""
    where, params = ["TRUE"], []
    if project is not None:
        where.append("project = ?")
        params.append(project)
    if branch:
        where.append("branch = ?")
        params.append(branch)
    rows = cur.execute(
        f"SELECT sid FROM runs WHERE {' AND '.join(where)}"
        " ORDER BY received_at DESC, sid DESC LIMIT ?",
        [*params, runs + 1],
    ).fetchall()
    sids = [int(row[0]) for row in rows[:runs]]
    return Window(
        sids,
        min(sids, default=0),
        max(sids, default=-1),
        project=project,
        branch=branch or None,
        whole=project is not None and len(rows) <= runs,
    )


def projects(cur: duckdb.DuckDBPyConnection) -> list[tuple[str, list[str]]]:
    """Every project with its branches, most recently run first."""
    found = rows_by_name(
        cur.execute(
            "SELECT project, list(DISTINCT branch ORDER BY branch) AS branches,"
            " max(received_at) AS latest"
            " FROM runs GROUP BY project ORDER BY latest DESC, max(sid) DESC"
        )
    )
    return [(row["project"], [b for b in row["branches"] if b]) for row in found]


def default_project(cur: duckdb.DuckDBPyConnection) -> str | None:
    """The project of the most recent run, or None if nothing ran yet."""
    row = cur.execute(
        "SELECT project FROM runs ORDER BY received_at DESC, sid DESC LIMIT 1"
    ).fetchone()
    return None if row is None else str(row[0])


def asked_window(
    cur: duckdb.DuckDBPyConnection, project: str | None, branch: str | None, runs: int
) -> Window:
    """The window an API call or a page asks for: the last ``runs`` runs of
    ``project`` (on ``branch``), or of the project that ran last when it names none
    (the window's ``project`` says which; None while nothing ran)."""
    return recent_runs(cur, project or default_project(cur), branch, runs)
