"""The SQL console's page: a run statement becomes a link, and the answer says its age."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from litestar.testing import TestClient

Client = TestClient  # type: ignore[type-arg]

HTMX = {"HX-Request": "true", "HX-Target": "sql-result"}


def _pushed(response: object) -> str | None:
    url = response.headers.get("hx-push-url")  # type: ignore[attr-defined]
    if url is None:
        return None
    assert urlsplit(url).path == "/sql"
    return parse_qs(urlsplit(url).query)["q"][0]


def test_running_a_statement_puts_it_in_the_address_bar(client: Client) -> None:
    sql = "SELECT nodeid FROM tests ORDER BY nodeid LIMIT 2 -- a & b"
    response = client.post("/sql", data={"sql": sql}, headers=HTMX)
    assert response.status_code == 200
    assert _pushed(response) == sql
    refused = client.post("/sql", data={"sql": "DROP TABLE runs"}, headers=HTMX)
    assert refused.status_code == 400
    assert _pushed(refused) == "DROP TABLE runs"  # the link shows the refusal again


def test_a_statement_too_long_for_a_link_is_not_pushed(client: Client) -> None:
    sql = "SELECT 1 AS " + "x" * 5000
    response = client.post("/sql", data={"sql": sql}, headers=HTMX)
    assert response.status_code == 200
    assert _pushed(response) is None


def test_the_answer_says_how_old_the_data_is_and_what_cut_it(client: Client) -> None:
    body = client.get("/sql", params={"q": "SELECT * FROM range(5000)"}).text
    assert "data as of" in body
    assert "1,000 rows (the first ones: there are more)" in body
