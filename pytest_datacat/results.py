"""From pytest's reports to DataCat test results.

pytest reports each test in phases (setup, call, teardown); a test's result is what
its phases add up to, decided when its teardown is reported. A subtest report
(pytest 9's ``subtests`` fixture, unittest's ``subTest``) is a result of its own,
recorded with its parent's node id and a description. pytest-rerunfailures marks a
replaced attempt ``rerun``; every attempt is kept, and only the last is final.
pytest-xdist reports a test whose worker crashed with ``when == "???"``.

This runs for every test of every recorded run: the common case (a phase that passed)
takes a fast path, and attributes a report may lack are read from its ``__dict__``
(a missing attribute costs an exception inside ``getattr``).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from datacat_client.wire import cut_text

__all__ = ["Attempt", "crash_info", "subtest_fields", "truncate"]

#: Longest text kept per field; longer text keeps its head and tail around a marker.
TEXT_LIMITS = {"traceback": 32_000, "output": 16_000, "message": 2_000, "reason": 2_000}

ResultFields = dict[str, Any]

_NOT_FAILED = frozenset(("passed", "skipped", "xfailed", "xpassed"))


def truncate(text: str, limit: int) -> str:
    """``text`` if short enough, else its head and tail with the cut marked."""
    return cut_text(text, limit, "datacat: {n} characters truncated")


def _skip_reason(report: pytest.TestReport) -> str | None:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return None


def crash_info(report: Any) -> tuple[str | None, str | None]:
    """Exception type and first line of its message, read off a failure report.

    pytest's crash line is ``Type: message``, or just ``Type``, except for assertions
    it rewrote, where it strips ``AssertionError: `` and the text starts ``assert ``.
    """
    crash = getattr(report.longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    if not message:
        return None, None
    first = str(message).split("\n", 1)[0]
    if first.startswith("assert "):
        return "AssertionError", first
    name, sep, rest = first.partition(": ")
    if name.replace(".", "").replace("_", "").isalnum() and " " not in name:
        return name, rest if sep else ""
    return None, first


class Attempt:
    """One run of one test (a rerun is a new attempt), built up phase by phase."""

    __slots__ = (
        "call_duration",
        "exc_message",
        "exc_type",
        "extra",
        "line",
        "nodeid",
        "outcome",
        "phase",
        "reason",
        "rerun",
        "rss_start",
        "sections",
        "setup_duration",
        "started_at",
        "teardown_duration",
        "traceback",
        "worker",
    )

    def __init__(
        self,
        nodeid: str,
        started_at: float | None = None,
        rss_start: int | None = None,
    ) -> None:
        self.nodeid = nodeid
        self.started_at = time.time() if started_at is None else started_at
        self.rss_start = rss_start
        self.outcome = "passed"
        self.phase = "call"
        self.setup_duration = self.call_duration = self.teardown_duration = 0.0
        self.reason: str | None = None
        self.exc_type: str | None = None
        self.exc_message: str | None = None
        self.traceback: str | None = None
        self.sections: list[tuple[str, str]] = []
        #: What a `probe.Probe` measured where the test ran (under xdist).
        self.extra: dict[str, Any] | None = None
        self.line: int | None = None
        self.worker = ""
        self.rerun = False

    def add(self, report: pytest.TestReport) -> None:
        """Fold one phase's report into the attempt."""
        when = report.when
        attrs = report.__dict__
        self._timing(report, when)
        extra = attrs.get("datacat")
        if extra is not None:
            self.extra = extra if self.extra is None else {**self.extra, **extra}
        worker = attrs.get("worker_id")
        if worker:
            self.worker = worker
        # Each phase's report carries the sections of every phase so far.
        self.sections = report.sections
        outcome: str = report.outcome  # pytest-rerunfailures adds "rerun"
        if outcome == "passed":
            if when == "call" and attrs.get("wasxfail") is not None:
                self.outcome, self.reason = "xpassed", attrs["wasxfail"] or None
            return
        if outcome == "rerun":
            self.rerun = True
            self._failure(report, "error" if when == "setup" else "failed", when)
        elif outcome == "failed":
            if when in ("call", "???"):
                self._failure(report, "failed", when)
            elif self.outcome in _NOT_FAILED:
                # A setup or teardown error; a failed call stays the test's outcome.
                self._failure(report, "error", when)
        elif outcome == "skipped":
            wasxfail = attrs.get("wasxfail")
            if wasxfail is not None:
                self.outcome, self.phase, self.reason = "xfailed", when, wasxfail or None
            else:
                self.outcome, self.phase, self.reason = "skipped", when, _skip_reason(report)

    def _timing(self, report: pytest.TestReport, when: str) -> None:
        if when == "setup":
            self.setup_duration = report.duration
            location = report.location
            if location[1] is not None:
                self.line = location[1] + 1
        elif when == "call":
            self.call_duration = report.duration
        elif when == "teardown":
            self.teardown_duration = report.duration

    def _failure(self, report: pytest.TestReport, outcome: str, when: str) -> None:
        self.outcome, self.phase = outcome, when
        extra = report.__dict__.get("datacat")
        if extra is not None and extra.get("exc_type"):
            self.exc_type, self.exc_message = extra["exc_type"], extra.get("exc_message")
        else:
            self.exc_type, self.exc_message = crash_info(report)
        if when == "???" and self.exc_type is None:
            self.exc_type = "WorkerCrashed"
        text = report.longreprtext
        self.traceback = truncate(text, TEXT_LIMITS["traceback"]) if text else None

    def fields(self, capture: str, measured: dict[str, Any] | None = None) -> ResultFields:
        """The `wire.TestResult` fields of this attempt.

        ``measured``: CPU time, memory change and markers taken in this process (when
        the test ran here); otherwise they come from the probe's data on the reports.
        """
        failed = self.outcome in {"failed", "error"}
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
        extra = measured if measured is not None else self.extra
        if extra:
            for key in ("markers", "cpu_time", "rss_delta"):
                value = extra.get(key)
                if value is not None:
                    fields[key] = value
        if self.reason:
            fields["reason"] = truncate(self.reason, TEXT_LIMITS["reason"])
        if failed:
            if self.exc_type:
                fields["exc_type"] = self.exc_type
            if self.exc_message is not None:
                fields["exc_message"] = truncate(self.exc_message, TEXT_LIMITS["message"])
            if self.traceback:
                fields["traceback"] = self.traceback
        if capture == "all" or (failed and capture == "failed"):
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
    attempt = Attempt(report.nodeid, started_at=time.time() - report.duration)
    attempt.add(report)
    fields = attempt.fields(capture)
    fields["subtest"] = _describe(report.__dict__.get("context"))
    return fields
