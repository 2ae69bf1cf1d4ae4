"""Regressions by change-point detection, on histories whose truth is known.

The main history is 200 runs of a project whose tests each follow a known shape:
stable, slowed down at a known run (from 3 to 198 runs ago), noisy (±40 % jitter and
an occasional 2x spike), slow in setup only, slowed and fixed, faster, slowed by too
little, too short to matter, failing now and then, rerun. Every answer is checked
exactly: which tests are flagged, at which run (±1), by what factor (±10 %).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from litestar.testing import TestClient

from datacat_server.app import create_app
from datacat_server.queries import regressions as regressions_module
from datacat_server.queries.changepoint import (
    NOISIER_P,
    best_cut,
    change_points,
    chi_square_sf,
    latest_slowdown,
    log_durations,
    noise_scale,
    student_t_p,
)
from datacat_server.queries.changepoint import _Sums as Sums
from datacat_server.queries.regressions import Regression, chi_square_quantile_sql, regressions
from datacat_server.queries.window import recent_runs
from datacat_server.settings import Settings
from datacat_server.store import Store
from tests.server.history import write_runs

RUNS = 200
SEED = 20261201


# -- the distributions ------------------------------------------------------------------


def test_student_t_p_values_match_the_tables() -> None:
    assert student_t_p(1.0, 1) == pytest.approx(0.5)  # Cauchy: P(|T| > 1) = 1/2
    assert student_t_p(2.0, 10) == pytest.approx(0.07338803, rel=1e-6)
    assert student_t_p(2.228138852, 10) == pytest.approx(0.05, rel=1e-6)
    assert student_t_p(1.959963985, 1e9) == pytest.approx(0.05, rel=1e-6)
    assert student_t_p(3.0, 2) == pytest.approx(1 - 3 / math.sqrt(2 + 9), rel=1e-9)
    assert student_t_p(3.0, 2.5) == pytest.approx(_t_tail_by_integration(3.0, 2.5), rel=1e-6)
    assert student_t_p(0.0, 5) == pytest.approx(1.0)
    assert student_t_p(50.0, 200) < 1e-100
    assert student_t_p(math.inf, 3) == 0.0
    assert student_t_p(math.nan, 3) == 1.0


def _t_tail_by_integration(t: float, df: float, steps: int = 200_000) -> float:
    """2 * P(T > t), integrating Student's density (Simpson's rule on u = 1/x)."""

    def density(x: float) -> float:
        log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
        return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))

    # x = 1/u maps (t, inf) to (0, 1/t); dx = du / u²; the integrand is 0 at u = 0
    h = (1 / t) / steps
    total = 0.0
    for i in range(steps + 1):
        u = i * h
        f = 0.0 if u == 0 else density(1 / u) / (u * u)
        total += f * (1 if i in (0, steps) else 4 if i % 2 else 2)
    return 2 * total * h / 3


def test_chi_square_tail_matches_the_tables() -> None:
    assert chi_square_sf(3.841458821, 1) == pytest.approx(0.05, rel=1e-6)
    assert chi_square_sf(5.0, 2) == pytest.approx(math.exp(-2.5), rel=1e-9)  # exp(-x/2)
    assert chi_square_sf(124.342113, 100) == pytest.approx(0.05, rel=1e-5)
    assert chi_square_sf(0.0, 3) == 1.0
    assert chi_square_sf(1e4, 3) < 1e-100


def test_the_sql_chi_square_quantile_is_never_under_the_exact_one() -> None:
    """The SQL pass calls a side noisier only where the search surely does."""
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT df, {chi_square_quantile_sql('df::DOUBLE')} FROM range(1, 10001) t(df)"
    ).fetchall()
    con.close()
    tails = [chi_square_sf(q, df) for df, q in rows]
    assert max(tails) <= NOISIER_P
    assert min(tails) > NOISIER_P * 0.98  # and hardly above it: the pass still filters


def test_the_noise_level_ignores_a_level_shift_and_a_spike() -> None:
    rng = random.Random(1)
    calm = [math.log(1 + rng.uniform(-0.05, 0.05)) for _ in range(100)]
    shifted = calm[:50] + [v + math.log(3) for v in calm[50:]]
    spiked = [v + (math.log(5) if i == 30 else 0.0) for i, v in enumerate(calm)]
    assert noise_scale(shifted) == pytest.approx(noise_scale(calm), rel=0.05)
    assert noise_scale(spiked) == pytest.approx(noise_scale(calm), rel=0.05)
    assert noise_scale([0.1] * 20) == pytest.approx(1e-3)  # identical durations: the floor


def test_the_best_cut_is_where_the_level_changed() -> None:
    y = log_durations([1.0, 1.02, 0.98, 1.01, 2.0, 2.03, 1.97, 2.01, 2.0])
    assert best_cut(Sums(y), 0, len(y)) == 4
    assert best_cut(Sums(y), 0, 3) is None  # too short to cut in two sides of two
    assert [p.index for p in change_points(y, max_p=1e-4)] == [4]


def test_min_after_below_three_is_refused() -> None:
    with pytest.raises(ValueError, match="min_after"):
        latest_slowdown([1.0] * 10, threshold=1.5, min_seconds=0, max_p=1e-4, min_after=2)


# -- the history ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Shape:
    """How one test behaves in run n (0 = the oldest of the window)."""

    nodeid: str
    #: Seconds of the call phase in run n, given the history's random generator.
    call: Callable[[int, random.Random], float]
    #: The run its slowdown landed in and its factor, if it is one to find.
    landed: int | None = None
    factor: float | None = None
    #: Seconds of setup in run n.
    setup: Callable[[int, random.Random], float] = lambda n, rng: 0.001
    #: Whether it fails in run n (with a short call: failures stop early).
    fails: Callable[[int], bool] = lambda n: False
    #: Whether a first attempt that failed slowly precedes the final one in run n.
    rerun: Callable[[int], bool] = lambda n: False
    #: Subtests with wildly varying durations.
    subtests: int = 0


def jitter(base: float, spread: float) -> Callable[[int, random.Random], float]:
    return lambda n, rng: base * rng.uniform(1 - spread, 1 + spread)


def slowed(base: float, spread: float, at: int, factor: float) -> Callable[..., float]:
    return lambda n, rng: base * (factor if n >= at else 1.0) * rng.uniform(1 - spread, 1 + spread)


def noisy(base: float) -> Callable[[int, random.Random], float]:
    """±40 % jitter, and one run in twenty twice as slow."""
    return lambda n, rng: base * rng.uniform(0.6, 1.4) * (2.0 if rng.random() < 0.05 else 1.0)


def _slowdown(age: int, factor: float, base: float, spread: float = 0.1) -> Shape:
    at = RUNS - age
    return Shape(f"t.py::test_slowed_{age}_runs_ago", slowed(base, spread, at, factor), at, factor)


SHAPES = [
    *(Shape(f"t.py::test_stable_{i}", jitter(0.05 * (i + 1), 0.05)) for i in range(3)),
    # the cases: 3 and 8 runs ago (the newest quarter missed them), and 198
    # (two runs before it)
    _slowdown(3, 2.0, 0.04),
    _slowdown(8, 2.0, 0.2),
    _slowdown(25, 1.6, 0.03, spread=0.05),
    _slowdown(60, 3.0, 0.015),
    _slowdown(120, 2.0, 0.5),
    _slowdown(190, 2.5, 0.08),
    _slowdown(198, 2.0, 0.1),
    *(Shape(f"t.py::test_noisy_{i}", noisy(0.03 * (i + 1))) for i in range(8)),
    # absorbs pytest's start-up in its setup in the first run, and now and then later
    Shape(
        "t.py::test_first",
        jitter(0.05, 0.05),
        setup=lambda n, rng: 0.5 if n == 0 or rng.random() < 0.1 else 0.05,
    ),
    # its fixture got 10x slower: setup, not call (what a regression does not look at)
    Shape(
        "t.py::test_fixture_slowed",
        jitter(0.05, 0.05),
        setup=lambda n, rng: 0.5 if n >= 100 else 0.05,
    ),
    Shape(
        "t.py::test_slowed_then_fixed",
        lambda n, rng: 0.1 * (2.0 if 150 <= n < 170 else 1.0) * rng.uniform(0.9, 1.1),
    ),
    Shape("t.py::test_faster", slowed(0.2, 0.1, 100, 0.5)),
    Shape("t.py::test_slower_by_too_little", slowed(0.2, 0.05, 100, 1.3)),
    Shape("t.py::test_too_short_to_matter", slowed(0.002, 0.05, 150, 2.0)),
    Shape(
        "t.py::test_slowed_and_failing_sometimes",
        slowed(0.05, 0.1, 140, 2.0),
        landed=140,
        factor=2.0,
        fails=lambda n: n % 9 == 4,
    ),
    Shape(
        "t.py::test_slowed_and_rerun",
        slowed(0.05, 0.1, 160, 2.0),
        landed=160,
        factor=2.0,
        rerun=lambda n: n % 5 == 0,
    ),
    Shape("t.py::test_with_slow_subtests", jitter(0.05, 0.05), subtests=3),
]
FLAGGED = {s.nodeid for s in SHAPES if s.landed is not None}


def _results(n: int, rng: random.Random) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for shape in SHAPES:
        call, setup = shape.call(n, rng), shape.setup(n, rng)
        if shape.rerun(n):  # a slow failed attempt, then the final one
            out.append(
                {
                    "nodeid": shape.nodeid,
                    "outcome": "failed",
                    "call_duration": call * 10,
                    "final": False,
                    "exc_type": "OSError",
                    "exc_message": "flake",
                }
            )
        for i in range(shape.subtests):
            out.append(
                {
                    "nodeid": shape.nodeid,
                    "outcome": "passed",
                    "subtest": f"[{i}]",
                    "call_duration": rng.uniform(0.001, 2.0),
                }
            )
        failed = shape.fails(n)
        out.append(
            {
                "nodeid": shape.nodeid,
                "outcome": "failed" if failed else "passed",
                "call_duration": 0.001 if failed else call,
                "setup_duration": setup,
                "attempt": 1 if shape.rerun(n) else 0,
            }
        )
    return out


@dataclasses.dataclass(frozen=True)
class History:
    store: Store
    runs: list[str]
    commits: list[str]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    store = Store(tmp_path_factory.mktemp("regressions") / "h.duckdb", soft_flush_interval=0.05)
    rng = random.Random(SEED)
    try:
        commits = [f"{n:04d}{'abcdef'[n % 6]}" for n in range(RUNS)]
        runs = write_runs(
            store,
            ((_results(n, rng), {"project": "perf", "commit": commits[n]}) for n in range(RUNS)),
        )
        yield History(store, runs, commits)
    finally:
        store.close()


def _found(history: History, **options: Any) -> dict[str, Regression]:
    cur = history.store.reader()
    window = recent_runs(cur, "perf", None, RUNS)
    return {r.nodeid: r for r in regressions(cur, window, limit=100, **options)}


def test_each_slowdown_is_found_at_its_run_with_its_factor_and_nothing_else(
    history: History,
) -> None:
    found = _found(history)
    assert set(found) == FLAGGED
    for shape in SHAPES:
        if shape.landed is None:
            continue
        r = found[shape.nodeid]
        at = history.runs.index(r.run)
        assert abs(at - shape.landed) <= 1, (shape.nodeid, at, shape.landed)
        assert r.commit == history.commits[at]
        # the last run before it in which the test passed (was still fast)
        last_fast = max(n for n in range(at) if not shape.fails(n))
        assert r.previous_commit == history.commits[last_fast]
        assert r.branch == "main"
        assert r.factor == pytest.approx(shape.factor, rel=0.1), shape.nodeid
        assert r.after == pytest.approx(r.before * r.factor)
        assert r.p_value < 1e-4
        assert r.runs_before >= 2
        assert r.runs_after >= 3
    # within ±1 here, in fact exact: the jitter is small next to the steps
    assert {n: history.runs.index(r.run) for n, r in found.items()} == {
        s.nodeid: s.landed for s in SHAPES if s.landed is not None
    }
    # the biggest factor first
    assert [r.factor for r in found.values()] == sorted(
        (r.factor for r in found.values()), reverse=True
    )


def test_the_numbers_of_a_clean_slowdown(history: History) -> None:
    r = _found(history)["t.py::test_slowed_120_runs_ago"]
    assert (r.runs_before, r.runs_after) == (80, 120)
    assert r.before == pytest.approx(0.5, rel=0.05)
    assert r.after == pytest.approx(1.0, rel=0.05)
    assert r.started_at.startswith("2027-01-")  # run 80 started T0 + 80 h
    # a failing run's short duration is not part of the series
    failing = _found(history)["t.py::test_slowed_and_failing_sometimes"]
    assert failing.runs_before + failing.runs_after == RUNS - sum(
        1 for n in range(RUNS) if n % 9 == 4
    )


def test_every_answer_is_what_the_method_gives_on_each_series(history: History) -> None:
    """The SQL passes before the change-point search only skip series that cannot
    qualify: searching every test's series directly gives the same answer."""
    cur = history.store.reader()
    series = cur.execute(
        """
        SELECT t.nodeid, list(r.call_duration ORDER BY r.stored_at, r.sid, r.seq)
        FROM results r JOIN tests t USING (test_id)
        WHERE t.project = 'perf' AND r.final AND r.subtest IS NULL AND r.outcome = 'passed'
        GROUP BY t.nodeid
        """
    ).fetchall()
    direct = {}
    for nodeid, durations in series:
        shift = latest_slowdown(durations, threshold=1.5, min_seconds=0.01, max_p=1e-4)
        if shift is not None:
            direct[nodeid] = (shift.before, shift.after, shift.runs_after, shift.p_value)
    found = _found(history)
    assert {n: (r.before, r.after, r.runs_after, r.p_value) for n, r in found.items()} == direct


