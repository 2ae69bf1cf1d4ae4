"""Document, in the OpenAPI schema, the error answers every route may give.

Litestar documents a route's success answer and what its ``raises`` lists. Some
answers come from outside a handler (the guard: 401/403; the rate limiter: 429; the
body limit: 413; a full write queue or a storage failure: 503; an unknown id in the
path: 404): this adds them to every route, so that clients (and schemathesis) can rely
on the schema.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ServiceUnavailableException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.handlers import HTTPRouteHandler

__all__ = ["document_errors"]


class RequestTooLarge(ClientException):
    """The body is larger than the server accepts."""

    status_code = 413


def document_errors(app: Litestar) -> None:
    """Add the shared error answers to every HTTP route's ``raises``."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not isinstance(handler, HTTPRouteHandler) or not handler.include_in_schema:
                continue
            raises = list(handler.raises or [])
            extra: list[type[HTTPException]] = [
                ServiceUnavailableException,
                TooManyRequestsException,
            ]
            if not handler.opt.get("public"):
                extra += [NotAuthorizedException, PermissionDeniedException]
            if "{" in route.path:
                extra.append(NotFoundException)
            if handler.http_methods - {"GET", "HEAD", "OPTIONS"}:
                extra += [ValidationException, RequestTooLarge]
            elif handler.parsed_fn_signature.parameters:
                extra.append(ValidationException)
            handler.raises = [*raises, *(e for e in extra if e not in raises)]
