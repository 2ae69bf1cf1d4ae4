"""The API docs (the nav bar's "API" link) are served whole by the server itself: they
load nothing from another site, so they work offline and behind firewalls."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TypeAlias

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from dashboard._headers import CONTENT_SECURITY_POLICY
from dashboard._mount import STATIC
from datacat_server.app import create_app
from datacat_server.settings import Settings

Client: TypeAlias = TestClient[Litestar]

#: Anything that names another host: http://, https://, or scheme-relative //host.
_EXTERNAL = re.compile(rb"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}", re.IGNORECASE)
_LINKED = re.compile(rb"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    db = tmp_path_factory.mktemp("docs") / "docs.duckdb"
    with TestClient(app=create_app(Settings(db_path=db))) as test_client:
        yield test_client


def _nav_api_link(client: Client) -> str:
    page = client.get("/").content
    match = re.search(rb'<a class="api" href="([^"]+)"', page)
    assert match, "the nav bar has no API link"
    return match.group(1).decode()


def test_the_nav_bar_links_the_docs_page(client: Client) -> None:
    assert _nav_api_link(client) == "/schema"


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger", "/schema/oauth2-redirect.html"])
def test_the_docs_pages_reference_no_other_site(client: Client, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 200
    assert _EXTERNAL.findall(answer.content) == []


def test_everything_the_docs_page_loads_is_served_here(client: Client) -> None:
    page = client.get(_nav_api_link(client)).content
    linked = [url.decode() for url in _LINKED.findall(page)]
    scripts = [url for url in linked if url.endswith(".js") or ".js?" in url]
    assert len(scripts) >= 2, linked  # Swagger UI's bundle and preset
    assert any(".css" in url for url in linked), linked
    for url in linked:
        assert url.startswith("/static/"), url
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert answer.content, url
    assert b"SwaggerUIBundle(" in page
    assert b'"/api/ingest"' in page  # the schema is in the page, not fetched


def test_the_vendored_docs_carry_their_licence_and_version() -> None:
    vendor = STATIC / "vendor"
    assert (vendor / "swagger-ui" / "LICENSE").read_text().lstrip().startswith("Apache License")
    readme = (vendor / "README.md").read_text()
    assert "swagger-ui-dist" in readme
    assert re.search(r"swagger-ui-dist.*\| 5\.\d+\.\d+ \|", readme)


def test_the_dashboard_keeps_its_content_security_policy(client: Client) -> None:
    for path in ("/", "/static/vendor/swagger-ui/swagger-ui-bundle.js"):
        assert client.get(path).headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "cdn" not in CONTENT_SECURITY_POLICY
