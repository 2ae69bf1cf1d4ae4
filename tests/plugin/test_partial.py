"""Which runs select only part of the suite (they are marked, and kept out of trends)."""

from __future__ import annotations

import pytest

from pytest_datacat.recorder import selects_part
from tests.plugin.conftest import plugins


@pytest.mark.parametrize(
    ("args", "partial"),
    [
        ((), False),
        (("tests",), False),  # a directory: how most CI jobs run the whole suite
        (("tests/test_a.py",), False),  # a file: nothing says it is not all of it
        (("-k", "slow"), True),
        (("-m", "not network"), True),
        (("--lf",), True),
        (("--sw",), True),
        (("--deselect", "tests/test_a.py::test_one"), True),
        (("tests/test_a.py::test_one",), True),
    ],
)
def test_what_counts_as_part_of_the_suite(
    pytester: pytest.Pytester, args: tuple[str, ...], partial: bool
) -> None:
    pytester.mkdir("tests")
    pytester.makepyfile(**{"tests/test_a.py": "def test_one(): pass\n"})
    config = pytester.parseconfigure(*plugins(), *args)
    assert selects_part(config) is partial
