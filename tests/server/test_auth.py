"""Tokens and scopes: every route is closed without the right token, but the public few."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from datacat_server.app import create_app
from datacat_server.auth import COOKIE, Scope, TokenConfigError, TokenSet, load_tokens
from datacat_server.settings import Settings
from tests.server.records import RecordMaker, batch

Client = TestClient  # type: ignore[type-arg]

INGEST = "ingest-token-0123456789abcdef"
READ = "read-token-0123456789abcdef00"
ADMIN = "admin-token-0123456789abcdef0"
QUARANTINE = "quarantine-token-0123456789ab"

#: Routes anyone may call: liveness, the dashboard's login, its static files.
PUBLIC = re.compile(r"^(/health|/login|/logout|/static(/.*)?)$")


@pytest.fixture
def tokens() -> TokenSet:
    return load_tokens(
        {"DATACAT_TOKENS": f"ingest:{INGEST},read:{READ},admin:{ADMIN},quarantine:{QUARANTINE}"}
    )


@pytest.fixture
def app(db_path: Path, tokens: TokenSet) -> Litestar:
    return create_app(Settings(db_path=db_path), tokens=tokens)


@pytest.fixture
def client(app: Litestar) -> Iterator[Client]:
    with TestClient(app=app) as test_client:
        yield test_client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _routes(app: Litestar) -> list[tuple[str, str, Any]]:
    """Every (method, concrete path, handler) of the app, path parameters filled in."""
    found = []
    for route in app.routes:
        for method, handler in getattr(route, "route_handler_map", {}).items():
            if method in ("OPTIONS", "HEAD"):
                continue
            path = re.sub(r"\{[^}:]+(:[^}]+)?\}", lambda m: str(uuid.uuid4()), route.path)
            found.append((method, path, handler))
    return found


def _scope(method: str, handler: Any) -> Scope:
    route_handler = handler[0] if isinstance(handler, tuple) else handler
    if route_handler.opt.get("scope"):
        return Scope(route_handler.opt["scope"])
    return Scope.READ if method == "GET" else Scope.INGEST


def _wrong_token(scope: Scope, also: list[str]) -> str:
    """A token that has neither the route's scope nor the one it also takes."""
    if also:
        return QUARANTINE
    return {Scope.READ: INGEST, Scope.INGEST: READ, Scope.ADMIN: READ, Scope.QUARANTINE: READ}[
        scope
    ]


def test_every_route_but_the_public_ones_is_401_without_a_token_and_403_with_the_wrong_scope(
    app: Litestar, client: Client
) -> None:
    routes = _routes(app)
    assert len(routes) > 20
    checked = 0
    for method, path, handler in routes:
        if PUBLIC.match(path):
            continue
        anonymous = client.request(method, path)
        assert anonymous.status_code == 401, (method, path, anonymous.status_code)
        assert "WWW-Authenticate" in anonymous.headers
        unknown = client.request(method, path, headers=_bearer("x" * 32))
        assert unknown.status_code == 401, (method, path)
        scope = _scope(method, handler)
        route_handler = handler[0] if isinstance(handler, tuple) else handler
        wrong_token = _wrong_token(scope, route_handler.opt.get("also", []))
        wrong = client.request(method, path, headers=_bearer(wrong_token))
        assert wrong.status_code == 403, (method, path, scope, wrong.status_code)
        assert f"lacks the {scope} scope" in wrong.text  # JSON for the API, HTML for pages
        checked += 1
    assert checked > 20
    assert client.get("/health").status_code == 200


def test_each_scope_does_what_it_may(client: Client) -> None:
    maker = RecordMaker()
    assert (
        client.post(
            "/api/ingest", content=batch(maker.start()), headers=_bearer(INGEST)
        ).status_code
        == 200
    )
    assert (
        client.get(f"/api/sessions/{maker.session_id}", headers=_bearer(INGEST)).status_code == 403
    )
    assert client.get(f"/api/sessions/{maker.session_id}", headers=_bearer(READ)).status_code == 200
    assert (
        client.post("/api/sql", json={"sql": "SELECT 1"}, headers=_bearer(READ)).status_code == 200
    )
    assert (
        client.post(
            "/api/ingest", content=batch(maker.event("e")), headers=_bearer(READ)
        ).status_code
        == 403
    )
    # admin may do everything
    assert (
        client.post(
            "/api/ingest", content=batch(maker.event("e")), headers=_bearer(ADMIN)
        ).status_code
        == 200
    )
    assert client.get("/api/runs", headers=_bearer(ADMIN)).status_code == 200
    retention = client.post("/api/admin/retention", json={"days": 30}, headers=_bearer(ADMIN))
    assert retention.status_code == 200
    assert retention.json()["sessions"] == 0
    assert (
        client.post("/api/admin/retention", json={"days": 30}, headers=_bearer(READ)).status_code
        == 403
    )
    assert client.get("/schema/openapi.json").status_code == 401
    assert client.get("/schema/openapi.json", headers=_bearer(READ)).status_code == 200


