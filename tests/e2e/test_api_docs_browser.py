"""The API docs in a real browser with the network closed to anything but the server:
the nav bar's "API" link must show the API's operations offline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.browser import Watched, open_chromium
from tests.support.server import ServerProcess

if TYPE_CHECKING:
    from playwright.sync_api import Route

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("docs") / "docs.duckdb") as process:
        yield process


def test_the_api_docs_show_every_operation_offline(server: ServerProcess, tmp_path: Path) -> None:
    elsewhere: list[str] = []
    with open_chromium(tmp_path / "profile") as context:

        def only_this_machine(route: Route) -> None:
            if urlsplit(route.request.url).hostname == "127.0.0.1":
                route.continue_()
            else:  # the network is closed: what would have gone out is noted
                elsewhere.append(route.request.url)
                route.abort("internetdisconnected")

        context.route("**/*", only_this_machine)
        page = context.new_page()
        watched = Watched(page, server.url)
        watched.open("/")
        page.click("nav a.api")  # the nav bar's link, as a person follows it
        spec = httpx.get(f"{server.url}/schema/openapi.json", timeout=30).json()
        expected = {
            (method.upper(), path) for path, item in spec["paths"].items() for method in item
        }
        watched.wait_until(
            "n => document.querySelectorAll('.opblock').length === n", len(expected), timeout=20
        )
        shown = {
            (
                block.locator(".opblock-summary-method").inner_text().strip(),
                block.locator(".opblock-summary-path").inner_text().replace("\u200b", "").strip(),
            )
            for block in page.locator(".opblock").all()
        }
        assert shown == expected
        assert "DataCat" in page.locator(".info .title").inner_text()
        # An operation opens and shows its parameters and answers.
        page.locator(".opblock-summary-path", has_text="/api/ingest").first.click()
        watched.wait_until("document.querySelectorAll('.responses-table').length > 0")
        assert watched.problems == [], watched.problems
        page.close()
    assert elsewhere == [], f"the docs tried to reach other sites: {elsewhere}"
