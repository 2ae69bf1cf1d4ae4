"""Slow tests: each test's durations over a window of runs.

Durations are a test's setup + call + teardown, of its final attempt. Tests that got
slower are `datacat_server.queries.regressions`.
"""

from __future__ import annotations

import duckdb
import msgspec

from datacat_server.queries._common import select_list, structs
from datacat_server.queries.streams import buckets_cte, folded, streams_cte
from datacat_server.queries.window import Window
from datacat_server.store.rollups import bucket_value_sql

__all__ = ["SlowTest", "slow_tests"]


class SlowTest(msgspec.Struct):
    nodeid: str
    runs: int
    #: Seconds.
    p50: float
    p95: float
    max: float
    total: float
    #: This test's share of the time all tests took in the window's runs.
    share: float


#: Each `SlowTest` field: the column of its name in ``per_test`` unless named here.
_SLOW_COLUMNS = select_list(
    SlowTest,
    "p",
    {
        "nodeid": "t.nodeid",
        "p50": "p.q[1]",
        "p95": "p.q[2]",
        "share": "p.total / nullif(sum(p.total) OVER (), 0)",
    },
)

# quantile_cont with a list sorts each group once (measured: 270 ms instead of 460 ms
# for p50 and p95 over 5M rows).
_SLOW = """
WITH d AS (
    SELECT r.test_id, r.duration FROM results r
    WHERE {window} AND r.final AND r.subtest IS NULL
),
per_test AS (
    SELECT test_id, count(*) AS runs, quantile_cont(duration, [0.5, 0.95]) AS q,
           max(duration) AS max, sum(duration) AS total
    FROM d GROUP BY test_id
)
SELECT {columns}
FROM per_test p JOIN tests t USING (test_id)
ORDER BY {order} DESC, t.nodeid
LIMIT ?
""".replace("{columns}", _SLOW_COLUMNS)

_ORDERS = {"p95": "p95", "p50": "p50", "max": "p.max", "total": "p.total"}


# Over the whole history: counts, totals and maxima from the rollups, quantiles from
# their duration histograms (nearest rank, within half a bucket: 2.5 %).
_SLOW_WHOLE = """
, per_test AS (
    SELECT test_id, sum(timed) AS runs, sum(total) AS total, max(longest) AS max
    FROM streams GROUP BY test_id HAVING sum(timed) > 0
),
cum AS (
    SELECT test_id, bucket, sum(n) OVER (PARTITION BY test_id ORDER BY bucket) AS below,
           sum(n) OVER (PARTITION BY test_id) AS n
    FROM buckets
),
q AS (
    SELECT test_id, min(bucket) FILTER (WHERE below >= 0.5 * n) AS b50,
           min(bucket) FILTER (WHERE below >= 0.95 * n) AS b95
    FROM cum GROUP BY test_id
),
ranked AS (
    SELECT t.nodeid, p.runs, least({p50}, p.max) AS p50, least({p95}, p.max) AS p95, p.max,
           p.total,
           p.total / nullif(sum(p.total) OVER (), 0) AS share
    FROM per_test p JOIN q USING (test_id) JOIN tests t USING (test_id)
)
SELECT {columns} FROM ranked ORDER BY {order} DESC, nodeid LIMIT $limit
""".replace("{columns}", select_list(SlowTest, "ranked", {}))


def slow_tests(
    cur: duckdb.DuckDBPyConnection,
    window: Window,
    *,
    order: str = "p95",
    limit: int = 50,
    rollups: bool | None = None,
) -> list[SlowTest]:
    """The slowest tests of a window, by ``order`` (p95, p50, max or total)."""
    if window.empty:
        return []
    if rollups if rollups is not None else window.reads_rollups:
        with folded(cur) as reach:
            streams, params = streams_cte(window, rollups=True, reach=reach)
            buckets, more = buckets_cte(window, reach)
            sql = (
                streams
                + ", "
                + buckets.strip().removeprefix("WITH")
                + _SLOW_WHOLE.replace("{p50}", bucket_value_sql("q.b50"))
                .replace("{p95}", bucket_value_sql("q.b95"))
                .replace("{order}", _ORDERS_WHOLE.get(order, "p95"))
            )
            return structs(cur.execute(sql, {**params, **more, "limit": limit}), SlowTest)
    where, params_list = window.where()
    sql = _SLOW.replace("{order}", _ORDERS.get(order, "p95")).replace("{window}", where)
    return structs(cur.execute(sql, [*params_list, limit]), SlowTest)


_ORDERS_WHOLE = {"p95": "p95", "p50": "p50", "max": "max", "total": "total"}
