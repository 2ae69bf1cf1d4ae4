"""Every outcome pytest knows."""

from __future__ import annotations

import os
import sys

import pytest


def test_addition() -> None:
    assert 1 + 1 == 2


def test_string_formatting() -> None:
    assert f"{3.14159:.2f}" == "3.14"


def test_dict_lookup_fails() -> None:
    prices = {"apple": 3, "pear": 4}
    print("looking up the banana price")
    assert prices.get("banana") == 5


def test_raises_keyerror() -> None:
    inventory: dict[str, int] = {}
    sys.stderr.write("inventory is empty\n")
    inventory["widget"] += 1  # KeyError


@pytest.mark.skip(reason="needs a GPU")
def test_needs_gpu() -> None:
    raise AssertionError("never runs")


@pytest.mark.skipif(sys.platform != "win32", reason="Windows only")
def test_windows_paths() -> None:
    assert os.sep == "\\"


@pytest.mark.xfail(reason="rounding bug #42", strict=True)
def test_known_rounding_bug() -> None:
    assert round(2.675, 2) == 2.68


@pytest.mark.xfail(reason="fixed upstream, marker not removed yet")
def test_fixed_but_still_marked() -> None:
    assert True


@pytest.fixture
def database() -> None:
    raise ConnectionError("database at 10.0.0.5:5432 refused the connection")


def test_needs_database(database: None) -> None:
    pass


class TestCart:
    def test_empty_cart_total(self) -> None:
        assert sum([]) == 0

    def test_cart_with_items(self) -> None:
        assert sum([3, 4]) == 7


def test_subtests(subtests: pytest.Subtests) -> None:
    for quantity in range(4):
        with subtests.test(msg="quantity", quantity=quantity):
            assert quantity * 2 != 6, f"quantity {quantity} doubles to 6"
