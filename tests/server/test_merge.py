"""Deep merge: the properties the state of a session relies on."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from datacat_server.store.merge import deep_merge
from tests.strategies import json_objects, json_values


def _leaves(
    value: Mapping[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, item in value.items():
        if isinstance(item, Mapping) and item:
            yield from _leaves(item, (*path, key))
        else:
            yield (*path, key), item


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def reference_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The rule, written as plainly as possible: the test's independent oracle."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = reference_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@given(json_objects, json_objects)
def test_every_leaf_of_the_patch_is_present_at_its_path(
    base: dict[str, Any], patch: dict[str, Any]
) -> None:
    merged = deep_merge(base, patch)
    for path, leaf in _leaves(patch):
        got = _at(merged, path)
        if isinstance(leaf, dict):  # an empty dict merges into whatever dict was there
            assert isinstance(got, dict)
        else:
            assert got == leaf


@given(json_objects, json_objects)
def test_keys_the_patch_does_not_mention_are_untouched(
    base: dict[str, Any], patch: dict[str, Any]
) -> None:
    merged = deep_merge(base, patch)
    for key, value in base.items():
        if key not in patch:
            assert merged[key] == value


@given(json_objects, st.text(max_size=8), json_values)
def test_a_non_dict_value_replaces_whatever_was_there(
    base: dict[str, Any], key: str, value: Any
) -> None:
    if isinstance(value, dict):
        value = [value]
    assert deep_merge(base, {key: value})[key] == value


@given(json_objects, json_objects)
def test_matches_the_reference_and_leaves_its_arguments_alone(
    base: dict[str, Any], patch: dict[str, Any]
) -> None:
    base_before, patch_before = copy.deepcopy(base), copy.deepcopy(patch)
    assert deep_merge(base, patch) == reference_merge(base, patch)
    assert base == base_before
    assert patch == patch_before


@given(st.lists(json_objects, max_size=6))
def test_folding_patches_equals_the_reference_fold(patches: list[dict[str, Any]]) -> None:
    ours: dict[str, Any] = {}
    theirs: dict[str, Any] = {}
    for patch in patches:
        ours = deep_merge(ours, patch)
        theirs = reference_merge(theirs, patch)
    assert ours == theirs


def test_results_do_not_alias_the_patch() -> None:
    patch = {"a": {"b": 1}}
    merged = deep_merge({}, patch)
    merged_again = deep_merge(merged, {"a": {"c": 2}})
    assert patch == {"a": {"b": 1}}
    assert merged == {"a": {"b": 1}}
    assert merged_again == {"a": {"b": 1, "c": 2}}


def test_ten_thousand_levels_deep_does_not_recurse() -> None:
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(10_000):
        cursor["k"] = {}
        cursor = cursor["k"]
    cursor["leaf"] = 1
    merged = deep_merge(deep, deep)
    depth = 0
    node = merged
    while "k" in node:
        node = node["k"]
        depth += 1
    assert depth == 10_000
    assert node == {"leaf": 1}
