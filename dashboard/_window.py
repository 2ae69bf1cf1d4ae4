"""The window filter the insight pages share: a project, a branch, the last N runs."""

from __future__ import annotations

import dataclasses

from dashboard._params import QueryReader, href
from datacat_server.queries.window import Window, asked_window, projects
from datacat_server.web import Cursor

__all__ = ["ProjectChoice", "WindowFilters", "read_window"]


@dataclasses.dataclass(frozen=True)
class ProjectChoice:
    """A project for the selector, with its branches (for the branch field's suggestions)."""

    name: str
    branches: list[str]


@dataclasses.dataclass(frozen=True)
class WindowFilters:
    """Which runs a page looks at. ``project`` is resolved: the one that ran last when
    the URL names none (None only while nothing ran)."""

    project: str | None
    branch: str | None
    runs: int
    projects: list[ProjectChoice]
    #: The runs themselves.
    window: Window

    @property
    def branches(self) -> list[str]:
        """The branches of the selected project."""
        return next((p.branches for p in self.projects if p.name == self.project), [])

    def params(self) -> dict[str, object]:
        return {"project": self.project, "branch": self.branch, "runs": self.runs}

    def link(self, path: str, **extra: object) -> str:
        """``path`` with this window (and ``extra``) in its query string."""
        return href(path, {**self.params(), **extra})


def read_window(query: QueryReader, cur: Cursor, *, default_runs: int = 100) -> WindowFilters:
    """The window the query string asks for (the last project when it names none)."""
    runs = query.integer("runs", default_runs, lo=1, hi=100_000)
    branch = query.text("branch")
    window = asked_window(cur, query.text("project"), branch, runs)
    choices = [ProjectChoice(name, branches) for name, branches in projects(cur)]
    return WindowFilters(window.project, branch, runs, choices, window)
