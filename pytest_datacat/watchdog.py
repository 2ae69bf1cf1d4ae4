"""Hang detection for tests: the client's `HangDetector`, watching the test that runs.

Every test start and finish is a heartbeat; between tests (collection, the end of the
session) nothing is watched. When one test runs longer than the timeout, the watchdog
reports ``application_appears_hung`` once, with the stacks of every thread of the test
process; when that test finishes it reports ``application_recovered``. It never
interrupts the test: killing is pytest-timeout's job, and both work side by side.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from datacat_client import thread_stacks

# The detector is the one behind the client's HeartbeatMonitor; it is not part of the
# client's public API, and this plugin ships in the same distribution.
from datacat_client._heartbeat import Hang, HangDetector

__all__ = ["HangWatchdog"]

Report = Callable[[str, dict[str, Any]], None]


class HangWatchdog:
    """Watches one test at a time (the process runs one test at a time)."""

    def __init__(
        self,
        timeout: float,
        report: Report,
        *,
        worker: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self._report = report
        self._worker = worker
        self._detector = HangDetector(
            timeout,
            self._hung,
            self._recovered,
            check_interval=min(1.0, max(0.05, timeout / 4)),
            name="datacat-watchdog",
            clock=clock,
        )
        self._detector.idle()

    def start(self) -> HangWatchdog:
        self._detector.start()
        return self

    def stop(self) -> None:
        self._detector.stop()

    def check(self) -> None:
        """Look once (its thread does this a few times per timeout)."""
        self._detector.check()

    def test_started(self, nodeid: str) -> None:
        self._detector.beat(nodeid)

    def test_finished(self, nodeid: str) -> None:
        self._detector.idle()

    def _hung(self, hang: Hang) -> None:
        self._report(
            "application_appears_hung",
            {
                "nodeid": hang.subject,
                "seconds_since_heartbeat": hang.silent,
                "timeout": self.timeout,
                "worker": self._worker,
                "pid": os.getpid(),
                "threads": thread_stacks(),
            },
        )

    def _recovered(self, hang: Hang, duration: float) -> None:
        self._report(
            "application_recovered",
            {
                "nodeid": hang.subject,
                "hang_duration": duration,
                "timeout": self.timeout,
                "worker": self._worker,
            },
        )
