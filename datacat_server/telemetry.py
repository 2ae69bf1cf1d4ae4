"""The server's metrics for Prometheus: its own health, and how each project's tests do.

One `Telemetry` per app (`create_app` builds it and keeps it on ``app.state``), with a
`CollectorRegistry` of its own: never the library's global one, which every app in a
process would share. `prometheus_client` writes the exposition (escaping, types, and
OpenMetrics when the scraper asks for it).

Counted as things happen:

- requests, by the route's path template (``/api/runs/{run_id}``, never the raw
  path, which carries ids), method and status; one ``route="unmatched"`` for paths no
  route serves. The exposition's own requests are left out, so that scraping adds
  nothing to the load it reports (Prometheus reports its scrapes itself: ``up``,
  ``scrape_duration_seconds``);
- refused requests, by a reason from a fixed set (`REASONS`), the exposition's
  included (a scraper with a wrong token shows up as ``unauthorized``). Refusals made
  before a request reaches the app are not seen: the head bound and the connection
  bound of `http_head.py` (431, 408, 503) act in the HTTP protocol, under the app;
- test results stored and the time each commit of records took, reported by the
  writer (`Writer.observer`).

Read when scraped: the writer's queue, the database's files, and per project the latest
finished run of each recent branch and the number of flaky tests (`queries/latest.py`).
Every label's values come from a bounded set: routes (the app's), methods (`METHODS`,
else ``other``), statuses (the server's), reasons, and at most ``projects`` projects
with ``branches`` branches each, so the number of series never depends on the number
of tests, runs or paths requested.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from datacat_server.errors import StoreError, WriterBusyError
from datacat_server.queries import window
from datacat_server.queries.latest import BranchRun, flaky_counts, latest_runs

if TYPE_CHECKING:
    from litestar.types import Message, Scope

    from datacat_server.store import StoreBase

__all__ = [
    "DEFAULT_BRANCHES",
    "DEFAULT_CACHE_SECONDS",
    "DEFAULT_FLAKY_RUNS",
    "DEFAULT_PROJECTS",
    "METHODS",
    "REASONS",
    "UNMATCHED",
    "Telemetry",
]

log = logging.getLogger("datacat.telemetry")

#: Projects (most recently run first) and branches per project the gauges cover.
DEFAULT_PROJECTS = 50
DEFAULT_BRANCHES = 10
#: Recent runs of a project the flaky count looks at: the default window of
#: ``GET /api/flaky`` and the flaky page.
DEFAULT_FLAKY_RUNS = 100
#: Seconds the per-project gauges are reused before they are read again. They change
#: when runs finish, minutes apart; a read costs up to ~0.6 s on a store of 10M results
#: (benchmarks/prometheus.py), which a scrape every 15 s (or two Prometheus servers)
#: should not pay each time.
DEFAULT_CACHE_SECONDS = 30.0

#: The route label of a request no route serves.
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: A refusal's reason, by status; 503 is split by its cause (see `_CAUSES`), any other
#: 4xx is ``other``.
REASONS = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    413: "too_large",
    429: "rate_limited",
}
_CAUSES: tuple[tuple[type[Exception], str], ...] = (
    (WriterBusyError, "writer_busy"),
    (StoreError, "storage"),
)
_UNAVAILABLE = "unavailable"  # a 503 of another cause
_OTHER = "other"
_ALL_REASONS = (*REASONS.values(), *(reason for _, reason in _CAUSES), _UNAVAILABLE, _OTHER)
#: Where `after_exception` leaves the cause of an answer for `before_send`.
_CAUSE_KEY = "datacat_rejected_cause"

#: A durable commit costs 2-4 ms here; a big group or a slow disk, much more.
COMMIT_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class Telemetry:
    """The metrics of one app. ``exposition_path`` is the route that serves them."""

    def __init__(
        self,
        *,
        exposition_path: str,
        projects: int = DEFAULT_PROJECTS,
        branches: int = DEFAULT_BRANCHES,
        flaky_runs: int = DEFAULT_FLAKY_RUNS,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
    ) -> None:
        self.exposition_path = exposition_path
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "datacat_http_requests",
            "HTTP requests answered, by route template, method and status"
            " (scrapes of the metrics themselves left out).",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "datacat_http_rejected",
            "Requests refused, by reason: invalid (400), unauthorized (401), forbidden"
            " (403), not_found (404), too_large (413), rate_limited (429), writer_busy"
            " and storage (503), unavailable (another 503), other (another 4xx).",
            ["reason"],
            registry=self.registry,
        )
        for reason in _ALL_REASONS:
            self.rejected.labels(reason)  # every reason exists from the start, at 0
        self.results = Counter(
            "datacat_results_ingested",
            "Test results stored (a result sent again is stored once, and counted once).",
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "datacat_writer_commit_seconds",
            "Seconds each write transaction of records took (inserts and durable commit).",
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        self._store: StoreBase | None = None
        self.registry.register(_StoreCollector(self))
        self.gauges = _ProjectCollector(
            self,
            projects=projects,
            branches=branches,
            flaky_runs=flaky_runs,
            cache_seconds=cache_seconds,
        )
        self.registry.register(self.gauges)

    # -- the store ---------------------------------------------------------------------

    @property
    def store(self) -> StoreBase | None:
        return self._store

    def attach(self, store: StoreBase) -> None:
        """Observe this store's writer and read it when scraped (the app's lifespan)."""
        self._store = store
        store.writer.observer = self.on_commit

    def detach(self, store: StoreBase) -> None:
        if store.writer.observer == self.on_commit:
            store.writer.observer = None
        if self._store is store:
            self._store = None

    def on_commit(self, results: int, seconds: float) -> None:
        """The writer committed ``results`` test results in ``seconds`` (its thread)."""
        if results:
            self.results.inc(results)
        self.commit_seconds.observe(seconds)

    # -- requests (Litestar's hooks) ---------------------------------------------------

    async def after_exception(self, exc: Exception, scope: Scope) -> None:
        """Note why a request failed when the status alone does not say (503)."""
        for kind, cause in _CAUSES:
            if isinstance(exc, kind):
                scope["state"][_CAUSE_KEY] = cause
                return

    async def before_send(self, message: Message, scope: Scope) -> None:
        """Count an answer as it starts (every answer of the app passes here, the rate
        limiter's and the router's 404 included)."""
        if message["type"] != "http.response.start":
            return
        status = int(message["status"])
        route = scope.get("path_template") or UNMATCHED
        if route != self.exposition_path:
            method = scope.get("method", "")
            self.requests.labels(route, method if method in METHODS else "other", str(status)).inc()
        reason = _reason(status, scope.get("state", {}).get(_CAUSE_KEY))
        if reason is not None:
            self.rejected.labels(reason).inc()

    # -- the exposition --------------------------------------------------------------

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The metrics in the format the ``Accept`` header asks for (Prometheus' text
        format by default), and its content type. Reads the store: not on the loop."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


def _reason(status: int, cause: str | None) -> str | None:
    if status == 503:
        return cause or _UNAVAILABLE
    if 400 <= status < 500:
        return REASONS.get(status, _OTHER)
    return None


class _StoreCollector(Collector):
    """The writer's queue and the database's size, read when scraped."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        store = self._telemetry.store
        if store is None:
            return []
        return self._families(store.writer.pending, _file_sizes(store.files()))

    @staticmethod
    def _families(
        pending: int | None = None, sizes: Sequence[tuple[str, int]] = ()
    ) -> list[Metric]:
        queue = GaugeMetricFamily(
            "datacat_writer_queue_depth", "Write requests waiting for the writer."
        )
        if pending is not None:
            queue.add_metric([], pending)
        size = GaugeMetricFamily(
            "datacat_database_bytes",
            "Size of the DuckDB file (file=database) and its write-ahead log (file=wal).",
            labels=["file"],
        )
        for name, value in sizes:
            size.add_metric([name], value)
        return [queue, size]


