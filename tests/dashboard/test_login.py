"""Signing in to the dashboard with a read token: the form, the cookie, the way back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from dashboard.pages.login import safe_next
from datacat_server.app import create_app
from datacat_server.auth import COOKIE, load_tokens
from datacat_server.settings import Settings

Client = TestClient  # type: ignore[type-arg]

READ = "read-token-0123456789abcdef00"
INGEST = "ingest-token-0123456789abcdef"


@pytest.fixture
def client(db_path: Path) -> Iterator[Client]:
    tokens = load_tokens({"DATACAT_TOKENS": f"read:{READ},ingest:{INGEST}"})
    with TestClient(app=create_app(Settings(db_path=db_path), tokens=tokens)) as test_client:
        yield test_client


def test_a_page_without_a_token_answers_401_with_the_sign_in_form(client: Client) -> None:
    page = client.get("/runs?branch=main")
    assert page.status_code == 401
    assert "WWW-Authenticate" in page.headers
    assert '<form method="post" action="/login"' in page.text
    assert 'name="next" value="/runs?branch=main"' in page.text
    assert COOKIE not in page.headers.get("set-cookie", "")


def test_signing_in_sets_an_http_only_strict_cookie_and_goes_back(client: Client) -> None:
    answer = client.post(
        "/login", data={"token": READ, "next": "/flaky?runs=20"}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/flaky?runs=20"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={READ}")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/", "Max-Age="):
        assert attribute in cookie, cookie
    assert "Secure" not in cookie  # plain http on loopback; a TLS proxy turns it on
    page = client.get("/flaky?runs=20")
    assert page.status_code == 200
    assert "Sign out" in page.text


def test_behind_a_tls_proxy_the_cookie_is_secure(client: Client) -> None:
    answer = client.post(
        "/login",
        data={"token": READ},
        headers={"X-Forwarded-Proto": "https"},
        follow_redirects=False,
    )
    assert "Secure" in answer.headers["set-cookie"]


@pytest.mark.parametrize(
    ("token", "status", "message"),
    [
        ("x" * 32, 401, "not known here"),
        (INGEST, 403, "cannot read"),
        ("", 401, "not known here"),
    ],
)
def test_a_token_that_cannot_read_sets_no_cookie(
    client: Client, token: str, status: int, message: str
) -> None:
    answer = client.post("/login", data={"token": token}, follow_redirects=False)
    assert answer.status_code == status
    assert message in answer.text
    assert "set-cookie" not in answer.headers
    assert client.get("/runs").status_code == 401


def test_signing_out_drops_the_cookie(client: Client) -> None:
    client.post("/login", data={"token": READ})
    assert client.get("/runs").status_code == 200
    answer = client.post("/logout", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"
    assert "Max-Age=0" in answer.headers["set-cookie"]
    client.cookies.clear()  # what the browser does on Max-Age=0
    assert client.get("/runs").status_code == 401


def test_a_stale_cookie_is_told_to_sign_in_again(client: Client) -> None:
    client.cookies.set(COOKIE, "y" * 32)
    page = client.get("/runs")
    assert page.status_code == 401
    assert "no longer valid" in page.text


def test_htmx_is_sent_to_the_sign_in_page_not_given_a_form_to_swap(client: Client) -> None:
    answer = client.get(
        "/runs",
        headers={
            "HX-Request": "true",
            "HX-Target": "runs-table",
            "HX-Current-URL": "http://127.0.0.1:8080/runs?status=failed",
        },
    )
    assert answer.status_code == 401
    assert answer.headers["HX-Redirect"] == "/login?next=%2Fruns%3Fstatus%3Dfailed"
    assert answer.content == b""


def test_only_local_paths_are_followed_after_signing_in() -> None:
    assert safe_next("/runs/abc?x=1") == "/runs/abc?x=1"
    for hostile in ("//evil.example/", "/\\evil.example", "https://evil.example/", "", None):
        assert safe_next(hostile) == "/"
    assert safe_next("/runs\r\nSet-Cookie: x=1") == "/"


def test_an_open_server_has_nothing_to_sign_in_to(db_path: Path) -> None:
    with TestClient(app=create_app(Settings(db_path=db_path))) as open_client:
        page = open_client.get("/login?next=/slow")
        assert page.status_code == 200
        assert "no tokens configured" in page.text
        assert 'href="/slow"' in page.text
        assert (
            open_client.post("/login", data={"token": "z"}, follow_redirects=False).headers[
                "location"
            ]
            == "/"
        )


def test_a_sign_in_posted_from_another_site_is_refused(client: Client) -> None:
    answer = client.post(
        "/login",
        data={"token": READ},
        headers={"Sec-Fetch-Site": "cross-site"},
        follow_redirects=False,
    )
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers
    same = client.post(
        "/login",
        data={"token": READ},
        headers={"Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert same.status_code == 303
