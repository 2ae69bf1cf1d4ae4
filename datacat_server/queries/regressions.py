"""Tests that got slower: where each test's durations shifted up, and stayed up.

A test's series is its **call** durations, one per run of the window in run order:
its final attempt (a rerun's last), not a subtest, passed (a failure often stops
early), ordered as its stream is (`results.stored_at`, then session and sequence
number; see `datacat_server.store.rollups`), separately per branch. Only the call
phase counts: pytest charges session-scoped fixtures (and the start-up work done in
them) to the setup phase of the first test that needs them, so a stable test whose turn
came first would look slow in that run; a slowdown of a fixture's setup is not seen
here.

Each series is cut where its level changed (`datacat_server.queries.changepoint`: the
method and its argument). A test regressed at a change point after which its median is
at least ``threshold`` times the median before and ``min_seconds`` long, and its latest
level is still that slow; the latest such change point is reported, with its run and
commit and the commit of the test's passing run before it (the change came in
between).

Reading every series into Python would cost the whole window, so two cheap SQL passes
first keep only the series that could pass: one over the window keeps the tests whose
slowest result is ``threshold`` times their fastest and at least ``min_seconds`` long;
one over those tests computes, per series, every cut's statistics from prefix sums
(window functions) and keeps the series whose best cut could be significant (an upper
bound of the test's statistic, `_side_variance_sql`, against the normal quantile,
which no t quantile is below). Both are necessary conditions of a reported regression,
so they change no answer, only its cost.

A whole history is not read: the window is at most `MAX_RUNS` runs. A slowdown older
than that is the test's normal speed.
"""

from __future__ import annotations

import dataclasses
import statistics

import duckdb
import msgspec

from datacat_server.queries._common import iso, rows
from datacat_server.queries.changepoint import (
    FLOOR_NOISE,
    FLOOR_SECONDS,
    MAD_TO_SD,
    MIN_SIDE,
    NOISIER_P,
    latest_slowdown,
)
from datacat_server.queries.window import Window

__all__ = [
    "DEFAULT_MAX_P",
    "DEFAULT_MIN_SECONDS",
    "DEFAULT_THRESHOLD",
    "MAX_RUNS",
    "Regression",
    "chi_square_quantile_sql",
    "regressions",
]

#: Regressions leave out tests whose median since the change is under this many
#: seconds: a 2 ms test that takes 4 ms is scheduler noise, not a regression worth a look.
DEFAULT_MIN_SECONDS = 0.01
#: How much slower (median since the change / median before it).
DEFAULT_THRESHOLD = 1.5
#: The p-value a change point must be under (see `changepoint`: it is not corrected for
#: choosing the best of many cuts, so it is strict).
DEFAULT_MAX_P = 1e-4
#: The most runs a regression search reads: the newest of a longer window.
MAX_RUNS = 300


class Regression(msgspec.Struct):
    """A test that got slower at one run and stayed slower."""

    nodeid: str
    branch: str
    #: The first run of the slower stretch: its id, commit and start time.
    run: str
    commit: str
    started_at: str
    #: The commit of the test's passing run before it, when it was still fast: the
    #: slowdown came in between.
    previous_commit: str
    #: Median call duration (seconds) of the stretch before the change, and since it.
    before: float
    after: float
    #: after / before.
    factor: float
    runs_before: int
    runs_after: int
    #: The two-sided p-value of the change (smaller: surer).
    p_value: float


# Pass 1: the tests (any branch) whose durations in the window spread by the factor.
# A series that qualifies has such a spread itself, so this keeps every one of them.
_SPREAD = """
SELECT r.test_id FROM results r
WHERE {window} AND r.final AND r.subtest IS NULL AND r.outcome = 'passed'
GROUP BY r.test_id
HAVING count(*) >= $least AND max(r.call_duration) >= $min_seconds
   AND max(r.call_duration) >= $threshold * min(r.call_duration)
"""

#: Wilson and Hilferty's chi-square quantile is under the exact one by at most
#: 0.0253 / df of it (at 1 degree of freedom; less with more); raised by 0.03 / df it is
#: never under it, so a side it calls noisier `changepoint` calls noisier too (a test
#: checks every df to 10,000).
CHI_SQUARE_MARGIN = 0.03


