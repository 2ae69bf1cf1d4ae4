"""`datacat_server.web`, the server as the dashboard sees it: a request's identity and
read cursor, through a real app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Litestar, Request, get
from litestar.testing import TestClient

from datacat_server.app import create_app
from datacat_server.auth import COOKIE, Scope, Token, TokenSet
from datacat_server.settings import Settings
from datacat_server.web import identity, read_cursor

READ = "read-token-0123456789abcdef00"


@get("/probe/identity", sync_to_thread=False)
def _identity(request: Request[Any, Any, Any]) -> dict[str, Any]:
    who = identity(request)
    return {"open": who.open, "signed_in": who.signed_in, "known": who.known, "name": who.name}


@get("/probe/cursor", sync_to_thread=True)
def _cursor(request: Request[Any, Any, Any]) -> int:
    found = read_cursor(request).execute("SELECT count(*) FROM sessions").fetchall()
    return int(found[0][0])


def _app(db_path: Path, tokens: TokenSet | None = None) -> Litestar:
    app = create_app(Settings(db_path=db_path), tokens=tokens)
    app.register(_identity)
    app.register(_cursor)
    return app


def test_identity_says_who_asked(db_path: Path) -> None:
    board = Token(READ, frozenset({Scope.READ}), "board")
    with TestClient(app=_app(db_path, TokenSet((board,)))) as client:
        bearer = client.get("/probe/identity", headers={"Authorization": f"Bearer {READ}"})
        assert bearer.json() == {"open": False, "signed_in": False, "known": True, "name": "board"}
        client.cookies.set(COOKIE, READ)
        cookie = client.get("/probe/identity")
        assert cookie.json() == {"open": False, "signed_in": True, "known": True, "name": "board"}
        client.cookies.set(COOKIE, "stale-token-0123456789abcdef")
        assert client.get("/probe/identity").status_code == 401  # the guard said so first


def test_an_open_server_has_nobody_to_know(db_path: Path) -> None:
    with TestClient(app=_app(db_path)) as client:
        assert client.get("/probe/identity").json() == {
            "open": True,
            "signed_in": False,
            "known": False,
            "name": "",
        }
        assert client.get("/probe/cursor").json() == 0
