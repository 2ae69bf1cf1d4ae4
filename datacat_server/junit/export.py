"""Any stored run as JUnit XML: ``testsuites`` > one ``testsuite`` > ``testcase``.

Two families, as pytest's ``junit_family`` names them:

- ``xunit2`` (the default) is valid against the JUnit schema pytest's own tests use
  (``junit-10.xsd``): a testcase carries ``classname``, ``name`` and ``time`` only;
- ``xunit1`` adds ``file`` and ``line`` to each testcase, and ``time`` to each rerun
  element, so that importing it again gives pytest's node ids and every attempt's
  duration back. JUnit consumers ignore attributes they do not know.

A test's result is a testcase with ``failure``, ``error`` or ``skipped`` (an xfail is
pytest's ``skipped type="pytest.xfail"``; an xpass is a pass, as pytest writes it), its
output in ``system-out``/``system-err``. Its earlier attempts are Maven Surefire's rerun
elements: ``flakyFailure``/``flakyError`` before a final pass, or, for a test that
failed every time, its first failure followed by ``rerunFailure``/``rerunError``.
Attempts that did not fail (``go test -count=2``) are testcases of their own, which an
import reads back as attempts. Characters XML 1.0 cannot hold are written as pytest
does, ``#x1B``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Literal

import duckdb

from datacat_server.junit.records import SUITE_OUTPUT
from datacat_server.queries._common import decode_json, parse_session_id
from datacat_server.queries.runs import RunInfo, get_run

__all__ = ["Family", "export_run"]

Family = Literal["xunit1", "xunit2"]

_FORBIDDEN = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_FAILED = frozenset(("failed", "error"))

_RESULTS_SQL = """
SELECT nodeid, file, line, cls, func, subtest, outcome, duration, reason, exc_type,
       exc_message, traceback, stdout, stderr, log, final
FROM test_results WHERE session_id = CAST(? AS UUID) ORDER BY seq
"""
_OUTPUT_SQL = """
SELECT data FROM events WHERE session_id = CAST(? AS UUID) AND name = ? ORDER BY seq
"""


@dataclasses.dataclass(frozen=True, slots=True)
class _Result:
    nodeid: str
    file: str | None
    line: int | None
    cls: str | None
    func: str | None
    subtest: str | None
    outcome: str
    duration: float
    reason: str | None
    exc_type: str | None
    exc_message: str | None
    traceback: str | None
    stdout: str | None
    stderr: str | None
    log: str | None
    final: bool


def _clean(text: str) -> str:
    """Text XML 1.0 can hold: other characters become ``#xNN``, as pytest writes them."""
    return _FORBIDDEN.sub(lambda m: f"#x{ord(m.group()):02X}", text)


