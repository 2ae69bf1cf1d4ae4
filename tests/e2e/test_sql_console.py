"""The SQL console in a real browser: a run statement is a link, an example starts clean."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.browser import Watched, open_chromium
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Watched]:
    with (
        ServerProcess(tmp_path / "console.duckdb") as server,
        open_chromium(tmp_path / "profile") as context,
    ):
        page = context.new_page()
        watched = Watched(page, server.url)
        yield watched
        assert watched.problems == [], watched.problems


def _query_of(url: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get("q")
    return values[0] if values else None


def test_a_run_statement_goes_into_the_address_bar_and_reloads(console: Watched) -> None:
    page = console.page
    console.open("/sql")
    page.fill("#sql-text", "SELECT 40 + 2 AS answer")
    page.click("#sql-form button[type=submit]")
    page.wait_for_selector("#sql-result td:text('42')")
    assert _query_of(page.url) == "SELECT 40 + 2 AS answer"
    assert "data as of" in page.locator("#sql-result").inner_text()
    page.reload(wait_until="load")
    assert page.input_value("#sql-text") == "SELECT 40 + 2 AS answer"
    assert page.locator("#sql-result td").inner_text() == "42"
    # A link someone shared runs when opened.
    console.open("/sql?q=SELECT+7+AS+seven")
    assert page.locator("#sql-result td").inner_text() == "7"


def test_an_example_clears_the_result_of_the_statement_before(console: Watched) -> None:
    page = console.page
    console.open("/sql?q=SELECT+7+AS+seven")
    assert page.locator("#sql-result td").inner_text() == "7"
    page.click("a[data-sql-example]:text('Describe the test results view')")
    assert page.input_value("#sql-text") == "DESCRIBE test_results"
    assert page.locator("#sql-result").inner_text() == ""
    assert page.locator("#sql-result table").count() == 0
    assert _query_of(page.url) is None
    page.click("#sql-form button[type=submit]")
    page.wait_for_selector("#sql-result table")
    assert "nodeid" in page.locator("#sql-result").inner_text()
    assert _query_of(page.url) == "DESCRIBE test_results"
