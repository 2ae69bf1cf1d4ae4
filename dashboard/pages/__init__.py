"""Page handlers, one module per area of the dashboard."""

from __future__ import annotations

from dashboard.pages.compare import ComparePages
from dashboard.pages.failures import FailurePages
from dashboard.pages.flaky import FlakyPages
from dashboard.pages.login import LoginPages
from dashboard.pages.metrics import MetricPages
from dashboard.pages.overview import OverviewPages
from dashboard.pages.quarantine import QuarantinePages
from dashboard.pages.runs import RunPages
from dashboard.pages.sessions import SessionPages
from dashboard.pages.slow import SlowPages
from dashboard.pages.sql import SqlPages
from dashboard.pages.test_history import TestHistoryPages

__all__ = ["PAGES"]

PAGES = [
    OverviewPages,
    RunPages,
    ComparePages,
    TestHistoryPages,
    FlakyPages,
    SlowPages,
    FailurePages,
    QuarantinePages,
    SessionPages,
    MetricPages,
    SqlPages,
    LoginPages,
]
