"""Who may do what: tokens with scopes, checked by one guard on every route.

Scopes:

- ``ingest``: create sessions and send records (the client, the pytest plugin);
- ``read``: the API's reads, the dashboard, the SQL console;
- ``quarantine``: put tests in and out of quarantine;
- ``admin``: everything, including deleting old data (retention).

A route may accept a second scope besides its own (``opt["also"]``): the quarantine
list is read by dashboards (``read``) and by the pytest plugin (``ingest``).

Tokens come from ``DATACAT_TOKENS`` (``scope[+scope]:token`` items separated by commas)
and/or a tokens file (``DATACAT_TOKENS_FILE``: one ``scope[+scope] token [name]`` per
line, ``#`` comments). A request presents its token as ``Authorization: Bearer …``;
the dashboard also accepts it from an HTTP-only, same-site cookie set by its login form
(for reading only: a cookie never authorises a write, so a forged cross-site request
cannot send data). Tokens are compared in constant time, every configured token each
time. With no token configured the server is open (and binds 127.0.0.1 only).

A request's token is read once, by `IdentityMiddleware`, before the rate limiter: it
leaves an `Identity` in the request's scope, which the guard, the rate limiter, the
sign-in page and the quarantine log read (`identity_of`).
"""

from __future__ import annotations

import dataclasses
import enum
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.authentication import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
)
from litestar.types import ASGIApp
from litestar.types import Scope as AsgiScope

__all__ = [
    "COOKIE",
    "Identity",
    "IdentityMiddleware",
    "Scope",
    "Token",
    "TokenConfigError",
    "TokenSet",
    "guard",
    "identity_of",
    "load_tokens",
    "required_scope",
]

COOKIE = "datacat_token"


class Scope(enum.StrEnum):
    INGEST = "ingest"
    READ = "read"
    #: Put tests in and out of quarantine (`datacat quarantine`).
    QUARANTINE = "quarantine"
    ADMIN = "admin"


@dataclasses.dataclass(frozen=True)
class Token:
    secret: str
    scopes: frozenset[Scope]
    name: str = ""

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes


@dataclasses.dataclass(frozen=True)
class TokenSet:
    tokens: tuple[Token, ...] = ()

    @property
    def open(self) -> bool:
        """No token configured: every request is allowed."""
        return not self.tokens

    def find(self, candidate: str) -> Token | None:
        """The token ``candidate`` is, compared in constant time against every token."""
        found = None
        given = candidate.encode()
        for token in self.tokens:
            if secrets.compare_digest(given, token.secret.encode()):
                found = token
        return found


class TokenConfigError(ValueError):
    """The token configuration cannot be read."""


def _parse_scopes(text: str, where: str) -> frozenset[Scope]:
    try:
        return frozenset(Scope(part.strip()) for part in text.split("+") if part.strip())
    except ValueError:
        raise TokenConfigError(
            f"{where}: unknown scope in {text!r} (scopes: ingest, read, quarantine, admin)"
        ) from None


def _check_secret(secret: str, where: str) -> str:
    if len(secret) < 16:
        raise TokenConfigError(f"{where}: a token must be at least 16 characters long")
    return secret


def _from_env(value: str) -> Iterable[Token]:
    for i, item in enumerate(part.strip() for part in value.split(",")):
        if not item:
            continue
        scopes, sep, secret = item.partition(":")
        where = f"DATACAT_TOKENS item {i + 1}"
        if not sep:
            raise TokenConfigError(f"{where}: write it as scope:token, e.g. ingest:<token>")
        yield Token(_check_secret(secret.strip(), where), _parse_scopes(scopes, where))


def _from_file(path: Path) -> Iterable[Token]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise TokenConfigError(f"cannot read the tokens file {path}: {exc}") from None
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{path}:{number}"
        if len(words) < 2:
            raise TokenConfigError(f"{where}: write 'scope token [name]'")
        yield Token(
            _check_secret(words[1], where), _parse_scopes(words[0], where), " ".join(words[2:])
        )


