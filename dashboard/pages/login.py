"""``/login`` and ``/logout``: the dashboard's sign-in with a read token.

A browser cannot send a bearer header on a plain link, so the form takes a token once
and keeps it in an HTTP-only, ``SameSite=Strict`` cookie that scripts cannot read and
other sites cannot make the browser send. The guard lets that cookie read, never write
(`datacat_server.auth`). Both routes are public: they are how one gets a token in.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import Cookie
from litestar.params import URLEncodedBody
from litestar.response import Redirect, Template

from dashboard._params import QueryReader
from datacat_server.web import COOKIE, identity, sign_in_refusal

__all__ = ["LoginForm", "LoginPage", "LoginPages", "safe_next", "sign_in_page"]

#: How long a browser keeps the sign-in (a week of looking at CI runs).
COOKIE_MAX_AGE = 7 * 24 * 3600

#: Route options of a route anyone may call (the auth guard lets it through).
PUBLIC = {"public": True}


class LoginForm(msgspec.Struct):
    """The sign-in form."""

    token: str = ""
    next: str = "/"


@dataclasses.dataclass(frozen=True)
class LoginPage:
    """Context of ``login.html``."""

    next: str
    #: Why the last attempt failed, or None.
    error: str | None
    #: The server has no tokens: there is nothing to sign in to.
    open: bool
    signed_in: bool


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server, never another site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(ord(ch) < 32 for ch in target) or len(target) > 2000:
        return "/"
    return target


def _cross_site(request: Request[Any, Any, Any]) -> bool:
    """A form posted from another site (login CSRF: signing a victim in as someone else)."""
    return request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")


def _secure(request: Request[Any, Any, Any]) -> bool:
    # Behind a TLS-terminating proxy the app sees http; the proxy says https.
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def sign_in_page(
    request: Request[Any, Any, Any],
    target: str,
    error: str | None,
    status: int,
    headers: dict[str, str] | None = None,
) -> Template:
    """The sign-in form, leading to ``target`` (also what a page without a token gets)."""
    who = identity(request)
    page = LoginPage(next=target, error=error, open=who.open, signed_in=who.signed_in)
    return Template(
        template_name="login.html",
        context={"page": page},
        status_code=status,
        headers={**(headers or {}), "Cache-Control": "no-store"},
    )


class LoginPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/login", name="dashboard:login", opt=PUBLIC)
    async def form(self, request: Request[Any, Any, Any]) -> Template:
        """The sign-in form; ``?next=`` is where it leads afterwards."""
        return sign_in_page(
            request, safe_next(QueryReader(request.query_params).text("next")), None, 200
        )

    @post("/login", name="dashboard:login-submit", status_code=303, opt=PUBLIC)
    async def submit(
        self, request: Request[Any, Any, Any], data: URLEncodedBody[LoginForm]
    ) -> Template | Redirect:
        """Check the token; when it may read, set the cookie and go on."""
        target = safe_next(data.next)
        if _cross_site(request):
            return sign_in_page(request, target, "Sign in from this server's own page.", 403)
        if identity(request).open:
            return Redirect(target, status_code=303)
        secret = data.token.strip()
        if refusal := sign_in_refusal(request, secret):
            status, problem = refusal
            return sign_in_page(request, target, problem, status)
        cookie = Cookie(
            key=COOKIE,
            value=secret,
            max_age=COOKIE_MAX_AGE,
            path="/",
            httponly=True,
            samesite="strict",
            secure=_secure(request),
        )
        return Redirect(target, status_code=303, cookies=[cookie])

    @post("/logout", name="dashboard:logout", status_code=303, opt=PUBLIC)
    async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        """Forget the token (the cookie is dropped)."""
        if _cross_site(request):
            return Redirect("/", status_code=303)
        gone = Cookie(key=COOKIE, value="", max_age=0, path="/", httponly=True, samesite="strict")
        return Redirect("/login", status_code=303, cookies=[gone])