def chi_square_quantile_sql(df: str) -> str:
    """SQL for a number at least the chi-square quantile of ``1 - NOISIER_P`` with
    ``df`` degrees of freedom, and close to it (`CHI_SQUARE_MARGIN`)."""
    z = statistics.NormalDist().inv_cdf(1 - NOISIER_P)
    wilson_hilferty = f"{df} * power(1 - 2 / (9 * {df}) + {z!r} * sqrt(2 / (9 * {df})), 3)"
    return f"({wilson_hilferty} * (1 + {CHI_SQUARE_MARGIN} / {df}))"


def _side_variance_sql(rss: str, df: str) -> str:
    """At most the variance `changepoint.cut_p_value` gives a side: its own when it is
    surely noisier than the series, else the noise level's (which a side's variance
    there never is under: a noisier side's own is above it)."""
    return f"CASE WHEN {rss} / g2 > {chi_square_quantile_sql(df)} THEN {rss} / {df} ELSE g2 END"


# Pass 2, over those tests only: per series (test and branch), the statistics of every
# cut (prefix sums in run order), the cut `changepoint.best_cut` picks (largest pooled
# t), and an upper bound of `changepoint.cut_p_value`'s t there (`_side_variance_sql`).
# Series whose bound reaches the normal quantile of max_p come back whole. The
# second-largest and the mean of the two smallest durations bound the medians a
# reported regression compares.
_SERIES = """
WITH b AS (SELECT sid, branch FROM runs u WHERE {runs}),
d AS (
    SELECT f.*, b.branch, ln(greatest(f.x, $floor_seconds)) AS y
    FROM (
        SELECT r.test_id, r.sid, r.seq, r.stored_at, r.call_duration AS x FROM results r
        WHERE {window} AND r.test_id IN (SELECT unnest([{tests}]))
          AND r.final AND r.subtest IS NULL AND r.outcome = 'passed'
    ) f JOIN b USING (sid)
),
s AS MATERIALIZED (
    SELECT test_id, branch, sid, x, y,
           row_number() OVER w AS k, sum(y) OVER w AS s1, sum(y * y) OVER w AS q1,
           abs(y - lag(y) OVER w) AS dy
    FROM d
    WINDOW w AS (PARTITION BY test_id, branch ORDER BY stored_at, sid, seq
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
tot AS (
    SELECT test_id, branch, count(*) AS n, sum(y) AS s, sum(y * y) AS q,
           greatest(median(dy) * $mad_to_sd, $floor_noise) AS g
    FROM s GROUP BY test_id, branch
    HAVING count(*) >= $least AND max(x, 2)[2] >= $min_seconds
       AND max(x, 2)[2] >= $threshold * list_avg(min(x, 2))
),
cuts AS (
    SELECT s.test_id, s.branch, s.k, t.n, t.g * t.g AS g2,
           abs((t.s - s.s1) / (t.n - s.k) - s.s1 / s.k) AS shift,
           greatest(s.q1 - s.s1 * s.s1 / s.k, 0) AS r1,
           greatest((t.q - s.q1) - (t.s - s.s1) * (t.s - s.s1) / (t.n - s.k), 0) AS r2
    FROM s JOIN tot t USING (test_id, branch)
    WHERE s.k >= $min_side AND t.n - s.k >= $min_side
),
best AS (
    SELECT test_id, branch,
           arg_max(
               shift / sqrt({variance1} / k + {variance2} / (n - k)),
               shift / sqrt(greatest((r1 + r2) / (n - 2), 1e-12) * (1 / k + 1 / (n - k)))
           ) AS bound
    FROM cuts GROUP BY test_id, branch
)
SELECT s.test_id, s.branch, list(s.x ORDER BY s.k) AS durations,
       list(s.sid ORDER BY s.k) AS sids
FROM s SEMI JOIN (SELECT test_id, branch FROM best WHERE bound >= $z) USING (test_id, branch)
GROUP BY s.test_id, s.branch
"""

_RUNS = """
SELECT u.sid, s.id::VARCHAR AS run, u."commit", u.started_at
FROM runs u JOIN sessions s USING (sid) WHERE u.sid IN (SELECT unnest(?::INTEGER[]))
"""


