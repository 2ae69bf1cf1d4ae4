"""Hang detection: `HangDetector`, and the public `HeartbeatMonitor` built on it.

A `HangDetector` is a daemon thread that looks every ``check_interval`` seconds at the
last beat of what it watches. Once that is older than ``timeout``, it reports a hang,
once; the next beat reports the recovery, with how long the hang lasted. Between
`idle` and the next beat it watches nothing. `HeartbeatMonitor` watches a program that
calls `heartbeat()`; the pytest plugin's watchdog watches the test that runs.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ._capture import thread_stacks
from ._client import DatacatClient

__all__ = ["Hang", "HangDetector", "HeartbeatMonitor"]

logger = logging.getLogger("datacat")


@dataclasses.dataclass(frozen=True)
class Hang:
    #: What was watched (a test's node id; "" for a program's heartbeats).
    subject: str
    #: When its last beat came (on the detector's clock, ``time.monotonic``).
    since: float
    #: Seconds of silence when the hang was noticed.
    silent: float


class HangDetector:
    """Calls ``on_hang(hang)`` once when the last beat is older than ``timeout``, and
    ``on_recovered(hang, seconds)`` at the next beat or `idle`. Both run on the
    detector's thread (hang) or the caller's (recovery); their errors are logged."""

    def __init__(
        self,
        timeout: float,
        on_hang: Callable[[Hang], None],
        on_recovered: Callable[[Hang, float], None],
        *,
        check_interval: float,
        name: str = "datacat-heartbeat",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.check_interval = check_interval
        self._on_hang = on_hang
        self._on_recovered = on_recovered
        self._name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._subject = ""
        self._since: float | None = clock()  # None: nothing to watch
        self._hung: Hang | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self, subject: str = "") -> None:
        """Alive (now watching ``subject``): the clock starts again; ends a hang."""
        self._restart(self._clock(), subject)

    def idle(self) -> None:
        """Nothing to watch until the next beat; ends a hang."""
        self._restart(None, "")

    def _restart(self, since: float | None, subject: str) -> None:
        with self._lock:
            hung, self._hung = self._hung, None
            self._since, self._subject = since, subject
        if hung is not None:
            self._call(self._on_recovered, hung, self._clock() - hung.since)

    def check(self) -> Hang | None:
        """Look once (the thread does this every ``check_interval``); the new hang, if any."""
        with self._lock:
            since = self._since
            if since is None or self._hung is not None:
                return None
            silent = self._clock() - since
            if silent <= self.timeout:
                return None
            hang = self._hung = Hang(self._subject, since, silent)
        self._call(self._on_hang, hang)
        return hang

    @staticmethod
    def _call(report: Callable[..., None], *args: Any) -> None:
        try:
            report(*args)
        except Exception:  # a detector must outlive its reports' errors
            logger.warning("datacat: could not report a hang or recovery", exc_info=True)

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.check_interval):
            self.check()

    def start(self) -> HangDetector:
        """Start the thread; returns self."""
        if self.is_running():
            return self
        self._stop = stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(stop,), name=self._name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread; returns promptly."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    def is_running(self) -> bool:
        """Whether the thread runs."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()


class _EventSink(Protocol):
    def log_event(self, name: str, data: Any = None) -> None: ...


class HeartbeatMonitor:
    """Notices when the application stops calling `heartbeat()`: logs
    ``application_appears_hung`` once (with the stack of every thread), then
    ``application_recovered`` at the next heartbeat, to ``target``: a `Session`, or a
    `DatacatClient` together with ``session_id``."""

    def __init__(
        self,
        target: _EventSink | DatacatClient,
        session_id: str | None = None,
        timeout: float = 60,
        check_interval: float = 5,
    ) -> None:
        if isinstance(target, DatacatClient) and session_id is None:
            raise ValueError("a HeartbeatMonitor on a DatacatClient needs a session_id")
        self.target = target
        self.session_id = session_id
        self.timeout = timeout
        self.check_interval = check_interval
        self._detector = HangDetector(
            timeout, self._hung, self._recovered, check_interval=check_interval
        )

    def _log(self, name: str, data: dict[str, Any]) -> None:
        if isinstance(self.target, DatacatClient):
            self.target.log_event(str(self.session_id), name, data)
        else:
            self.target.log_event(name, data)

    def _hung(self, hang: Hang) -> None:
        self._log(
            "application_appears_hung",
            {
                "seconds_since_heartbeat": round(hang.silent, 3),
                "timeout": self.timeout,
                "threads": thread_stacks(),
            },
        )

    def _recovered(self, hang: Hang, duration: float) -> None:
        self._log("application_recovered", {"hang_duration": round(duration, 3)})

    def heartbeat(self) -> None:
        """The application is alive; logs ``application_recovered`` after a hang."""
        self._detector.beat()

    def start(self) -> HeartbeatMonitor:
        """Start watching (the clock starts now); returns self."""
        if not self._detector.is_running():
            self._detector.beat()
            self._detector.start()
        return self

    def stop(self) -> None:
        """Stop watching; returns promptly."""
        self._detector.stop()

    def is_running(self) -> bool:
        """Whether the monitor thread runs."""
        return self._detector.is_running()
