"""Selecting sessions by their state: now, ever, or an array that holds a value.

Paths are written with dots (``window.open``); values as JSON where they parse
(``3``, ``true``, ``"dark"``), else as plain strings (``dark``).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from datacat_server.errors import InvalidInputError

__all__ = ["FILTERS", "FilterMode", "json_path", "state_filter"]

FilterMode = Literal["none", "current", "history", "contains"]
FILTERS: tuple[FilterMode, ...] = ("none", "current", "history", "contains")


def json_path(path: str) -> str:
    """A dot path (``window.open``) as a JSON path (``$."window"."open"``)."""
    keys = [key for key in path.split(".") if key]
    if not keys:
        raise InvalidInputError("the state path is empty; write it with dots, like window.open")
    quoted = ".".join('"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"' for key in keys)
    return "$." + quoted


def _value_json(value: str) -> str:
    """The value as JSON text: itself if it parses (``3``, ``"x"``), else a JSON string."""
    try:
        msgspec.json.decode(value)
    except msgspec.DecodeError:
        return msgspec.json.encode(value).decode()
    return value


def state_filter(mode: str, path: str | None, value: str | None) -> tuple[str, list[Any]]:
    """SQL (over ``sessions s``) keeping the sessions the filter selects, and its params."""
    if mode == "none":
        return "TRUE", []
    if mode not in FILTERS:
        raise InvalidInputError(f"filter must be one of {', '.join(FILTERS)}, got {mode!r}")
    if path is None or value is None:
        raise InvalidInputError(f"the {mode!r} filter needs a state path and a value")
    jpath, jvalue = json_path(path), _value_json(value)
    if mode == "current":
        return "json_extract(s.state, ?) = CAST(? AS JSON)", [jpath, jvalue]
    if mode == "contains":
        return (
            "json_type(json_extract(s.state, ?)) = 'ARRAY'"
            " AND json_contains(json_extract(s.state, ?), CAST(? AS JSON))",
            [jpath, jpath, jvalue],
        )
    # "history": the value was in some patch at that path, i.e. the state once had it.
    return (
        "EXISTS (SELECT 1 FROM state_updates h WHERE h.sid = s.sid"
        " AND json_extract(h.patch, ?) = CAST(? AS JSON))",
        [jpath, jvalue],
    )