def load_tokens(env: Mapping[str, str]) -> TokenSet:
    """The tokens configured by ``DATACAT_TOKENS`` and ``DATACAT_TOKENS_FILE``."""
    tokens = list(_from_env(env.get("DATACAT_TOKENS", "")))
    if env.get("DATACAT_TOKENS_FILE"):
        tokens += _from_file(Path(env["DATACAT_TOKENS_FILE"]))
    return TokenSet(tuple(tokens))


def required_scope(handler: BaseRouteHandler, method: str) -> Scope | None:
    """The scope a route needs: its ``opt["scope"]``, else read for GET and ingest for
    the rest; None for public routes (``opt["public"]``)."""
    if handler.opt.get("public"):
        return None
    scope = handler.opt.get("scope")
    if scope is not None:
        return Scope(scope)
    return Scope.READ if method in ("GET", "HEAD", "OPTIONS") else Scope.INGEST


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who a request is: the token it presented, read once by `IdentityMiddleware`."""

    #: The configured token the request presented; None when it presented none, or
    #: one that is not known here.
    token: Token | None = None
    #: Where the presented token came from: ``"bearer"`` (the ``Authorization``
    #: header), ``"cookie"`` (the dashboard's login cookie), or None.
    via: Literal["bearer", "cookie"] | None = None

    @property
    def presented(self) -> bool:
        return self.via is not None


#: A request that presented no token (or one no middleware has read).
ANONYMOUS = Identity()


def _read_identity(connection: ASGIConnection[Any, Any, Any, Any], tokens: TokenSet) -> Identity:
    header = connection.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return Identity(tokens.find(value.strip()), "bearer")
    if cookie := connection.cookies.get(COOKIE):
        return Identity(tokens.find(cookie), "cookie")
    return ANONYMOUS


class IdentityMiddleware(AbstractAuthenticationMiddleware):
    """Reads the request's token (bearer header, else the login cookie) and looks it up
    once; the `Identity` is the scope's ``auth`` (and its token the ``user``). It
    refuses nothing itself: the guard decides, per route."""

    def __init__(self, app: ASGIApp, tokens: TokenSet) -> None:
        super().__init__(app, exclude_http_methods=())
        self.tokens = tokens

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        identity = _read_identity(connection, self.tokens)
        return AuthenticationResult(user=identity.token, auth=identity)


def identity_of(connection: ASGIConnection[Any, Any, Any, Any] | AsgiScope) -> Identity:
    """The request's `Identity` (`ANONYMOUS` where the middleware did not run: no route
    matched, or a bare app in a test)."""
    scope = connection if isinstance(connection, dict) else connection.scope
    found = scope.get("auth")
    return found if isinstance(found, Identity) else ANONYMOUS


async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Allow the request, or raise 401 (no or unknown token) / 403 (wrong scope).

    A coroutine on purpose: Litestar runs a plain function guard on the event loop's
    thread pool, where slow requests could keep every request waiting for its guard.
    It does no I/O, so it never waits on anything; the token was looked up by
    `IdentityMiddleware`.
    """
    tokens: TokenSet = connection.app.state.tokens
    if tokens.open:
        return
    scope = required_scope(handler, str(connection.scope.get("method", "GET")))
    if scope is None:
        return
    identity = identity_of(connection)
    if not identity.presented:
        raise NotAuthorizedException(
            "a token is required: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": 'Bearer realm="datacat"'},
        )
    token = identity.token
    if token is None:
        raise NotAuthorizedException(
            "this token is not known here",
            headers={"WWW-Authenticate": 'Bearer realm="datacat", error="invalid_token"'},
        )
    if identity.via == "cookie" and scope is not Scope.READ:
        raise PermissionDeniedException(
            "the dashboard's login cookie only reads; send a bearer token to write"
        )
    also = [Scope(name) for name in handler.opt.get("also", ())]
    if not token.allows(scope) and not any(token.allows(other) for other in also):
        raise PermissionDeniedException(f"this token lacks the {scope} scope")
