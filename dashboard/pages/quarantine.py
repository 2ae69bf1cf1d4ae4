"""``/quarantine``: a project's quarantined tests, every change to them, and its policy.

Read-only like every page: the dashboard's sign-in never authorises a change (a forged
cross-site request must not change anything), so the page shows the ``datacat
quarantine`` commands that do, to run with a token of the quarantine scope.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Controller, Request, get
from litestar.response import Template

from dashboard._params import QueryReader
from dashboard._render import render
from datacat_server.queries.quarantine import (
    Change,
    Policy,
    QuarantineEntry,
    entries,
    history,
    policy,
    quarantine_projects,
)
from datacat_server.queries.window import default_project, projects
from datacat_server.web import identity, read_cursor

__all__ = ["QuarantinePage", "QuarantinePages"]

#: Changes the log shows (the newest).
LOG_ROWS = 100


@dataclasses.dataclass(frozen=True)
class QuarantinePage:
    """Context of ``quarantine.html``."""

    #: None only while no project ran and none has a quarantine.
    project: str | None
    #: Projects to choose from: those that ran, and those with a quarantine.
    projects: list[str]
    #: How many tests each project holds in quarantine (projects with a quarantine).
    held: dict[str, int]
    entries: list[QuarantineEntry]
    #: Newest first, at most `LOG_ROWS`.
    log: list[Change]
    policy: Policy | None
    #: This server's address, for the commands the page shows.
    server: str
    #: The server has no tokens: the commands need none.
    open: bool = False

    @property
    def log_cut(self) -> bool:
        """The log has more changes than the page shows."""
        return len(self.log) >= LOG_ROWS

    @property
    def elsewhere(self) -> dict[str, int]:
        """Other projects holding tests in quarantine."""
        return {p: n for p, n in self.held.items() if n and p != self.project}


class QuarantinePages(Controller):
    path = "/quarantine"
    include_in_schema = False

    @get("/", sync_to_thread=True, name="dashboard:quarantine")
    def quarantine(self, request: Request[Any, Any, Any]) -> Template:
        cur = read_cursor(request)
        held = quarantine_projects(cur)
        ran = [name for name, _ in projects(cur)]
        choices = ran + sorted(p for p in held if p not in ran)
        project = (
            QueryReader(request.query_params).text("project")
            or default_project(cur)
            or next(iter(held), None)
        )
        page = QuarantinePage(
            project=project,
            projects=choices if project is None or project in choices else [project, *choices],
            held=held,
            entries=entries(cur, project) if project else [],
            log=history(cur, project, limit=LOG_ROWS) if project else [],
            policy=policy(cur, project) if project else None,
            server=f"{request.url.scheme}://{request.url.netloc}",
            open=identity(request).open,
        )
        return render(request, "quarantine.html", page)
