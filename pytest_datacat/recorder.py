"""The recorder: one object, registered when DataCat is on, that turns a test run into records.

It lives in the process that sees every report: the only process, or the pytest-xdist
controller (workers run a `probe.Probe` and a hang watchdog, and send nothing else).
Every hook catches its own errors: the plugin never changes a run's outcome, exit
code or output beyond its one summary line, and never hangs it (the end-of-run flush
is bounded by the flush timeout; what is not sent by then is spooled).
"""

from __future__ import annotations

import functools
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pytest

from datacat_client import Session, create_session, wire
from pytest_datacat.measure import PHASE_CPU, MarkerNames, ResidentMemory
from pytest_datacat.metadata import collect_environment
from pytest_datacat.options import Options
from pytest_datacat.results import Attempt, subtest_fields
from pytest_datacat.summary import Highlights, RunSummary
from pytest_datacat.watchdog import HangWatchdog

__all__ = ["Recorder", "run_status"]

P = ParamSpec("P")
R = TypeVar("R")

_STATUS = {
    0: "passed",
    1: "failed",
    2: "interrupted",
    3: "internal_error",
    4: "usage_error",
    5: "no_tests",
}


def run_status(exitstatus: int, session: pytest.Session) -> tuple[str, str]:
    """A run's status and the reason pytest gave, from its exit status."""
    status = _STATUS.get(int(exitstatus), f"exit_{int(exitstatus)}")
    reason = session.shouldfail or session.shouldstop
    if status == "failed" and reason:
        status = "stopped"  # -x / --maxfail: the run ended early
    return status, str(reason) if reason else ""