def test_thresholds_min_seconds_and_max_p_narrow_the_answer(history: History) -> None:
    assert set(_found(history, threshold=2.2)) == {
        "t.py::test_slowed_60_runs_ago",
        "t.py::test_slowed_190_runs_ago",
    }
    # median after 0.045 s (3x 0.015 s): under 0.05 s it is left out
    assert "t.py::test_slowed_60_runs_ago" not in _found(history, min_seconds=0.05)
    assert "t.py::test_slowed_60_runs_ago" in _found(history, min_seconds=0.04)
    # 1.3x is found with a lower threshold; the 2 ms test's median is still too short
    lower = _found(history, threshold=1.2)
    assert "t.py::test_slower_by_too_little" in lower
    assert "t.py::test_too_short_to_matter" not in lower
    assert "t.py::test_too_short_to_matter" in _found(history, min_seconds=0.001)
    strict = _found(history, max_p=1e-300)
    assert strict.keys() < FLAGGED


def test_a_slowdown_needs_three_passing_runs_since(history: History) -> None:
    assert "t.py::test_slowed_3_runs_ago" in _found(history, min_runs=3)
    assert "t.py::test_slowed_3_runs_ago" not in _found(history, min_runs=4)


def test_a_smaller_window_sees_only_its_runs(history: History) -> None:
    cur = history.store.reader()
    found = {r.nodeid for r in regressions(cur, recent_runs(cur, "perf", None, 50))}
    # 25 and 3, 8 runs ago; 60 runs ago is before the window: its normal speed
    assert found == {
        "t.py::test_slowed_3_runs_ago",
        "t.py::test_slowed_8_runs_ago",
        "t.py::test_slowed_25_runs_ago",
        "t.py::test_slowed_and_rerun",
    }


