"""`HeartbeatMonitor`: notices when the application stops calling `heartbeat()`.

A daemon thread checks every ``check_interval`` seconds. When the last heartbeat is older
than ``timeout``, it logs ``application_appears_hung`` once, with the stack of every
thread; the next heartbeat logs ``application_recovered`` with how long the hang lasted.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from ._capture import thread_stacks
from ._client import DatacatClient

__all__ = ["HeartbeatMonitor"]

logger = logging.getLogger("datacat")


class _EventSink(Protocol):
    def log_event(self, name: str, data: Any = None) -> None: ...


class HeartbeatMonitor:
    """Logs hang and recovery events to ``target``: a `Session`, or a `DatacatClient`
    together with ``session_id``."""

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
        self._lock = threading.Lock()
        self._last_heartbeat = time.monotonic()
        self._hung = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _log(self, name: str, data: dict[str, Any]) -> None:
        try:
            if isinstance(self.target, DatacatClient):
                self.target.log_event(str(self.session_id), name, data)
            else:
                self.target.log_event(name, data)
        except Exception:
            logger.warning("datacat: could not log %s", name, exc_info=True)

    def _check(self) -> None:
        with self._lock:
            silent = time.monotonic() - self._last_heartbeat
            if self._hung or silent <= self.timeout:
                return
            self._hung = True
        self._log(
            "application_appears_hung",
            {
                "seconds_since_heartbeat": round(silent, 3),
                "timeout": self.timeout,
                "threads": thread_stacks(),
            },
        )

    def _run(self) -> None:
        while not self._stop.wait(self.check_interval):
            try:
                self._check()
            except Exception:  # pragma: no cover - _check logs its own failures
                logger.exception("datacat: heartbeat monitor error")

    def heartbeat(self) -> None:
        """The application is alive; logs ``application_recovered`` after a hang."""
        now = time.monotonic()
        with self._lock:
            hang_began, was_hung = self._last_heartbeat, self._hung
            self._last_heartbeat = now
            self._hung = False
        if was_hung:
            self._log("application_recovered", {"hang_duration": round(now - hang_began, 3)})

    def start(self) -> HeartbeatMonitor:
        """Start watching (the clock starts now); returns self."""
        if self.is_running():
            return self
        with self._lock:
            self._last_heartbeat = time.monotonic()
            self._hung = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="datacat-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching; returns promptly."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    def is_running(self) -> bool:
        """Whether the monitor thread runs."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()