def _seconds(value: float) -> str:
    """A testcase's time: microseconds, no trailing zeros (``0.0123``)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _names(result: _Result) -> tuple[str, str]:
    """classname and name, as pytest writes them for a pytest node id."""
    nodeid, file = result.nodeid, result.file or ""
    if file.endswith(".py") and nodeid.startswith(file + "::"):
        path, bracket, params = nodeid.partition("[")
        names = path.split("::")
        names[0] = names[0].removesuffix(".py").replace("/", ".")
        names[-1] += bracket + params
        classname, name = ".".join(names[:-1]), names[-1]
    elif result.cls and result.func and nodeid == f"{result.cls}::{result.func}":
        classname, name = result.cls, result.func
    else:
        classname, _, name = nodeid.rpartition("::")
    if result.subtest is not None:
        name = f"{name} [{result.subtest}]"
    return classname, name


def _element(tag: str, text: str | None = None, **attrs: str | None) -> ET.Element:
    element = ET.Element(tag, {k: _clean(v) for k, v in attrs.items() if v is not None})
    if text:
        element.text = _clean(text)
    return element


def _output(result: _Result) -> str | None:
    if not result.log:
        return result.stdout
    log = f"{' Captured Log '.center(80, '-')}\n{result.log}"
    return f"{result.stdout}\n{log}" if result.stdout else log


def _streams(parent: ET.Element, result: _Result) -> None:
    for tag, text in (("system-out", _output(result)), ("system-err", result.stderr)):
        if text:
            parent.append(_element(tag, text))


def _problem(result: _Result) -> ET.Element | None:
    """The failure, error or skip element of one result (None for a pass)."""
    outcome = result.outcome
    if outcome in _FAILED:
        tag = "failure" if outcome == "failed" else "error"
        return _element(tag, result.traceback, message=result.exc_message, type=result.exc_type)
    if outcome == "skipped":
        return _element("skipped", message=result.reason)
    if outcome == "xfailed":
        return _element("skipped", type="pytest.xfail", message=result.reason)
    return None


def _rerun(kind: str, result: _Result, family: Family) -> ET.Element:
    tag = kind + ("Failure" if result.outcome == "failed" else "Error")
    element = _element(tag, message=result.exc_message, type=result.exc_type or "")
    if family == "xunit1":
        element.set("time", _seconds(result.duration))
    if result.traceback:
        element.append(_element("stackTrace", result.traceback))
    _streams(element, result)
    return element


def _testcase(result: _Result, reruns: Iterable[tuple[str, _Result]], family: Family) -> ET.Element:
    classname, name = _names(result)
    case = _element("testcase", classname=classname, name=name, time=_seconds(result.duration))
    if family == "xunit1":
        if result.file:
            case.set("file", _clean(result.file))
        if result.line is not None:
            case.set("line", str(result.line))
    problem = _problem(result)
    if problem is not None:
        case.append(problem)
    for kind, rerun in reruns:
        case.append(_rerun(kind, rerun, family))
    _streams(case, result)
    return case


def _testcases(results: list[_Result], family: Family) -> Iterable[ET.Element]:
    """Testcases in the order their tests ended, each with its earlier attempts."""
    pending: dict[tuple[str, str | None], list[_Result]] = {}
    ordered: list[list[_Result]] = []
    for result in results:
        attempts = pending.setdefault((result.nodeid, result.subtest), [])
        attempts.append(result)
        if result.final:
            ordered.append(pending.pop((result.nodeid, result.subtest)))
    ordered.extend(pending.values())  # attempts whose final one never came
    for attempts in ordered:
        *earlier, final = attempts
        if any(a.outcome not in _FAILED for a in earlier):
            for attempt in attempts:  # a rerun element can only say "failed"
                yield _testcase(attempt, (), family)
        elif earlier and final.outcome in _FAILED:
            first, *later = attempts
            yield _testcase(first, (("rerun", a) for a in later), family)
        else:
            yield _testcase(final, (("flaky", a) for a in earlier), family)


def _timestamp(run: RunInfo) -> str | None:
    """The run's start with its UTC offset, as pytest writes a suite's timestamp."""
    if not run.started_at:
        return None
    return dt.datetime.fromisoformat(run.started_at).isoformat(timespec="microseconds")


def _count(suite: ET.Element) -> dict[str, str]:
    """The counts a testsuite states, from the testcases it holds."""
    found = {"tests": 0, "failure": 0, "error": 0, "skipped": 0}
    for case in suite.iter("testcase"):
        found["tests"] += 1
        for child in case:
            if child.tag in found:
                found[child.tag] += 1
    return {
        "tests": str(found["tests"]),
        "failures": str(found["failure"]),
        "errors": str(found["error"]),
        "skipped": str(found["skipped"]),
    }


def _properties(run: RunInfo) -> ET.Element:
    properties = _element("properties")
    for name, value in (
        ("datacat.run", run.id),
        ("project", run.project),
        ("branch", run.branch),
        ("commit", run.commit),
    ):
        if value:
            properties.append(_element("property", name=name, value=value))
    return properties


def _suite_output(cur: duckdb.DuckDBPyConnection, key: str, suite: ET.Element) -> None:
    """The suites' own output an import kept, after the testcases."""
    rows = cur.execute(_OUTPUT_SQL, [key, SUITE_OUTPUT]).fetchall()
    outputs = [data for data in (decode_json(row[0]) for row in rows) if isinstance(data, dict)]
    for tag, field in (("system-out", "system_out"), ("system-err", "system_err")):
        text = "".join(str(data.get(field) or "") for data in outputs)
        if text:
            suite.append(_element(tag, text))


def export_run(
    cur: duckdb.DuckDBPyConnection, run_id: str, family: Family = "xunit2"
) -> str | None:
    """The run as a JUnit XML document, or None if there is no such run."""
    run = get_run(cur, run_id)
    key = parse_session_id(run_id)
    if run is None or key is None:
        return None
    results = [_Result(*row) for row in cur.execute(_RESULTS_SQL, [key]).fetchall()]
    duration = run.duration if run.duration is not None else sum(r.duration for r in results)
    suite = _element(
        "testsuite",
        name=run.project or "datacat",
        time=f"{duration:.3f}",
        timestamp=_timestamp(run),
        hostname=run.hostname,
    )
    suite.append(_properties(run))
    suite.extend(_testcases(results, family))
    _suite_output(cur, key, suite)
    counts = _count(suite)
    for name, value in counts.items():
        suite.set(name, value)
    root = _element("testsuites", name="datacat", time=f"{duration:.3f}")
    for name in ("tests", "failures", "errors"):
        root.set(name, counts[name])
    root.append(suite)
    body = ET.tostring(root, encoding="unicode")
    # A raw CR in text would be read back as LF: write it as a character reference.
    return '<?xml version="1.0" encoding="utf-8"?>\n' + body.replace("\r", "&#13;") + "\n"
