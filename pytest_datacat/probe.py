"""Measurements taken where a test runs: CPU time, resident memory, exception, markers.

Registered in every process that runs tests (the only process, or each xdist worker).
It attaches a small dict to each report as ``report.datacat``; pytest-xdist carries
extra report attributes to the controller, where the recorder reads them.

Cheap by design (no helper process per test, unlike pytest-monitor): CPU time is
``time.process_time()`` and memory is one ``pread`` of ``/proc/self/statm`` on a file
descriptor kept open, a few microseconds per test. Where there is no ``/proc`` (macOS,
Windows) the memory change is not recorded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from typing import Any

import pytest

__all__ = ["Probe"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096  # no sysconf: Windows
_START = pytest.StashKey[tuple[float, int | None]]()


class _Statm:
    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self._fd = None

    def rss(self) -> int | None:
        """Resident set size in bytes, or None where /proc is not available."""
        if self._fd is None:
            return None
        try:
            fields = os.pread(self._fd, 64, 0).split()
            return int(fields[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            return None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _first_line(text: str, limit: int = 2000) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:limit]


class Probe:
    """The per-test measurements, as pytest hooks."""

    def __init__(self) -> None:
        self._statm = _Statm()

    def close(self) -> None:
        self._statm.close()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        try:
            extra: dict[str, Any] = {}
            if call.when == "setup":
                item.stash[_START] = (time.process_time(), self._statm.rss())
                extra["markers"] = sorted({m.name for m in item.iter_markers()})
            elif call.when == "teardown":
                start = item.stash.get(_START, None)
                if start is not None:
                    extra["cpu_time"] = max(0.0, time.process_time() - start[0])
                    rss = self._statm.rss()
                    if rss is not None and start[1] is not None:
                        extra["rss_delta"] = rss - start[1]
            excinfo = call.excinfo
            if excinfo is not None and not excinfo.errisinstance(pytest.skip.Exception):
                extra["exc_type"] = excinfo.typename
                extra["exc_message"] = _first_line(str(excinfo.value))
            if extra:
                report.datacat = extra  # type: ignore[attr-defined]
        except Exception:  # noqa: S110 - measuring must never break a test run
            pass
        return report