# -- small windows, branches, the cap -------------------------------------------------


def test_in_ten_runs_a_slowdown_eight_runs_ago_is_found(store: Store) -> None:
    rng = random.Random(3)
    runs = write_runs(
        store,
        (
            (
                [
                    {
                        "nodeid": "t.py::test_x",
                        "outcome": "passed",
                        "call_duration": (2.0 if n >= 2 else 1.0) * rng.uniform(0.98, 1.02),
                    }
                ],
                {"project": "ten"},
            )
            for n in range(10)
        ),
    )
    cur = store.reader()
    found = regressions(cur, recent_runs(cur, "ten", None, 10))
    assert [(r.nodeid, r.run, r.runs_before, r.runs_after) for r in found] == [
        ("t.py::test_x", runs[2], 2, 8)
    ]
    assert found[0].factor == pytest.approx(2.0, rel=0.05)


def test_each_branch_is_its_own_series(store: Store) -> None:
    rng = random.Random(4)
    plans = []
    for n in range(60):
        feature = n % 3 == 2
        slow = feature and n >= 30  # only the feature branch got slower
        call = (0.3 if slow else 0.1) * rng.uniform(0.95, 1.05)
        plans.append(
            (
                [{"nodeid": "t.py::test_y", "outcome": "passed", "call_duration": call}],
                {"project": "br", "branch": "feature" if feature else "main"},
            )
        )
    runs = write_runs(store, plans)
    cur = store.reader()
    found = regressions(cur, recent_runs(cur, "br", None, 60))
    assert [(r.branch, r.run) for r in found] == [("feature", runs[32])]
    assert regressions(cur, recent_runs(cur, "br", "main", 60)) == []