def _file_sizes(paths: Sequence[Path]) -> list[tuple[str, int]]:
    """The database file's size and its WAL's (0 when there is none, after a checkpoint);
    nothing for a store without local files (a lake)."""
    sizes: list[tuple[str, int]] = []
    for path in paths[:1]:
        sizes += _sizes_of(path)
    return sizes


def _sizes_of(path: Path) -> list[tuple[str, int]]:
    sizes = []
    for name, file in (("database", path), ("wal", path.with_name(path.name + ".wal"))):
        try:
            sizes.append((name, file.stat().st_size))
        except FileNotFoundError:
            sizes.append((name, 0))
    return sizes


class _ProjectCollector(Collector):
    """Per project and branch, the latest finished run; per project, its flaky tests.

    Read from the store when scraped, at most every ``cache_seconds`` (one scrape reads,
    the scrapes meanwhile, and any waiting for it, get its answer).
    """

    def __init__(
        self,
        telemetry: Telemetry,
        *,
        projects: int,
        branches: int,
        flaky_runs: int,
        cache_seconds: float,
    ) -> None:
        self._telemetry = telemetry
        self.projects = projects
        self.branches = branches
        self.flaky_runs = flaky_runs
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._read_at = -float("inf")
        #: Seconds the last read of the store took (``datacat_project_gauges_seconds``).
        self.last_read_seconds = 0.0

    def describe(self) -> Iterable[Metric]:
        return [*self._families([], {}), self._took(None)]

    def collect(self) -> Iterator[Metric]:
        store = self._telemetry.store
        if store is None:
            return
        with self._lock:
            if time.monotonic() - self._read_at >= self.cache_seconds:
                started = time.perf_counter()
                self._cached = self._read(store)
                self.last_read_seconds = time.perf_counter() - started
                self._read_at = time.monotonic()
            cached = self._cached
        yield from cached
        yield self._took(self.last_read_seconds)

    @staticmethod
    def _took(seconds: float | None) -> Metric:
        took = GaugeMetricFamily(
            "datacat_project_gauges_seconds",
            "Seconds the last read of the per-project gauges from the store took.",
        )
        if seconds is not None:
            took.add_metric([], seconds)
        return took

    def _read(self, store: StoreBase) -> list[Metric]:
        cur = store.reader()
        try:
            names = [name for name, _ in window.projects(cur)[: self.projects]]
            runs = latest_runs(cur, names, branches=self.branches)
            flaky = flaky_counts(cur, names, runs=self.flaky_runs)
        except Exception:
            # The server's own metrics stay available when the store cannot be read.
            log.exception("could not read the per-project gauges")
            return []
        return self._families(runs, flaky)

    @staticmethod
    def _families(runs: Sequence[BranchRun], flaky: dict[str, int]) -> list[Metric]:
        labels = ["project", "branch"]
        rate = GaugeMetricFamily(
            "datacat_project_pass_ratio",
            "Passed / (passed + failed + errors) in the latest finished run of the branch.",
            labels=labels,
        )
        failures = GaugeMetricFamily(
            "datacat_project_failures",
            "Failed and errored tests in the latest finished run of the branch.",
            labels=labels,
        )
        duration = GaugeMetricFamily(
            "datacat_project_duration_seconds",
            "How long the latest finished run of the branch took.",
            labels=labels,
        )
        received = GaugeMetricFamily(
            "datacat_project_latest_run_timestamp_seconds",
            "When the server received the start of the latest finished run of the branch.",
            labels=labels,
        )
        flaky_tests = GaugeMetricFamily(
            "datacat_project_flaky_tests",
            "Flaky tests over the project's recent runs (the flaky page's default window).",
            labels=["project"],
        )
        for run in runs:
            key = [run.project, run.branch]
            if run.pass_rate is not None:
                rate.add_metric(key, run.pass_rate)
            failures.add_metric(key, run.failed)
            if run.duration is not None:
                duration.add_metric(key, run.duration)
            received.add_metric(key, run.received_at)
        for project, count in sorted(flaky.items()):
            flaky_tests.add_metric([project], count)
        return [rate, failures, duration, received, flaky_tests]
