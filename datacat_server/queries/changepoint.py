"""Change points in a test's durations: where they shifted, and how sure that is.

Pure functions over one series (a test's call durations, oldest first); the query that
feeds them is `datacat_server.queries.regressions`.

**Method.** Durations are compared on a log scale, where "twice as slow" is the same
step for a 5 ms and a 5 s test and jitter is roughly symmetric. The series is cut by
binary segmentation, the hierarchical scheme of E-Divisive (Matteson & James 2014, "A
Nonparametric Approach for Multiple Change Point Analysis of Multivariate Data") that
MongoDB's CI uses (Daly et al. 2020, "The Use of Change Point Detection to Identify
Software Performance Regressions in a Continuous Integration System") and Apache Otava
(Hunter) after it: find the best single cut of a stretch, keep it if it is
significant, and look again on each side. Like Hunter (Fleming et al. 2023, "Hunter:
Using Change Point Detection to Hunt for Performance Regressions"), significance is a
t-test between the two sides, which, unlike E-Divisive's permutation test, is
deterministic and works with few points. Two choices differ from theirs:

- The cut is where the two-sample t statistic with a pooled variance is largest (the
  likelihood-ratio cut for a shift in the mean of normal data; with log durations, a
  change of factor), computed for every cut in one pass over prefix sums: O(n) per
  stretch, where E-Divisive's energy statistic costs O(n²); for a shift in level both
  aim at the same cut.
- A side's variance in the test is the series' noise level (`noise_scale`: the median
  absolute difference of successive values, which level shifts and isolated spikes
  barely move), unless that side is significantly noisier than it (a chi-square test
  at `NOISIER_P`); then it is the side's own, with its own few degrees of freedom, as in
  Welch's test. So three runs that happen to be close together do not look like a
  confident new level (their own variance would be near zero), while three runs of
  which two are spikes (noisier than the series) are judged on their own spread, and
  are not significant.

Simulated (`benchmarks/changepoints.py`: 3,000 stationary 200-run series per kind of
noise, ``max_p`` 1e-4): a regression was flagged in 1 series with ±40 % jitter and 5 %
(or 10 %) of runs 2x slower, in none with ±10 % jitter and 5 % such spikes (1 with
10 %). A 2x slowdown with ±10 % jitter was found at its run (±1) in 97-100 % of series
from 3 runs after it landed to 198 (2 runs before it); with ±40 % jitter and 5 % spikes
in 43-95 % (noisy series need more runs on both sides). In a 10-run window, a slowdown
8 runs ago (2 runs before it) is found with ±5 % jitter (97 %), with ±10 % half the time.

The p-value is the test's at the cut, not corrected for having chosen the best of many
cuts; ``max_p`` is set low for that reason (Otava's default is 1e-3).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from collections.abc import Sequence

__all__ = [
    "FLOOR_NOISE",
    "FLOOR_SECONDS",
    "MAD_TO_SD",
    "MIN_SIDE",
    "NOISIER_P",
    "ChangePoint",
    "Shift",
    "best_cut",
    "change_points",
    "chi_square_sf",
    "cut_p_value",
    "latest_slowdown",
    "log_durations",
    "noise_scale",
    "student_t_p",
]

#: The fewest points on either side of a cut.
MIN_SIDE = 2
#: A side whose variance is this unlikely under the series' noise level is judged on
#: its own variance.
NOISIER_P = 0.05
#: Durations below this (seconds) count as this: the log of zero is not a number.
FLOOR_SECONDS = 1e-6
#: The least noise level (on the log scale: 0.1 %), for series of identical durations.
FLOOR_NOISE = 1e-3
#: How much a median absolute deviation is worth in degrees of freedom, relative to a
#: standard deviation over as many points (its asymptotic efficiency for normal data).
_MAD_EFFICIENCY = 0.37
#: A median absolute difference of successive values, as a standard deviation (for
#: normal noise, a difference has √2 times its spread, and its median absolute value
#: is 0.6745 times that).
MAD_TO_SD = 1 / (0.6744897501960817 * math.sqrt(2))


def log_durations(durations: Sequence[float]) -> list[float]:
    """The series on the log scale the tests work on."""
    return [math.log(max(d, FLOOR_SECONDS)) for d in durations]


def noise_scale(y: Sequence[float]) -> float:
    """The series' noise level (a standard deviation, on ``y``'s scale), from the
    median absolute difference of successive values: a shift in level moves one
    difference, a spike two, so neither moves the median much."""
    steps = [abs(b - a) for a, b in itertools.pairwise(y)]
    if not steps:
        return FLOOR_NOISE
    return max(statistics.median(steps) * MAD_TO_SD, FLOOR_NOISE)


# -- distributions (SciPy would do; it is not worth its weight for two tail functions) --


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (Lentz's method)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((a - 1.0 + m2) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1.0 + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _beta_regularized(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def student_t_p(t: float, df: float) -> float:
    """The two-sided p-value of ``t`` under Student's t distribution with ``df`` degrees
    of freedom (fractional, as Welch's test gives)."""
    if math.isnan(t):
        return 1.0
    if math.isinf(t):
        return 0.0
    return _beta_regularized(df / 2.0, 0.5, df / (df + t * t))


def chi_square_sf(value: float, df: float) -> float:
    """P(X >= value) for X chi-square with ``df`` degrees of freedom: Q(df/2, value/2)."""
    a, x = df / 2.0, value / 2.0
    if x <= 0.0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:  # the series of P(a, x)
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300  # the continued fraction of Q(a, x), Lentz's method
    b = x + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = b + an / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return math.exp(log_front) * h


# -- one series ---------------------------------------------------------------------------


class _Sums:
    """Prefix sums of a series and of its squares: any stretch's mean and variance in
    constant time."""

    def __init__(self, y: Sequence[float]) -> None:
        self.s, self.q = [0.0], [0.0]
        for value in y:
            self.s.append(self.s[-1] + value)
            self.q.append(self.q[-1] + value * value)

    def stretch(self, lo: int, hi: int) -> tuple[int, float, float]:
        """Count, mean and residual sum of squares of ``y[lo:hi]``."""
        n = hi - lo
        s = self.s[hi] - self.s[lo]
        q = self.q[hi] - self.q[lo]
        return n, s / n, max(q - s * s / n, 0.0)


def best_cut(sums: _Sums, lo: int, hi: int, min_side: int = MIN_SIDE) -> int | None:
    """The cut of ``y[lo:hi]`` (an index c: ``y[lo:c]`` against ``y[c:hi]``) with the
    largest pooled two-sample t statistic; None if the stretch is too short."""
    n = hi - lo
    if n < 2 * min_side or n < 3:
        return None
    # sums.stretch, inlined: this loop is where a regression search spends its time
    s, q = sums.s, sums.q
    s_lo, q_lo, s_all, q_all = s[lo], q[lo], s[hi] - s[lo], q[hi] - q[lo]
    best, where = -1.0, None
    for c in range(lo + min_side, hi - min_side + 1):
        n1, n2 = c - lo, hi - c
        s1, q1 = s[c] - s_lo, q[c] - q_lo
        s2, q2 = s_all - s1, q_all - q1
        rss = max(q1 - s1 * s1 / n1, 0.0) + max(q2 - s2 * s2 / n2, 0.0)
        pooled = max(rss / (n - 2), 1e-12)
        t = abs(s2 / n2 - s1 / n1) / math.sqrt(pooled * (1.0 / n1 + 1.0 / n2))
        if t > best:
            best, where = t, c
    return where


def _side(n: int, rss: float, noise2: float, noise_df: float) -> tuple[float, float]:
    """A side's variance and its degrees of freedom, for the test (module docstring)."""
    df = n - 1
    variance = rss / df
    if chi_square_sf(rss / noise2, df) < NOISIER_P:
        return variance, df
    return noise2, noise_df


def cut_p_value(sums: _Sums, lo: int, c: int, hi: int, *, noise: float, points: int) -> float:
    """The two-sided p-value of the shift between ``y[lo:c]`` and ``y[c:hi]``."""
    noise2 = noise * noise
    noise_df = max(1.0, _MAD_EFFICIENCY * (points - 1))
    n1, m1, r1 = sums.stretch(lo, c)
    n2, m2, r2 = sums.stretch(c, hi)
    v1, d1 = _side(n1, r1, noise2, noise_df)
    v2, d2 = _side(n2, r2, noise2, noise_df)
    a1, a2 = v1 / n1, v2 / n2
    t = (m2 - m1) / math.sqrt(a1 + a2)
    df = (a1 + a2) ** 2 / (a1 * a1 / d1 + a2 * a2 / d2)  # Welch-Satterthwaite
    return student_t_p(t, df)


@dataclasses.dataclass(frozen=True)
class ChangePoint:
    #: The first point of the new level.
    index: int
    p_value: float


def change_points(
    y: Sequence[float], *, max_p: float, min_side: int = MIN_SIDE
) -> list[ChangePoint]:
    """Every significant change point of ``y`` (log durations), in order."""
    sums = _Sums(y)
    noise = noise_scale(y)
    found: list[ChangePoint] = []
    stretches = [(0, len(y))]
    while stretches:
        lo, hi = stretches.pop()
        c = best_cut(sums, lo, hi, min_side)
        if c is None:
            continue
        p = cut_p_value(sums, lo, c, hi, noise=noise, points=len(y))
        if p >= max_p:
            continue
        found.append(ChangePoint(c, p))
        stretches += [(lo, c), (c, hi)]
    return sorted(found, key=lambda point: point.index)


@dataclasses.dataclass(frozen=True)
class Shift:
    """A test that got slower at ``index`` and stayed slower."""

    index: int
    #: Median duration of the stretch before the change point, and since it.
    before: float
    after: float
    runs_before: int
    runs_after: int
    p_value: float

    @property
    def factor(self) -> float:
        return self.after / max(self.before, FLOOR_SECONDS)


def latest_slowdown(
    durations: Sequence[float],
    *,
    threshold: float,
    min_seconds: float,
    max_p: float,
    min_after: int = 3,
) -> Shift | None:
    """The latest change point after which ``durations`` (oldest first) stayed slower.

    At a change point c, *before* is the median of the stretch from the previous change
    point to c, *after* the median of everything since c. The slowdown counts if after
    is at least ``threshold`` times before and ``min_seconds`` long, at least
    ``min_after`` points came since, and the latest level (the stretch after the last
    change point, at least ``min_after`` points) is still ``threshold`` times before:
    a slowdown that was fixed is not one any more.
    """
    if min_after < 3:
        raise ValueError("min_after must be at least 3")  # the query's prefilter needs it
    points = change_points(log_durations(durations), max_p=max_p)
    if not points:
        return None
    n = len(durations)
    edges = [0, *(p.index for p in points), n]
    latest = statistics.median(durations[min(edges[-2], n - min_after) :])
    for i in range(len(points) - 1, -1, -1):
        c = points[i].index
        if n - c < min_after:
            continue
        before = statistics.median(durations[edges[i] : c])
        after = statistics.median(durations[c:])
        bar = threshold * max(before, FLOOR_SECONDS)
        if after >= min_seconds and after >= bar and latest >= bar:
            return Shift(c, before, after, c - edges[i], n - c, points[i].p_value)
    return None
