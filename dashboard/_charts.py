"""Chart specifications: plain data a page embeds as JSON and ``app.js`` draws.

A spec says what to draw, not how: line charts with axis titles (and units), whether x
is time, and datasets of ``{x, y}`` points (x in epoch milliseconds on time axes).
Optional per-point ``outcomes`` colour the points, ``tips`` add a line to their
tooltip, ``links`` make a click open a page. Nothing here is executable; templates
embed it with ``|tojson``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from dashboard._format import bytes_delta, duration, epoch_ms, number
from datacat_server.queries.history import TestHistory
from datacat_server.queries.metrics import MetricSeries
from datacat_server.queries.overview import PassRatePoint
from datacat_server.queries.sessions import MetricOut
from datacat_server.queries.trend import SuiteRun

__all__ = [
    "KNOWN_UNITS",
    "SESSION_POINTS",
    "duration_unit",
    "history_chart",
    "metric_axis_title",
    "metric_chart",
    "metric_value",
    "pass_rate_chart",
    "session_metric_charts",
    "suite_duration_chart",
]

Spec = dict[str, Any]

#: Series drawn one by one; sessions beyond these share one "other sessions" series.
MAX_SERIES = 8
#: Points of one metric a session page draws (the latest): a test run logs a
#: duration per test, and a live page redraws every few seconds.
SESSION_POINTS = 2000


def _axis(title: str, *, time: bool = False, unit: str = "", **bounds: float) -> dict[str, Any]:
    return {"title": title, "time": time, "unit": unit, **bounds}


def pass_rate_chart(points: Sequence[PassRatePoint], run_href: Callable[[str], str]) -> Spec:
    """Each finished run's pass rate (%) over run start time."""
    shown = [(p, p.rate) for p in points if p.rate is not None]
    return {
        "x": _axis("Run started (UTC)", time=True),
        "y": _axis("Pass rate (%)", unit="%", min=0, max=100),
        "datasets": [
            {
                "label": "Pass rate",
                "points": [{"x": epoch_ms(p.started_at), "y": round(r * 100, 2)} for p, r in shown],
                "tips": [f"{p.branch}: {p.passed} passed, {p.failed} failed" for p, _ in shown],
                "links": [run_href(p.run) for p, _ in shown],
            }
        ],
    }


#: Branches a suite duration chart draws (those with the most runs), two series each.
SUITE_BRANCHES = MAX_SERIES // 2


def suite_duration_chart(runs: Sequence[SuiteRun], run_href: Callable[[str], str]) -> Spec:
    """Each whole run's duration (a line per branch) and the sum of its tests' durations
    (points), over run start time; partial runs are left out."""
    whole = [r for r in runs if not r.partial]
    by_branch: dict[str, list[SuiteRun]] = defaultdict(list)
    for run in whole:
        by_branch[run.branch].append(run)
    branches = sorted(by_branch, key=lambda b: (-len(by_branch[b]), b))[:SUITE_BRANCHES]
    longest = max((max(r.duration or 0.0, r.test_time) for r in whole), default=0.0)
    unit, scale = ("min", 1 / 60) if longest >= 600 else ("s", 1.0)
    datasets: list[dict[str, Any]] = []
    for branch in branches:
        points = by_branch[branch]
        timed = [r for r in points if r.duration]
        datasets.append(
            {
                "label": f"{branch or '(no branch)'}: run",
                "points": [
                    {"x": epoch_ms(r.started_at), "y": round((r.duration or 0) * scale, 3)}
                    for r in timed
                ],
                "tips": [f"{r.tests} tests, commit {r.commit[:10] or '?'}" for r in timed],
                "links": [run_href(r.run) for r in timed],
            }
        )
        datasets.append(
            {
                "label": f"{branch or '(no branch)'}: sum of its tests",
                "points": [
                    {"x": epoch_ms(r.started_at), "y": round(r.test_time * scale, 3)}
                    for r in points
                ],
                "showLine": False,
                "tips": [f"{r.tests} tests, {duration(r.test_time)}" for r in points],
                "links": [run_href(r.run) for r in points],
            }
        )
    return {
        "x": _axis("Run started (UTC)", time=True),
        "y": _axis(f"Duration ({unit})", unit=unit, min=0),
        "datasets": datasets,
    }