def test_the_login_cookie_reads_but_never_writes(client: Client) -> None:
    client.cookies.set(COOKIE, READ)
    assert client.get("/api/runs").status_code == 200
    maker = RecordMaker()
    refused = client.post("/api/ingest", content=batch(maker.start()))
    assert refused.status_code == 403
    assert "cookie only reads" in refused.json()["detail"]
    client.cookies.set(COOKIE, ADMIN)  # even an admin token, when it comes as a cookie
    assert client.post("/api/ingest", content=batch(maker.start())).status_code == 403


def test_without_tokens_everything_is_open(db_path: Path) -> None:
    with TestClient(app=create_app(Settings(db_path=db_path))) as client:
        assert client.get("/api/runs").status_code == 200
        assert client.post("/api/sessions").status_code == 200


def test_token_configuration(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(
        "# the CI fleet\ningest t0123456789abcdefghij ci\nread+ingest u0123456789abcdefghij both # dev\n"
    )
    tokens = load_tokens(
        {"DATACAT_TOKENS_FILE": str(tokens_file), "DATACAT_TOKENS": f"admin:{ADMIN}"}
    )
    assert len(tokens.tokens) == 3
    both = tokens.find("u0123456789abcdefghij")
    assert both is not None
    assert both.allows(Scope.READ)
    assert both.allows(Scope.INGEST)
    assert not both.allows(Scope.ADMIN)
    assert both.name == "both"
    admin = tokens.find(ADMIN)
    assert admin is not None
    assert all(admin.allows(scope) for scope in Scope)
    assert tokens.find("u0123456789abcdefghi") is None  # a prefix is not the token
    assert tokens.find("") is None
    with pytest.raises(TokenConfigError, match="unknown scope"):
        load_tokens({"DATACAT_TOKENS": "root:0123456789abcdefghij"})
    with pytest.raises(TokenConfigError, match="at least 16 characters"):
        load_tokens({"DATACAT_TOKENS": "read:short"})
    with pytest.raises(TokenConfigError, match="scope:token"):
        load_tokens({"DATACAT_TOKENS": "0123456789abcdefghij"})
    with pytest.raises(TokenConfigError, match="cannot read the tokens file"):
        load_tokens({"DATACAT_TOKENS_FILE": str(tmp_path / "missing")})


class _CountingTokens(TokenSet):
    """A token set that counts its look-ups."""

    def __init__(self, tokens: TokenSet) -> None:
        super().__init__(tokens.tokens)
        object.__setattr__(self, "lookups", 0)

    def find(self, candidate: str) -> Any:
        object.__setattr__(self, "lookups", self.lookups + 1)  # type: ignore[has-type]
        return super().find(candidate)


def test_a_request_is_authenticated_once(db_path: Path, tokens: TokenSet) -> None:
    # The guard, the rate limiter (on by default), the pages and the quarantine log all
    # use what one look-up found.
    counting = _CountingTokens(tokens)
    settings = Settings(db_path=db_path)
    assert settings.rate_limit > 0
    maker = RecordMaker()
    with TestClient(app=create_app(settings, tokens=counting)) as client:
        requests: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", "/api/runs", {"headers": _bearer(READ)}),
            ("POST", "/api/ingest", {"headers": _bearer(INGEST), "content": batch(maker.start())}),
            ("GET", "/runs", {"headers": _bearer(READ)}),
            ("GET", "/runs", {"headers": {"Cookie": f"{COOKIE}={READ}"}}),
            ("GET", "/runs", {"headers": {"Cookie": f"{COOKIE}={'x' * 20}"}}),  # stale: 401
            ("GET", "/login", {"headers": {"Cookie": f"{COOKIE}={READ}"}}),
            (
                "POST",
                "/api/quarantine/",
                {"headers": _bearer(QUARANTINE), "json": {"project": "p", "nodeid": "t.py::x"}},
            ),
            ("GET", "/api/runs", {"headers": _bearer("y" * 20)}),  # unknown: 401
        ]
        for method, path, options in requests:
            before = counting.lookups  # type: ignore[attr-defined]
            answer = client.request(method, path, **options)
            assert answer.status_code in (200, 401), (path, answer.text[:200])
            assert counting.lookups - before == 1, (method, path)  # type: ignore[attr-defined]
