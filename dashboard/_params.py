"""Reading a page's filters from its query string, and writing them back into links.

A page's filters live in its URL, so a view is bookmarkable. An empty value (what a
form sends for a blank field) means "not set"; a value that does not fit is a
`BadFilter`, which the error pages turn into a 400 that says what is wrong.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from datacat_server.web import InvalidInputError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["BadFilter", "QueryReader", "filters_href", "href"]

#: Longest text a filter takes (a node id can be long; nothing sane is longer).
MAX_TEXT = 4000


class BadFilter(InvalidInputError):
    """A query-string value the page cannot use."""


class QueryReader:
    """Typed access to a page's query parameters (the first value of each)."""

    def __init__(self, params: Mapping[str, str]) -> None:
        self._params = params

    def text(self, name: str) -> str | None:
        """The value, or None when missing or blank."""
        raw = self._params.get(name)
        if raw is None or not raw.strip():
            return None
        if len(raw) > MAX_TEXT:
            raise BadFilter(f"{name} is longer than {MAX_TEXT} characters")
        return raw

    def integer(self, name: str, default: int, *, lo: int, hi: int) -> int:
        """A whole number between ``lo`` and ``hi``."""
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            raise BadFilter(f"{name} must be a whole number, got {raw[:40]!r}") from None
        if not lo <= value <= hi:
            raise BadFilter(f"{name} must be between {lo} and {hi}, got {value}")
        return value

    def optional_integer(self, name: str, *, lo: int, hi: int) -> int | None:
        """`integer`, or None when not given."""
        return None if self.text(name) is None else self.integer(name, lo, lo=lo, hi=hi)

    def number(self, name: str, default: float, *, lo: float, hi: float) -> float:
        """A finite number between ``lo`` and ``hi``."""
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw.strip())
        except ValueError:
            raise BadFilter(f"{name} must be a number, got {raw[:40]!r}") from None
        if not math.isfinite(value) or not lo <= value <= hi:
            raise BadFilter(f"{name} must be between {lo:g} and {hi:g}, got {raw[:40]!r}")
        return value

    def page(self) -> int:
        """The page number of a paged list (``?page=``, from 1)."""
        return self.integer("page", 1, lo=1, hi=1_000_000)

    def choice(self, name: str, choices: Iterable[str], default: str | None = None) -> str | None:
        """One of ``choices``, or ``default`` when not given."""
        raw = self.text(name)
        if raw is None:
            return default
        allowed = tuple(choices)
        if raw not in allowed:
            raise BadFilter(f"{name} must be one of {', '.join(allowed)}, got {raw[:40]!r}")
        return raw


def filters_href(path: str, filters: DataclassInstance, **changes: object) -> str:
    """``path`` with a page's filters (a dataclass with a ``page``), some changed; the
    first page is the plain link."""
    params = {**dataclasses.asdict(filters), **changes}
    if params.get("page") == 1:
        params["page"] = None
    return href(path, params)


def href(path: str, params: Mapping[str, object]) -> str:
    """``path`` with the set parameters as its query string (None and "" left out)."""
    kept = [(key, str(value)) for key, value in params.items() if value is not None and value != ""]
    return f"{path}?{urlencode(kept)}" if kept else path
