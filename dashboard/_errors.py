"""Error pages: an unknown run is a 404 page, a bad filter a 400 page, never JSON.

When htmx made the request, the answer is a fragment that keeps the id of the element
it replaces, so the next filter change still finds its target.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlsplit

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.response import Template

from dashboard._headers import SECURITY_HEADERS
from dashboard._params import href
from dashboard._render import VARY, partial_target
from dashboard.pages.login import safe_next, sign_in_page
from datacat_server.auth import identity_of
from datacat_server.errors import InvalidInputError

__all__ = ["ERROR_HANDLERS", "ErrorPage", "browser_not_found"]

_TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    500: "Server error",
}


@dataclasses.dataclass(frozen=True)
class ErrorPage:
    """Context of ``error.html`` and ``_error.html``."""

    status_code: int
    title: str
    message: str
    #: The element htmx swaps (the fragment keeps its id), or None for a full page.
    target: str | None


def _error(
    request: Request[Any, Any, Any],
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
) -> Template:
    target = partial_target(request)
    page = ErrorPage(status, _TITLES.get(status, "Error"), message, target)
    return Template(
        template_name="_error.html" if target else "error.html",
        context={"page": page},
        status_code=status,
        headers={**(headers or {}), **VARY, **SECURITY_HEADERS},
    )


def _invalid(request: Request[Any, Any, Any], exc: InvalidInputError) -> Response[Any]:
    return _error(request, 400, str(exc))


def _sign_in(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """A 401 that shows the sign-in form, which leads back here afterwards.

    An htmx request is told (``HX-Redirect``) to load the sign-in page instead of
    swapping a form into a table.
    """
    headers = {**(exc.headers or {}), **VARY, **SECURITY_HEADERS}
    if request.headers.get("hx-request") == "true":
        current = urlsplit(request.headers.get("hx-current-url", ""))
        back = current.path + (f"?{current.query}" if current.query else "")
        headers["HX-Redirect"] = href("/login", {"next": safe_next(back)})
        return Response(content=b"", status_code=401, headers=headers)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = safe_next(here if request.method == "GET" else None)
    from_cookie = identity_of(request).via == "cookie"
    stale = "Your sign-in is no longer valid; sign in again." if from_cookie else None
    return sign_in_page(request, target, stale, 401, headers)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code == 401:
        return _sign_in(request, exc)
    message = str(exc.detail)
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        problems = [str(item.get("message", item)) for item in exc.extra if isinstance(item, dict)]
        message = "; ".join([message, *problems]) if problems else message
    return _error(request, exc.status_code, message, exc.headers)


def _internal(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    # The app's after_exception hook logs it; the page says nothing about its insides.
    return _error(request, 500, "Something went wrong on the server. It has been logged.")


def browser_not_found(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[Any]:
    """A path no route serves: a page for a browser, the API's JSON for everyone else."""
    wants_page = "text/html" in request.headers.get("accept", "")
    if wants_page and not request.url.path.startswith(("/api/", "/schema", "/static/")):
        return _error(request, 404, "There is no page here.")
    return Response({"status_code": 404, "detail": exc.detail}, status_code=404)


ERROR_HANDLERS: dict[Any, Any] = {
    InvalidInputError: _invalid,
    HTTPException: _http,
    # named too, or the app's handler for unknown paths (`browser_not_found`) would win
    NotFoundException: _http,
    500: _internal,
}
