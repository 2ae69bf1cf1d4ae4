"""Where things live in the dashboard: one function per kind of page link."""

from __future__ import annotations

from urllib.parse import quote

from dashboard._params import href

__all__ = ["history_href", "run_href", "session_href", "sql_download_href"]


def run_href(run_id: str) -> str:
    """A run's page."""
    return f"/runs/{quote(run_id, safe='')}"


def session_href(session_id: str) -> str:
    """A session's page."""
    return f"/sessions/{quote(session_id, safe='')}"


def history_href(
    nodeid: str, project: str | None, branch: str | None = None, runs: int | None = None
) -> str:
    """A test's history page."""
    return href("/tests", {"nodeid": nodeid, "project": project, "branch": branch, "runs": runs})


def sql_download_href(sql: str, fmt: str) -> str:
    """The JSON API's read-only SQL endpoint, answering as a CSV or Parquet download."""
    return href("/api/sql", {"q": sql, "format": fmt})
