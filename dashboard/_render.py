"""Answering a page request: the whole page, or the one fragment htmx asked for.

A fragment is a template of its own (``_runs_table.html``) that the page includes, so
the table a browser gets from a full load and the one htmx swaps in are the same
markup. htmx names the element it will swap in the ``HX-Target`` header; the page maps
that id to its fragment. A history restore (back button with a cold cache) wants the
whole page, as does any request without the header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Request
from litestar.response import Template

__all__ = ["VARY", "partial_target", "render"]

#: The same URL answers a page or a fragment: caches must keep them apart.
VARY = {"Vary": "HX-Request, HX-Target"}


def partial_target(request: Request[Any, Any, Any]) -> str | None:
    """The id of the element htmx will swap, when this is such a request."""
    headers = request.headers
    if headers.get("hx-request") != "true" or headers.get("hx-history-restore-request"):
        return None
    return headers.get("hx-target") or None


def render(
    request: Request[Any, Any, Any],
    template: str,
    page: object,
    fragments: Mapping[str, str] | None = None,
    *,
    status_code: int = 200,
) -> Template:
    """``template`` with ``page`` as its context, or the fragment htmx targets."""
    target = partial_target(request)
    name = (fragments or {}).get(target or "", template)
    return Template(
        template_name=name, context={"page": page}, status_code=status_code, headers=VARY
    )
