"""Chart specifications: plain data a page embeds as JSON and ``app.js`` draws.

A spec says what to draw, not how: line charts with axis titles (and units), whether x
is time, optional bounds (``min``, ``max``) and tick ``step``, and datasets of ``{x, y}``
points (x in epoch milliseconds on time axes) drawn as a line unless ``showLine`` is
false.
Optional per-point ``outcomes`` colour the points, ``tips`` add a line to their
tooltip, ``links`` make a click open a page; a ``muted`` dataset is drawn in grey
(the rest get the series colours in turn). A spec with ``"type": "bar"`` is a bar per
category instead: ``x.labels`` name the categories, a dataset's ``values`` are the
bars' heights (with ``tips`` and ``links`` as above). Nothing here is executable;
templates embed it with ``|tojson``.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from dashboard._format import duration, epoch_ms, metric_title, tag_value, utc
from datacat_server.queries.metrics import TEST_METRICS, MetricSeries
from datacat_server.queries.overview import PassRatePoint
from datacat_server.queries.sessions import MetricOut
from datacat_server.queries.test_history import TestHistory
from datacat_server.queries.trend import SuiteRun

__all__ = [
    "MAX_BARS",
    "SESSION_POINTS",
    "SessionMetric",
    "branch_series",
    "duration_unit",
    "history_chart",
    "metric_chart",
    "pass_rate_chart",
    "rate_bounds",
    "session_metric_charts",
    "suite_duration_chart",
    "value_scale",
]

Spec = dict[str, Any]

#: Series drawn one by one; sessions beyond these share one "other sessions" series.
MAX_SERIES = 8
#: Bars a per-session chart draws (the newest sessions): more would be slivers.
MAX_BARS = 200
#: Points of one metric a session page draws (the latest): a test run logs a
#: duration per test, and a live page redraws every few seconds.
SESSION_POINTS = 2000
#: The narrowest span of the pass-rate axis, in percentage points: a run of 99.2 %
#: after one of 99.6 % is no cliff.
MIN_RATE_SPAN = 10.0


def _axis(title: str, *, time: bool = False, unit: str = "", **bounds: float) -> dict[str, Any]:
    return {"title": title, "time": time, "unit": unit, **bounds}


def rate_bounds(percents: Sequence[float]) -> tuple[float, float]:
    """The pass-rate axis for these values (%): their span and a margin, on multiples of
    5, at least `MIN_RATE_SPAN` wide, within 0..100."""
    if not percents:
        return 0.0, 100.0
    lo, hi = min(percents), max(percents)
    margin = max((hi - lo) * 0.1, 1.0)
    low = max(0.0, math.floor((lo - margin) / 5) * 5)
    high = min(100.0, math.ceil((hi + margin) / 5) * 5)
    if high - low < MIN_RATE_SPAN:
        high = min(100.0, low + MIN_RATE_SPAN)
        low = max(0.0, high - MIN_RATE_SPAN)
    return low, high


def branch_series(branches: Sequence[str]) -> dict[str, int]:
    """A colour (series number) for each branch, the one with most runs first: charts of
    one page that take the same mapping draw a branch in the same colour."""
    counts: dict[str, int] = defaultdict(int)
    for branch in branches:
        counts[branch] += 1
    return {b: i for i, b in enumerate(sorted(counts, key=lambda b: (-counts[b], b)))}


def pass_rate_chart(
    points: Sequence[PassRatePoint],
    run_href: Callable[[str], str],
    series: dict[str, int] | None = None,
) -> Spec:
    """Each finished whole run's pass rate (%) over run start time, a line per branch
    (the branches with the most runs; the others as loose points), coloured by
    ``series`` (`branch_series`)."""
    by_branch: dict[str, list[PassRatePoint]] = defaultdict(list)
    for point in points:
        if point.rate is not None:
            by_branch[point.branch].append(point)
    ranked = sorted(by_branch, key=lambda b: -len(by_branch[b]))
    own, rest = ranked[: MAX_SERIES - 1], ranked[MAX_SERIES - 1 :]
    colours = series if series is not None else branch_series([p.branch for p in points])
    groups: list[tuple[str, list[PassRatePoint], bool, int | None]] = [
        (branch or "(no branch)", by_branch[branch], True, colours.get(branch, i))
        for i, branch in enumerate(own)
    ]
    if rest:
        others = sorted(
            (p for branch in rest for p in by_branch[branch]), key=lambda p: p.started_at
        )
        groups.append(("other branches", others, False, None))  # grey loose points
    datasets = []
    for label, shown, line, colour in groups:
        datasets.append(
            {
                "label": label,
                **({"muted": True} if colour is None else {"series": colour}),
                "points": [
                    {"x": epoch_ms(p.started_at), "y": round((p.rate or 0) * 100, 2)} for p in shown
                ],
                "showLine": line,
                "tips": [_rate_tip(p, with_branch=not line) for p in shown],
                "links": [run_href(p.run) for p in shown],
            }
        )
    low, high = rate_bounds([(p.rate or 0) * 100 for ps in by_branch.values() for p in ps])
    span = high - low
    step = 1 if span <= 10 else 5 if span <= 50 else 10  # ticks on the bounds' grid
    return {
        "x": _axis("Run started (UTC)", time=True),
        "y": _axis("Pass rate (%)", unit="%", min=low, max=high, step=step),
        "datasets": datasets,
    }


def _rate_tip(point: PassRatePoint, *, with_branch: bool) -> str:
    counts = f"{point.passed:,} passed, {point.failed:,} failed"
    return f"{point.branch}: {counts}" if with_branch and point.branch else counts


#: Branches a suite duration chart draws (those with the most runs), two series each.
SUITE_BRANCHES = MAX_SERIES // 2


def suite_duration_chart(
    runs: Sequence[SuiteRun],
    run_href: Callable[[str], str],
    series: dict[str, int] | None = None,
) -> Spec:
    """Each whole run's duration (a line per branch) and the sum of its tests' durations
    (points, in the branch's colour), over run start time; partial runs are left out."""
    whole = [r for r in runs if not r.partial]
    by_branch: dict[str, list[SuiteRun]] = defaultdict(list)
    for run in whole:
        by_branch[run.branch].append(run)
    branches = sorted(by_branch, key=lambda b: (-len(by_branch[b]), b))[:SUITE_BRANCHES]
    longest = max((max(r.duration or 0.0, r.test_time) for r in whole), default=0.0)
    unit, scale = ("min", 1 / 60) if longest >= 600 else ("s", 1.0)
    colours = series if series is not None else branch_series([r.branch for r in whole])
    datasets: list[dict[str, Any]] = []
    for i, branch in enumerate(branches):
        points = by_branch[branch]
        timed = [r for r in points if r.duration]
        colour = colours.get(branch, i)
        datasets.append(
            {
                "label": f"{branch or '(no branch)'}: run",
                "series": colour,
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
                "series": colour,
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


#: Units values are scaled from: to seconds, and to bytes.
_SECONDS = {"s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6}
_BYTES = ("bytes", "byte", "B")
_BINARY = (("GiB", 1024.0**3), ("MiB", 1024.0**2), ("KiB", 1024.0), ("B", 1.0))


def value_scale(unit: str, values: Sequence[float]) -> tuple[str, float]:
    """The unit that reads best for these values logged in ``unit`` (``ms`` for
    durations under a second, ``MiB`` for megabytes of bytes), and the factor that
    turns a logged value into it. Other units stay as they are; a rate (``bytes/s``)
    scales as its unit does."""
    base = unit.removesuffix("/s")
    if base and base != unit:
        label, scale = value_scale(base, values)
        return f"{label}/s", scale
    if unit in _SECONDS:
        label, scale = duration_unit([v * _SECONDS[unit] for v in values])
        return label, scale * _SECONDS[unit]
    if unit in _BYTES:
        top = max((abs(v) for v in values), default=0.0)
        label, size = next((name, size) for name, size in _BINARY if top >= size or size == 1)
        return label, 1 / size
    return unit, 1.0


def metric_chart(
    series: MetricSeries, session_href: Callable[[str], str], aggregation_label: str = ""
) -> Spec:
    """A metric over time, a series per session (a counter's rate for a counter); a
    per-session aggregation as a bar per session (the newest `MAX_BARS`, oldest first):
    one value per session, nothing joins one session to another.

    DataCat's per-test metrics are one value per test: their points are not joined."""
    unit, scale = value_scale(series.value_unit, [p.value for p in series.points])
    rate = " rate" if series.kind == "counter" else ""
    y = _axis(metric_title(series.name + rate, unit), unit=unit)
    if series.aggregation != "all":
        shown = series.points[-MAX_BARS:]
        return {
            "type": "bar",
            "x": {**_axis("Sessions, oldest first"), "labels": [p.session_id[:8] for p in shown]},
            "y": y,
            "datasets": [
                {
                    "label": aggregation_label or f"{series.aggregation} per session",
                    "values": [p.value * scale for p in shown],
                    "tips": [f"session {p.session_id}, from {utc(p.timestamp)}" for p in shown],
                    "links": [session_href(p.session_id) for p in shown],
                }
            ],
        }
    per_test = series.name in TEST_METRICS
    by_session: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for point in series.points:
        by_session[point.session_id].append((point.timestamp, point.value * scale))
    order = list(by_session)  # oldest first: the newest sessions get their own series
    older, newest = order[:-MAX_SERIES], order[-MAX_SERIES:]
    datasets = []
    if older:
        rest = sorted(value for session in older for value in by_session[session])
        datasets.append({**_dataset("older sessions", rest, show_line=False), "muted": True})
    datasets += [
        _dataset(
            f"session {session[:8]}",
            by_session[session],
            show_line=not per_test,
            link=session_href(session),
        )
        for session in newest
    ]
    return {"x": _axis("Time (UTC)", time=True), "y": y, "datasets": datasets}


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


@dataclasses.dataclass(frozen=True)
class SessionMetric:
    """One metric of a session: its chart, and every value of it the page read."""

    name: str
    spec: Spec
    values: list[MetricOut]
    #: One value per test (charted by test, not over time).
    per_test: bool


def session_metric_charts(
    metrics: Sequence[MetricOut],
    units: dict[str, str],
    test_href: Callable[[str], str] | None = None,
) -> list[SessionMetric]:
    """One chart per metric name of a session (its latest points), names sorted, with
    the values of that name.

    A metric whose every value is tagged ``nodeid=`` (DataCat's per-test metrics) has
    one value per test: its chart is the tests ranked by value, highest first, each a
    point coloured by its outcome (``test_href`` links it), never a line from one test
    to another. Any other metric is a line over time.
    """
    by_name: dict[str, list[MetricOut]] = defaultdict(list)
    for metric in metrics:
        by_name[metric.name].append(metric)
    charts = []
    for name in sorted(by_name):
        latest = by_name[name][-SESSION_POINTS:]
        unit, scale = value_scale(units.get(name, ""), [m.value for m in latest])
        nodeids = [tag_value(m.tags, "nodeid") for m in latest]
        per_test = all(nodeid is not None for nodeid in nodeids)
        if per_test:
            ranked = sorted(zip(latest, nodeids, strict=True), key=lambda mn: -mn[0].value)
            dataset: dict[str, Any] = {
                "label": name,
                "points": [
                    {"x": rank, "y": m.value * scale} for rank, (m, _) in enumerate(ranked, 1)
                ],
                "showLine": False,
                "outcomes": [tag_value(m.tags, "outcome") or "" for m, _ in ranked],
                "tips": [nodeid or "" for _, nodeid in ranked],
            }
            if test_href is not None:
                dataset["links"] = [test_href(nodeid or "") for _, nodeid in ranked]
            x = _axis("Tests, highest value first", min=0, max=len(ranked) + 1)
        else:
            dataset = _dataset(name, [(m.timestamp, m.value * scale) for m in latest])
            dataset["tips"] = [", ".join(m.tags) for m in latest]
            x = _axis("Time (UTC)", time=True)
        spec = {"x": x, "y": _axis(metric_title(name, unit), unit=unit), "datasets": [dataset]}
        charts.append(SessionMetric(name, spec, by_name[name], per_test))
    return charts
