"""Hang detection: a thread that notices a test running longer than the hang timeout.

Every test start and finish is a heartbeat. When one test runs longer than the
timeout, the watchdog reports ``application_appears_hung`` once, with the stacks of
every thread of the test process; when that test finishes it reports
``application_recovered``. It never interrupts the test: killing is pytest-timeout's
job, and both work side by side.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from datacat_client import thread_stacks

__all__ = ["HangWatchdog"]

Report = Callable[[str, dict[str, Any]], None]


class HangWatchdog:
    """Watches one test at a time (the process runs one test at a time)."""

    def __init__(self, timeout: float, report: Report, *, worker: str = "") -> None:
        self.timeout = timeout
        self._report = report
        self._worker = worker
        self._lock = threading.Lock()
        self._current: tuple[str, float] | None = None
        self._hung: tuple[str, float] | None = None
        self._stop = threading.Event()
        self._poll = min(1.0, max(0.05, timeout / 4))
        self._thread = threading.Thread(target=self._run, name="datacat-watchdog", daemon=True)
        self.hangs = 0

    def start(self) -> HangWatchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self._poll + 1.0)

    def test_started(self, nodeid: str) -> None:
        with self._lock:
            self._current = (nodeid, time.monotonic())

    def test_finished(self, nodeid: str) -> None:
        with self._lock:
            self._current = None
            hung, self._hung = self._hung, None
        if hung is not None and hung[0] == nodeid:
            self._report(
                "application_recovered",
                {
                    "nodeid": nodeid,
                    "hang_duration": time.monotonic() - hung[1],
                    "timeout": self.timeout,
                    "worker": self._worker,
                },
            )

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self._check()
            except Exception:  # noqa: S112 - a watchdog must outlive its own errors
                continue

    def _check(self) -> None:
        with self._lock:
            current = self._current
            if current is None or self._hung is not None:
                return
            elapsed = time.monotonic() - current[1]
            if elapsed <= self.timeout:
                return
            self._hung = current
        self.hangs += 1
        self._report(
            "application_appears_hung",
            {
                "nodeid": current[0],
                "seconds_since_heartbeat": elapsed,
                "timeout": self.timeout,
                "worker": self._worker,
                "pid": os.getpid(),
                "threads": thread_stacks(),
            },
        )
