"""Slow tests, one that got slower, and one that hangs for a moment."""

from __future__ import annotations

import os
import time


def test_report_generation() -> None:
    time.sleep(0.30)


def test_image_resize() -> None:
    time.sleep(0.15)


def test_search_index_rebuild(slowdown: float) -> None:
    """Regressed: SAMPLE_SLOWDOWN makes it slower (the demo uses 2 on some commits)."""
    time.sleep(0.20 * slowdown)


def test_waits_for_a_lock() -> None:
    """Stalls for SAMPLE_HANG seconds (default 1.2): long enough to be reported as hung
    with --datacat-hang-timeout=1, and then recovers."""
    time.sleep(float(os.environ.get("SAMPLE_HANG", "1.2")))