def duration_unit(seconds: Sequence[float]) -> tuple[str, float]:
    """The unit that reads best for these durations (``ms`` below a second), and its scale."""
    return ("s", 1.0) if max(seconds, default=0.0) >= 1 else ("ms", 1000.0)


def history_chart(history: TestHistory, run_href: Callable[[str], str]) -> Spec:
    """A test's duration in each run (ms or s), each point coloured by its outcome."""
    points = history.points
    unit, scale = duration_unit([p.duration for p in points])
    return {
        "x": _axis("Run started (UTC)", time=True),
        "y": _axis(f"Duration ({unit})", unit=unit, min=0),
        "datasets": [
            {
                "label": "Duration",
                "points": [
                    {"x": epoch_ms(p.started_at), "y": round(p.duration * scale, 6)} for p in points
                ],
                "outcomes": [p.outcome for p in points],
                "tips": [f"{p.outcome}, {duration(p.duration)} on {p.branch}" for p in points],
                "links": [run_href(p.run) for p in points],
            }
        ],
    }


def metric_chart(series: MetricSeries, session_href: Callable[[str], str]) -> Spec:
    """A metric over time: a series per session for every value, one line per aggregate."""
    if series.aggregation == "all":
        by_session: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for point in series.points:
            by_session[point.session_id].append((point.timestamp, point.value))
        order = list(by_session)  # oldest first: the newest sessions get their own series
        older, newest = order[:-MAX_SERIES], order[-MAX_SERIES:]
        datasets = []
        if older:
            rest = sorted(value for session in older for value in by_session[session])
            datasets.append(_dataset("older sessions", rest, show_line=False))
        datasets += [
            _dataset(f"session {session[:8]}", by_session[session], link=session_href(session))
            for session in newest
        ]
    else:
        values = [(p.timestamp, p.value) for p in series.points]
        datasets = [
            {
                **_dataset(f"{series.aggregation} per session", values),
                "links": [session_href(p.session_id) for p in series.points],
            }
        ]
    return {
        "x": _axis("Time (UTC)", time=True),
        "y": _axis(metric_axis_title(series.name)),
        "datasets": datasets,
    }


def _dataset(
    label: str, values: Sequence[tuple[str, float]], *, show_line: bool = True, link: str = ""
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "label": label,
        "points": [{"x": epoch_ms(ts), "y": value} for ts, value in values],
        "showLine": show_line,
    }
    if link:
        data["links"] = [link] * len(values)
    return data


#: Units of the metrics DataCat itself records (the pytest plugin's, per test).
KNOWN_UNITS = {"test_duration": "s", "test_cpu_time": "s", "test_rss_delta": "bytes"}


def metric_axis_title(name: str) -> str:
    """A metric's name, with its unit where DataCat knows it."""
    unit = KNOWN_UNITS.get(name)
    return f"{name} ({unit})" if unit else name


def metric_value(name: str, value: float | None) -> str:
    """A metric's value as text, in its unit where DataCat knows it (``12 ms``)."""
    unit = KNOWN_UNITS.get(name)
    if value is None or unit is None:
        return number(value)
    return duration(value) if unit == "s" else bytes_delta(round(value))


def session_metric_charts(
    metrics: Sequence[MetricOut],
) -> list[tuple[str, Spec, list[MetricOut]]]:
    """One chart per metric name of a session (its latest points), names sorted, with
    the values of that name."""
    by_name: dict[str, list[MetricOut]] = defaultdict(list)
    for metric in metrics:
        by_name[metric.name].append(metric)
    charts = []
    for name in sorted(by_name):
        latest = by_name[name][-SESSION_POINTS:]
        dataset = _dataset(name, [(m.timestamp, m.value) for m in latest])
        dataset["tips"] = [", ".join(m.tags) for m in latest]
        spec = {
            "x": _axis("Time (UTC)", time=True),
            "y": _axis(metric_axis_title(name)),
            "datasets": [dataset],
        }
        charts.append((name, spec, by_name[name]))
    return charts
