"""Deep merge of session state: a dict merges key by key, recursively; anything else replaces."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["deep_merge"]


def deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``patch`` merged in, leaving both arguments unchanged.

    Subtrees that the patch does not touch are shared with ``base``, not copied, so a
    small patch on a large state costs little. Callers must treat results as immutable.
    Iterative, so a deeply nested patch cannot exhaust the interpreter's stack.
    """
    result = dict(base)
    # Each entry: (the dict being built, the patch to merge into it).
    stack: list[tuple[dict[str, Any], Mapping[str, Any]]] = [(result, patch)]
    while stack:
        target, changes = stack.pop()
        for key, value in changes.items():
            current = target.get(key)
            if isinstance(value, Mapping) and isinstance(current, Mapping):
                merged = dict(current)
                target[key] = merged
                stack.append((merged, value))
            elif isinstance(value, Mapping):
                # A fresh dict from the patch: copy it so later merges never alias it.
                fresh: dict[str, Any] = {}
                target[key] = fresh
                stack.append((fresh, value))
            else:
                target[key] = value
    return result
