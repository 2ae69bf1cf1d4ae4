"""From pytest's reports to DataCat test results.

pytest reports each test in phases (setup, call, teardown); a test's result is what
its phases add up to, decided when its teardown is reported. A subtest report
(pytest 9's ``subtests`` fixture, unittest's ``subTest``) is a result of its own,
recorded with its parent's node id and a description. pytest-rerunfailures marks a
replaced attempt ``rerun``; every attempt is kept, and only the last is final.
pytest-xdist reports a test whose worker crashed with ``when == "???"``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

__all__ = ["Attempt", "ResultFields", "subtest_fields", "truncate"]

#: Longest text kept per field; longer text keeps its head and tail around a marker.
TEXT_LIMITS = {"traceback": 32_000, "output": 16_000, "message": 2_000, "reason": 2_000}

ResultFields = dict[str, Any]


def truncate(text: str, limit: int) -> str:
    """``text`` if short enough, else its head and tail with the cut marked."""
    if len(text) <= limit:
        return text
    keep = max(0, limit - 80)
    head, tail = keep // 2, keep - keep // 2
    cut = len(text) - head - tail
    return (
        f"{text[:head]}\n... [datacat: {cut} characters truncated] ...\n{text[len(text) - tail :]}"
    )


def _skip_reason(report: pytest.TestReport) -> str | None:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
        return reason.removeprefix("Skipped: ")
    return None


def _crash_message(report: pytest.TestReport) -> tuple[str | None, str | None]:
    """Exception type and message read off a report's text (when no probe data came)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    if not message:
        return None, None
    first = str(message).splitlines()[0]
    name, sep, rest = first.partition(": ")
    if sep and name.replace(".", "").replace("_", "").isalnum() and " " not in name:
        return name, rest
    return None, first


@dataclasses.dataclass(slots=True)
class Attempt:
    """One run of one test (a rerun is a new attempt), built up phase by phase."""

    nodeid: str
    started_at: float = dataclasses.field(default_factory=time.time)
    outcome: str = "passed"
    phase: str = "call"
    setup_duration: float = 0.0
    call_duration: float = 0.0
    teardown_duration: float = 0.0
    reason: str | None = None
    exc_type: str | None = None
    exc_message: str | None = None
    traceback: str | None = None
    sections: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    markers: list[str] = dataclasses.field(default_factory=list)
    cpu_time: float | None = None
    rss_delta: int | None = None
    line: int | None = None
    worker: str = ""
    rerun: bool = False

    def add(self, report: pytest.TestReport) -> None:
        """Fold one phase's report into the attempt."""
        when = report.when or "call"
        if when == "setup":
            self.setup_duration = report.duration
        elif when == "call":
            self.call_duration = report.duration
        elif when == "teardown":
            self.teardown_duration = report.duration
        extra = getattr(report, "datacat", None)
        if isinstance(extra, dict):
            self.markers = extra.get("markers", self.markers)
            self.cpu_time = extra.get("cpu_time", self.cpu_time)
            self.rss_delta = extra.get("rss_delta", self.rss_delta)
        self.worker = getattr(report, "worker_id", "") or self.worker
        if report.location and report.location[1] is not None:
            self.line = report.location[1] + 1
        # Each phase's report carries the sections of every phase so far.
        self.sections = list(report.sections)
        outcome: str = report.outcome  # pytest-rerunfailures adds "rerun"
        if outcome == "rerun":
            self.rerun = True
            self._failure(report, "error" if when == "setup" else "failed", when)
        elif report.failed:
            self._fail(report, when)
        elif report.skipped:
            wasxfail = getattr(report, "wasxfail", None)
            if wasxfail is not None:
                self.outcome, self.phase, self.reason = "xfailed", when, wasxfail or None
            else:
                self.outcome, self.phase, self.reason = "skipped", when, _skip_reason(report)
        elif when == "call" and getattr(report, "wasxfail", None) is not None:
            self.outcome, self.reason = "xpassed", report.wasxfail or None

    def _fail(self, report: pytest.TestReport, when: str) -> None:
        if when in ("call", "???"):
            self._failure(report, "failed", when)
        elif self.outcome in ("passed", "skipped", "xfailed", "xpassed"):
            # A setup or teardown error; a failed call stays the test's outcome.
            self._failure(report, "error", when)

    def _failure(self, report: pytest.TestReport, outcome: str, when: str) -> None:
        self.outcome, self.phase = outcome, when
        extra = getattr(report, "datacat", None)
        if isinstance(extra, dict) and extra.get("exc_type"):
            self.exc_type, self.exc_message = extra["exc_type"], extra.get("exc_message")
        else:
            self.exc_type, self.exc_message = _crash_message(report)
        text = report.longreprtext
        self.traceback = truncate(text, TEXT_LIMITS["traceback"]) if text else None
        if when == "???" and self.exc_type is None:
            self.exc_type = "WorkerCrashed"

    def fields(self, capture: str) -> ResultFields:
        """The `wire.TestResult` fields of this attempt."""
        failed = self.outcome in ("failed", "error")
        fields: ResultFields = {
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            "phase": self.phase,
            "started_at": self.started_at,
            "stopped_at": time.time(),
            "setup_duration": self.setup_duration,
            "call_duration": self.call_duration,
            "teardown_duration": self.teardown_duration,
            "worker": self.worker,
            "final": not self.rerun,
        }
        if self.line is not None:
            fields["line"] = self.line
        if self.markers:
            fields["markers"] = self.markers
        if self.cpu_time is not None:
            fields["cpu_time"] = self.cpu_time
        if self.rss_delta is not None:
            fields["rss_delta"] = self.rss_delta
        if self.reason:
            fields["reason"] = truncate(self.reason, TEXT_LIMITS["reason"])
        if failed:
            if self.exc_type:
                fields["exc_type"] = self.exc_type
            if self.exc_message is not None:
                fields["exc_message"] = truncate(self.exc_message, TEXT_LIMITS["message"])
            if self.traceback:
                fields["traceback"] = self.traceback
        if capture == "all" or (capture == "failed" and failed):
            fields.update(_captured(self.sections))
        return fields


def _captured(sections: list[tuple[str, str]]) -> ResultFields:
    streams: dict[str, list[str]] = {"stdout": [], "stderr": [], "log": []}
    for title, content in sections:
        for name, parts in streams.items():
            if title.startswith(f"Captured {name}") and content:
                parts.append(content)
    return {
        name: truncate("".join(parts), TEXT_LIMITS["output"])
        for name, parts in streams.items()
        if parts
    }


def _describe(context: Any) -> str:
    msg = getattr(context, "msg", None)
    kwargs = getattr(context, "kwargs", None) or {}
    params = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    if msg and params:
        return f"{msg} ({params})"
    return str(msg or params or "subtest")


def subtest_fields(report: pytest.TestReport, capture: str) -> ResultFields:
    """The fields of a subtest's own result (its report comes before its parent's)."""
    attempt = Attempt(nodeid=report.nodeid, started_at=time.time() - report.duration)
    attempt.add(report)
    fields = attempt.fields(capture)
    fields["subtest"] = _describe(getattr(report, "context", None))
    return fields