def _guarded(method: Callable[P, R]) -> Callable[P, R | None]:
    """Run a hook body, count its time, and swallow (but remember) its errors."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
        self = args[0]
        assert isinstance(self, Recorder)
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            self.errors.append(f"{method.__name__}: {type(exc).__name__}: {exc}")
            return None
        finally:
            self.overhead += time.perf_counter() - start

    return wrapper


#: Longest waits for the server's quarantine list (at the start) and its classification
#: of the run (at the end), in seconds (never more than the flush timeout).
QUARANTINE_WAIT = 5.0
CLASSIFICATION_WAIT = 3.0


def selects_part(config: pytest.Config) -> bool:
    """Whether the run selected only part of the suite: by keyword or marker, by the
    last failures, stepwise, deselected tests, or node ids (``file.py::test``). Files
    and directories given as arguments do not count: ``pytest tests`` is how most CI
    jobs run the whole suite, and nothing tells it apart from running part of one."""
    option = config.option
    selecting = ("keyword", "markexpr", "lf", "stepwise", "deselect")
    if any(getattr(option, name, None) for name in selecting):
        return True
    return config.args_source == pytest.Config.ArgsSource.ARGS and any(
        "::" in arg for arg in config.args
    )


class Recorder:
    """Hooks that record one test run as one DataCat session."""

    def __init__(self, config: pytest.Config, options: Options) -> None:
        self.config = config
        self.options = options
        #: The DataCat session this run is recorded in (pytest's own session is
        #: ``pytest.Session``, the argument of the session hooks).
        self.datacat: Session | None = None
        self.errors: list[str] = []
        self.overhead = 0.0
        self.results = 0
        self.outcomes: dict[str, int] = {}
        self._attempts: dict[str, Attempt] = {}
        self._reruns: dict[str, int] = {}
        self._started = time.time()
        self._metadata: threading.Thread | None = None
        self._watchdog: HangWatchdog | None = None
        self.summary: RunSummary | None = None
        self.highlights = Highlights()
        #: Chosen now, so that xdist workers can be told it before the session starts.
        self.session_id = str(uuid.uuid4())
        #: Tests run in this process (no xdist): measure them here, and find their
        #: items (for markers) by node id.
        self._local = self._runs_tests_here()
        self._memory = ResidentMemory() if self._local else None
        self._items: dict[str, pytest.Item] = {}
        self._markers = MarkerNames()
        #: Quarantine (``--datacat-quarantine``): the project's quarantined tests, as the
        #: server said at the start (None: not asked, or no answer), and why not.
        self.quarantined: frozenset[str] | None = None
        self.quarantine_error: str | None = None
        #: Tests whose final attempt failed (for quarantine and the exit status).
        self.failed_nodeids: set[str] = set()
        #: The server's classification of this run's failures (or why there is none).
        self.classification: dict[str, Any] | None = None
        self.classification_error: str | None = None

    # -- helpers --------------------------------------------------------------------

    def _send(self, cls: type[Any], **fields: Any) -> None:
        datacat = self.datacat
        if datacat is not None:
            fields.setdefault("timestamp", time.time())
            datacat.submit(cls(session_id=datacat.session_id, seq=datacat.next_seq(), **fields))

    def _log_event(self, name: str, data: dict[str, Any]) -> None:
        if self.datacat is not None:
            self.datacat.log_event(name, data)

    def _runs_tests_here(self) -> bool:
        """False on an xdist controller: the tests run in the workers."""
        numprocesses = getattr(self.config.option, "numprocesses", None)
        dist = getattr(self.config.option, "dist", "no")
        return not numprocesses and dist == "no"

    # -- session ----------------------------------------------------------------------

    @_guarded
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        opts = self.options
        self.datacat = create_session(
            opts.url,
            session_id=self.session_id,
            token=opts.token,
            name="pytest",
            product=opts.project,
            labels=opts.labels,
            spool_dir=opts.spool_dir,
            flush_timeout=opts.flush_timeout,
            heartbeat_interval=opts.heartbeat_interval,
            sender_options={"max_queue": 100_000, "linger": 1.0, "batch_size": 5000},
        )
        self._started = time.time()
        if opts.quarantine:
            self._fetch_quarantine()
        # git takes a few processes: gather it off the test run's critical path.
        self._metadata = threading.Thread(
            target=self._send_run_start, name="datacat-metadata", daemon=True
        )
        self._metadata.start()
        if self._runs_tests_here():
            self._watchdog = HangWatchdog(opts.hang_timeout, self._log_event).start()

    def _fetch_quarantine(self) -> None:
        """Ask for the project's quarantined tests, waiting a few seconds at most; with
        no answer nothing is quarantined (a build never goes green for lack of one)."""
        datacat = self.datacat
        if datacat is None:
            return
        try:
            found = datacat.client.quarantined(
                self.options.project, timeout=min(QUARANTINE_WAIT, self.options.flush_timeout)
            )
        except Exception as exc:  # DatacatError mostly; anything else must not stop the run
            self.quarantine_error = str(exc) or type(exc).__name__
            return
        self.quarantined = frozenset(str(entry.get("nodeid", "")) for entry in found)

    def _send_run_start(self) -> None:
        try:
            config = self.config
            env = collect_environment(Path(str(config.rootpath)), base=self.options.base)
            plugins = sorted(
                {
                    f"{dist.project_name}-{dist.version}"
                    for _, dist in config.pluginmanager.list_plugin_distinfo()
                }
            )
            workers = getattr(config.option, "numprocesses", None)
            self._send(
                wire.RunStart,
                timestamp=self._started,
                project=self.options.project,
                branch=env.branch,
                commit=env.commit,
                dirty=env.dirty,
                ci_provider=env.ci_provider,
                ci_url=env.ci_url,
                python_version=env.python_version,
                python_implementation=env.python_implementation,
                platform=env.platform,
                hostname=env.hostname,
                pytest_version=pytest.__version__,
                plugins=plugins,
                args=[str(arg) for arg in config.invocation_params.args],
                workers=workers if isinstance(workers, int) else 0,
                partial=selects_part(config),
                base_branch=env.base_branch,
                base_commit=env.base_commit,
            )
        except Exception as exc:
            self.errors.append(f"run metadata: {type(exc).__name__}: {exc}")

    # -- tests ------------------------------------------------------------------------

    @_guarded
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self._local:
            self._items = {item.nodeid: item for item in session.items}

    # The two hooks below run for every test and every phase: they keep their own time
    # and errors inline rather than through `_guarded` (a call layer per hook per test).

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        start = time.perf_counter()
        try:
            now = time.time()
            memory = self._memory
            self._attempts[nodeid] = (
                Attempt(nodeid, now, rss_start=memory.read())
                if memory is not None
                else Attempt(nodeid, now)
            )
            datacat = self.datacat
            if datacat is not None:
                datacat.submit(
                    wire.TestStart(
                        session_id=self.session_id,
                        seq=datacat.next_seq(),
                        timestamp=now,
                        nodeid=nodeid,
                    )
                )
            if self._watchdog is not None:
                self._watchdog.test_started(nodeid)
        except Exception as exc:
            self.errors.append(f"pytest_runtest_logstart: {type(exc).__name__}: {exc}")
        self.overhead += time.perf_counter() - start

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        start = time.perf_counter()
        try:
            self._report(report)
        except Exception as exc:
            self.errors.append(f"pytest_runtest_logreport: {type(exc).__name__}: {exc}")
        self.overhead += time.perf_counter() - start

    def _report(self, report: pytest.TestReport) -> None:
        if "context" in report.__dict__:  # a subtest's report
            self._record(subtest_fields(report, self.options.capture))
            return
        nodeid = report.nodeid
        attempt = self._attempts.get(nodeid)
        if attempt is None:  # a report without a logstart (a crashed xdist worker)
            attempt = self._attempts[nodeid] = Attempt(nodeid)
        attempt.add(report)
        when: str = report.when  # xdist reports a crashed worker's test with "???"
        if when == "teardown" or when == "???":  # noqa: PLR1714 - cheaper than a set here
            del self._attempts[nodeid]
            if self._watchdog is not None:
                self._watchdog.test_finished(nodeid)
            self._finish(attempt)

    def _measured(self, attempt: Attempt) -> dict[str, Any] | None:
        """CPU time, memory change and markers of a test that ran in this process."""
        if self._memory is None:  # the tests run on xdist workers: their probes measure
            return None
        measured: dict[str, Any] = {}
        rss = self._memory.read()
        if rss is not None and attempt.rss_start is not None:
            measured["rss_delta"] = rss - attempt.rss_start
        item = self._items.get(attempt.nodeid)
        if item is not None:
            spent = item.stash.get(PHASE_CPU, None)
            if spent is not None:
                measured["cpu_time"] = max(0.0, spent)
            measured["markers"] = self._markers(item)
        return measured

    def _finish(self, attempt: Attempt) -> None:
        fields = attempt.fields(self.options.capture, self._measured(attempt))
        number = self._reruns.get(attempt.nodeid, 0)
        if number:
            fields["attempt"] = number
        if attempt.rerun:
            self._reruns[attempt.nodeid] = number + 1
        elif number:
            del self._reruns[attempt.nodeid]
        self._record(fields)

    def _record(self, fields: dict[str, Any]) -> None:
        self.results += 1
        outcome = fields["outcome"]
        if (outcome == "failed" or outcome == "error") and fields.get("final", True):  # noqa: PLR1714
            self.failed_nodeids.add(fields["nodeid"])
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        duration = fields["setup_duration"] + fields["call_duration"] + fields["teardown_duration"]
        self.highlights.add(
            fields["nodeid"],
            fields.get("subtest"),
            outcome,
            duration,
            fields.get("exc_message"),
            exc_type=fields.get("exc_type"),
        )
        self._send(wire.TestResult, **fields)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist: tell each worker the run's session, for its hang reports."""
        node.workerinput["datacat_session_id"] = self.session_id

    @_guarded
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if not report.failed:
            return
        attempt = Attempt(report.nodeid or "<collection>")
        attempt.add(report)  # type: ignore[arg-type]
        attempt.outcome, attempt.phase = "error", "collect"
        self._record(attempt.fields(self.options.capture))

    # -- the end ----------------------------------------------------------------------

    @_guarded
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        finishing = time.perf_counter()
        sent_before = self.datacat.stats.send_seconds if self.datacat is not None else 0.0
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._metadata is not None:
            self._metadata.join(5.0)
        if self._only_quarantined_failed(exitstatus):
            # What the exit status would be without the quarantined tests' failures.
            exitstatus = session.exitstatus = pytest.ExitCode.OK
        status, reason = run_status(exitstatus, session)
        counts = self._pytest_counts()
        duration = time.time() - self._started
        self._send(
            wire.RunFinish,
            exit_status=int(exitstatus),
            status=status,
            reason=reason,
            counts=counts,
            duration=duration,
        )
        self._send(wire.SessionEnd)
        delivered = False
        if self.datacat is not None:
            # The one wait for the server: a slow one gets the flush timeout, an absent
            # one none (see datacat_client._policy). Closing then spools what is left
            # at once, so that the summary below is final.
            delivered = self.datacat.flush(self.options.flush_timeout)
            if delivered:
                self._fetch_classification()
            elif self.failed_nodeids:
                # The server has not got the run, so it cannot judge its failures.
                self.classification_error = "the server has not stored this run"
            self.datacat.close(timeout=0.0)
        self.summary = RunSummary.build(
            recorder=self,
            status=status,
            counts=counts,
            duration=duration,
            delivered=delivered,
            # the hooks so far, the posts during the run, and this hook with its wait for
            # the server (up to the flush timeout when the server is slow)
            overhead=self.overhead + sent_before + (time.perf_counter() - finishing),
        )

    def _only_quarantined_failed(self, exitstatus: int) -> bool:
        quarantined = self.quarantined
        return bool(
            quarantined
            and exitstatus == pytest.ExitCode.TESTS_FAILED
            and self.failed_nodeids
            and self.failed_nodeids <= quarantined
        )

    @property
    def quarantined_failures(self) -> list[str]:
        """The tests that failed and were quarantined."""
        return sorted(self.failed_nodeids & (self.quarantined or frozenset()))

    def _fetch_classification(self) -> None:
        """The server's verdict on this run's failures, for the closing line."""
        datacat = self.datacat
        if datacat is None:
            return
        try:
            self.classification = datacat.client.run_classification(
                datacat.session_id, timeout=min(CLASSIFICATION_WAIT, self.options.flush_timeout)
            )
        except Exception as exc:
            self.classification_error = str(exc) or type(exc).__name__

    def _pytest_counts(self) -> dict[str, int]:
        """The counts pytest itself prints (``3 passed, 1 failed, 2 subtests passed``)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        stats = getattr(reporter, "stats", None)
        if not isinstance(stats, dict):
            return dict(self.outcomes)
        return {
            key: sum(1 for rep in reports if getattr(rep, "count_towards_summary", True))
            for key, reports in stats.items()
            if key
        }

    @_guarded
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.summary is None:
            return
        terminalreporter.write_line(self.summary.line())
        self.summary.write_github_step_summary()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._memory is not None:
            self._memory.close()
        datacat, self.datacat = self.datacat, None
        if datacat is not None:  # closed at the session's end already, unless it failed
            try:
                datacat.close(timeout=min(2.0, self.options.flush_timeout))
            except Exception as exc:  # pragma: no cover - close never raises by contract
                sys.stderr.write(f"datacat: closing the session failed: {exc}\n")