def test_a_slowdown_older_than_the_cap_is_the_normal_speed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_runs(
        store,
        (
            (
                [
                    {
                        "nodeid": "t.py::test_z",
                        "outcome": "passed",
                        "call_duration": 0.2 if n >= 12 else 0.1,
                    }
                ],
                {"project": "cap"},
            )
            for n in range(40)
        ),
    )
    cur = store.reader()
    whole = recent_runs(cur, "cap", None, 100_000)
    assert [r.runs_before for r in regressions(cur, whole)] == [12]
    monkeypatch.setattr(regressions_module, "MAX_RUNS", 28)  # runs 12-39: all slow
    assert regressions(cur, whole) == []
    monkeypatch.setattr(regressions_module, "MAX_RUNS", 35)
    assert [r.runs_before for r in regressions(cur, whole)] == [7]


def test_random_series_give_the_same_answer_through_the_store(store: Store) -> None:
    """Many random shapes (steps anywhere, of any size, jitter, spikes, durations near
    min_seconds): the SQL passes never drop a series the search would flag."""
    rng = random.Random(5)
    tests = 300
    plans = []
    for _ in range(tests):
        base = 10 ** rng.uniform(-3, 0)
        at = rng.randrange(0, 50)
        factor = rng.choice([1.0, 1.2, 1.5, 1.7, 2.0, 3.0, 0.5])
        spread = rng.choice([0.01, 0.05, 0.2, 0.4])
        spikes = rng.choice([0.0, 0.05, 0.2])
        plans.append((base, at, factor, spread, spikes))
    series: dict[str, list[float]] = {f"t.py::test_{i}": [] for i in range(tests)}
    runs = []
    for n in range(50):
        results = []
        for i, (base, at, factor, spread, spikes) in enumerate(plans):
            call = base * (factor if n >= at else 1.0) * rng.uniform(1 - spread, 1 + spread)
            call *= 2.0 if rng.random() < spikes else 1.0
            series[f"t.py::test_{i}"].append(call)
            results.append(
                {"nodeid": f"t.py::test_{i}", "outcome": "passed", "call_duration": call}
            )
        runs.append((results, {"project": "random"}))
    write_runs(store, runs, per_write=10)
    cur = store.reader()
    found = {
        r.nodeid: (r.before, r.after, r.runs_after)
        for r in regressions(cur, recent_runs(cur, "random", None, 50), limit=1000)
    }
    direct = {}
    for nodeid, durations in series.items():
        shift = latest_slowdown(durations, threshold=1.5, min_seconds=0.01, max_p=1e-4)
        if shift is not None:
            direct[nodeid] = (shift.before, shift.after, shift.runs_after)
    assert found.keys() == direct.keys()
    for nodeid, values in found.items():
        assert values == pytest.approx(direct[nodeid], rel=1e-9)
    assert 20 < len(found) < tests  # the shapes exercise both answers


