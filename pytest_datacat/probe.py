"""Measurements taken where a test runs, on an xdist worker: CPU time, memory, markers.

It attaches a small dict to each report as ``report.datacat``; pytest-xdist carries
extra report attributes to the controller, where the recorder reads them. (Without
xdist the recorder, in the same process, measures the same things itself.)
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from pytest_datacat.measure import PHASE_CPU, MarkerNames, ResidentMemory

__all__ = ["Probe"]

_RSS_START = pytest.StashKey[int | None]()


def _first_line(text: str, limit: int = 2000) -> str:
    return text.split("\n", 1)[0][:limit]


class Probe:
    """The per-test measurements, as a pytest hook."""

    def __init__(self) -> None:
        self._memory = ResidentMemory()
        self._markers = MarkerNames()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        try:
            extra: dict[str, Any] = {}
            if call.when == "setup":
                item.stash[_RSS_START] = self._memory.read()
                extra["markers"] = self._markers(item)
            elif call.when == "teardown":
                spent = item.stash.get(PHASE_CPU, None)
                if spent is not None:
                    extra["cpu_time"] = max(0.0, spent)
                rss, rss_start = self._memory.read(), item.stash.get(_RSS_START, None)
                if rss is not None and rss_start is not None:
                    extra["rss_delta"] = rss - rss_start
            excinfo = call.excinfo
            if excinfo is not None and not excinfo.errisinstance(pytest.skip.Exception):
                extra["exc_type"] = excinfo.typename
                extra["exc_message"] = _first_line(str(excinfo.value))
            if extra:
                report.datacat = extra  # type: ignore[attr-defined]
        except Exception:  # noqa: S110 - measuring must never break a test run
            pass
        return report

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._memory.close()
