"""Parametrized tests, including ids that a dashboard must show as text."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("n", range(8))
def test_square_is_non_negative(n: int) -> None:
    assert n * n >= 0


@pytest.mark.parametrize(
    "name",
    ["plain", "naïve café ✓", "<script>alert(1)</script>", 'quote"s', "new\nline"],
)
def test_awkward_names(name: str) -> None:
    assert isinstance(name, str)


@pytest.mark.parametrize(("a", "b", "expected"), [(1, 2, 3), (2, 2, 4), (10, -3, 7)])
def test_add(a: int, b: int, expected: int) -> None:
    assert a + b == expected