# -- the API --------------------------------------------------------------------------


@pytest.fixture
def api(db_path: Path) -> Iterator[TestClient[Any]]:
    with TestClient(app=create_app(Settings(db_path=db_path))) as client:
        yield client


def test_the_api_reports_the_run_commit_and_p_value(api: TestClient[Any]) -> None:
    store = api.app.state.store
    runs = write_runs(
        store,
        (
            (
                [
                    {
                        "nodeid": "t.py::test_api",
                        "outcome": "passed",
                        "call_duration": 0.4 if n >= 7 else 0.1,
                    }
                ],
                {"project": "api", "commit": f"sha{n}"},
            )
            for n in range(12)
        ),
    )
    answer = api.get("/api/regressions", params={"project": "api"})
    assert answer.status_code == 200
    [body] = answer.json()
    assert body["nodeid"] == "t.py::test_api"
    assert (body["run"], body["commit"], body["previous_commit"]) == (runs[7], "sha7", "sha6")
    assert (body["runs_before"], body["runs_after"]) == (7, 5)
    assert body["factor"] == pytest.approx(4.0)
    assert 0 <= body["p_value"] < 1e-4
    assert api.get("/api/regressions", params={"project": "api", "threshold": 5}).json() == []


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ({"max_p": "0"}, "max_p"),
        ({"max_p": "0.9"}, "max_p"),
        ({"threshold": "1"}, "threshold"),
        ({"min_runs": "2"}, "min_runs"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(
    api: TestClient[Any], params: dict[str, str], complaint: str
) -> None:
    answer = api.get("/api/regressions", params=params)
    assert answer.status_code == 400
    assert complaint in answer.text
