"""What an xdist worker does: watch its tests for hangs; results go through the controller.

Only the controller sends results. A hang, though, is seen where the test runs: the
worker's watchdog reports it, with the worker's thread stacks, through a session
object of its own attached to the run's session id (opened only when a test hangs).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from datacat_client import Session, create_session
from pytest_datacat.options import Options
from pytest_datacat.watchdog import HangWatchdog

__all__ = ["WorkerWatch"]


class WorkerWatch:
    def __init__(self, config: pytest.Config, options: Options) -> None:
        workerinput: dict[str, Any] = getattr(config, "workerinput", {})
        self._session_id = workerinput.get("datacat_session_id")
        self._worker = str(workerinput.get("workerid", ""))
        self._options = options
        self._session: Session | None = None
        self._lock = threading.Lock()
        self._watchdog = HangWatchdog(options.hang_timeout, self._report, worker=self._worker)
        if self._session_id:
            self._watchdog.start()

    def _report(self, name: str, data: dict[str, Any]) -> None:
        with self._lock:
            if self._session is None:
                opts = self._options
                # Same metadata as the controller's, so it makes no difference which
                # of the two session starts reaches the server first.
                self._session = create_session(
                    opts.url,
                    session_id=self._session_id,
                    token=opts.token,
                    name="pytest",
                    product=opts.project,
                    labels=opts.labels,
                    spool_dir=opts.spool_dir,
                    flush_timeout=opts.flush_timeout,
                    heartbeat_interval=opts.heartbeat_interval,
                )
            self._session.log_event(name, data)

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self._watchdog.test_started(nodeid)

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self._watchdog.test_finished(nodeid)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._watchdog.stop()
        if self._session is not None:
            self._session.close(timeout=min(2.0, self._options.flush_timeout))