@dataclasses.dataclass(frozen=True)
class _Found:
    test_id: int
    branch: str
    sid: int
    previous_sid: int
    before: float
    after: float
    factor: float
    runs_before: int
    runs_after: int
    p_value: float


def regressions(
    cur: duckdb.DuckDBPyConnection,
    window: Window,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    max_p: float = DEFAULT_MAX_P,
    min_runs: int = 3,
    limit: int = 50,
) -> list[Regression]:
    """Tests of the window (its newest `MAX_RUNS` runs) that got ``threshold`` times
    slower at some run and stayed so, with at least ``min_runs`` (3 or more) passing
    runs since, biggest factor first."""
    if min_runs < 3:
        raise ValueError("min_runs must be at least 3")
    if len(window.sids) > MAX_RUNS:
        kept = window.sids[:MAX_RUNS]  # newest first
        window = dataclasses.replace(window, sids=kept, lo=min(kept), hi=max(kept), whole=False)
    least = MIN_SIDE + min_runs
    if len(window.sids) < least:
        return []
    in_window, params = window.named("r")
    in_runs, _ = window.named("u")
    params |= {"least": least, "min_seconds": min_seconds, "threshold": threshold}
    spread = _SPREAD.replace("{window}", in_window)
    tests = [int(row[0]) for row in cur.execute(spread, params).fetchall()]
    if not tests:
        return []
    sql = (
        _SERIES.replace("{variance1}", _side_variance_sql("r1", "(k - 1)"))
        .replace("{variance2}", _side_variance_sql("r2", "(n - k - 1)"))
        .replace("{runs}", in_runs)
        .replace("{window}", in_window)
        .replace("{tests}", ", ".join(str(t) for t in tests))
    )
    params |= {
        "floor_seconds": FLOOR_SECONDS,
        "floor_noise": FLOOR_NOISE,
        "mad_to_sd": MAD_TO_SD,
        "min_side": MIN_SIDE,
        # a hair under the quantile: the bound is computed in another order than
        # Python's, and may differ in its last digits (and a smaller max_p than 1e-15
        # only makes the filter looser than it could be)
        "z": statistics.NormalDist().inv_cdf(1 - max(max_p, 1e-15) / 2) * 0.999,
    }
    found = []
    for series in rows(cur.execute(sql, params)):
        shift = latest_slowdown(
            series["durations"],
            threshold=threshold,
            min_seconds=min_seconds,
            max_p=max_p,
            min_after=min_runs,
        )
        if shift is None:
            continue
        c, sids = shift.index, series["sids"]
        found.append(
            _Found(
                test_id=series["test_id"],
                branch=series["branch"],
                sid=sids[c],
                previous_sid=sids[c - 1],
                before=shift.before,
                after=shift.after,
                factor=shift.factor,
                runs_before=shift.runs_before,
                runs_after=shift.runs_after,
                p_value=shift.p_value,
            )
        )
    return _described(cur, found, limit)


def _described(cur: duckdb.DuckDBPyConnection, found: list[_Found], limit: int) -> list[Regression]:
    """The regressions with their node ids, runs and commits, biggest factor first."""
    if not found:
        return []
    names = dict(
        cur.execute(
            "SELECT test_id, nodeid FROM tests WHERE test_id IN (SELECT unnest(?::INTEGER[]))",
            [sorted({f.test_id for f in found})],
        ).fetchall()
    )
    sids = {f.sid for f in found} | {f.previous_sid for f in found}
    runs = {run["sid"]: run for run in rows(cur.execute(_RUNS, [sorted(sids)]))}
    out = []
    for f in found:
        run = runs[f.sid]
        out.append(
            Regression(
                nodeid=names[f.test_id],
                branch=f.branch,
                run=run["run"],
                commit=run["commit"],
                started_at=iso(run["started_at"]) or "",
                previous_commit=runs[f.previous_sid]["commit"],
                before=f.before,
                after=f.after,
                factor=f.factor,
                runs_before=f.runs_before,
                runs_after=f.runs_after,
                p_value=f.p_value,
            )
        )
    out.sort(key=lambda r: (-r.factor, r.nodeid, r.branch))
    return out[:limit]
