"""Cheap per-test measurements: CPU time of the test's thread, resident memory, markers.

CPU time counts the test's own phases (setup, call, teardown: `PhaseCpu`), as its
duration does; not what pytest and its plugins do between them, where a failure's
report (its traceback, with source and reprs) can cost tens of milliseconds, more than
the test itself.

No helper process per test (unlike pytest-monitor): CPU time is ``time.thread_time()``
of the thread that runs the test (the process clock sums every thread, and measured
here it cost ~100 µs per call while the sender thread worked, as much as a trivial
test); memory is one ``pread`` of ``/proc/self/statm`` on a descriptor kept open. Where
there is no ``/proc`` (macOS, Windows) the memory change is not recorded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator

import pytest

__all__ = ["PHASE_CPU", "MarkerNames", "PhaseCpu", "ResidentMemory", "cpu_time"]

cpu_time = time.thread_time

#: CPU seconds the item's phases took so far (its setup starts the count again: a rerun
#: is a new attempt).
PHASE_CPU = pytest.StashKey[float]()


class PhaseCpu:
    """Counts the CPU time of each test's setup, call and teardown into
    ``item.stash[PHASE_CPU]`` (a pytest plugin)."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        item.stash[PHASE_CPU] = 0.0
        return (yield from _counted(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        return (yield from _counted(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        return (yield from _counted(item))


def _counted(item: pytest.Item) -> Generator[None, None, None]:
    started = cpu_time()
    try:
        return (yield)
    finally:
        item.stash[PHASE_CPU] = item.stash.get(PHASE_CPU, 0.0) + cpu_time() - started


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class ResidentMemory:
    """Reads this process's resident set size."""

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self._fd = None

    def read(self) -> int | None:
        """Resident set size in bytes, or None where /proc is not available."""
        if self._fd is None:
            return None
        try:
            return int(os.pread(self._fd, 64, 0).split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            return None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class MarkerNames:
    """The names of the markers on a test and its parents, sorted, once each.

    A test's parents (its class, module, package) are shared by many tests: their
    markers are gathered once per parent, not walked again for every test.
    """

    def __init__(self) -> None:
        self._parents: dict[int, frozenset[str]] = {}

    def __call__(self, item: pytest.Item) -> list[str]:
        names = {mark.name for mark in item.own_markers}
        parent = item.parent
        if parent is not None:
            inherited = self._parents.get(id(parent))
            if inherited is None:
                inherited = self._parents[id(parent)] = frozenset(
                    mark.name for mark in parent.iter_markers()
                )
            names |= inherited
        return sorted(names)
