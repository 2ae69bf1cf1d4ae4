"""Quarantine in the dashboard: the ``/quarantine`` page, the notice on a test's page,
the marks on a run's failed tests; and the queries behind them, with known answers."""

from __future__ import annotations

import html
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from litestar.testing import TestClient

from datacat_client import wire
from datacat_server.app import create_app
from datacat_server.auth import Scope, Token, TokenSet
from datacat_server.queries.quarantine import entry, quarantine_projects, run_quarantine
from datacat_server.settings import Settings
from datacat_server.store import Store
from datacat_server.store import quarantine as q
from tests.server.records import RecordMaker

Client = TestClient[Any]
SCRIPT = "<script>alert(1)</script>"
FLAKY = "t.py::test_flaky"
AUTO = "t.py::test_auto"
NEW = "t.py::test_new"
#: A node id a shell would split or expand unquoted.
QUOTED = "t.py::test_q['a b' $HOME]"


def _run(store: Store, results: dict[str, str], project: str = "shop") -> str:
    maker = RecordMaker()
    now = time.time()
    store.write_sync(
        [
            maker.start(product=project, name="pytest"),
            maker.make(wire.RunStart, project=project, branch="main", commit="abc", timestamp=now),
            *(maker.result(nodeid, outcome) for nodeid, outcome in results.items()),
            maker.make(wire.RunFinish, exit_status=1, status="failed", counts={"failed": 1}),
            maker.make(wire.SessionEnd),
        ]
    )
    return maker.session_id


def _change(store: Store, fn: Any) -> None:
    store.writer.maintain(fn).result()


class History:
    def __init__(self, store: Store) -> None:
        """Run ``before``: the flaky and automatic tests fail, neither in quarantine.
        Then a person quarantines the flaky one, the flaky rule the automatic one (the
        project turned it on). Run ``during``: both fail again, and a new test. Then the
        automatic one is released. Billing quarantines a test of its own."""
        everything = {FLAKY: "failed", AUTO: "failed", "t.py::test_ok": "passed", QUOTED: "failed"}
        self.before = _run(store, everything)
        _change(store, lambda cur: q.add(cur, "shop", FLAKY, f"flaky on CI {SCRIPT}", "ana"))
        _change(store, lambda cur: q.set_policy(cur, q.Policy("shop", True, 30)))
        _change(store, lambda cur: q.add(cur, "shop", AUTO, "flaky", q.AUTOMATIC, mode="auto"))
        _change(store, lambda cur: q.add(cur, "shop", QUOTED, "", "ana"))
        self.during = _run(store, {**everything, NEW: "failed"})
        _change(store, lambda cur: q.remove(cur, "shop", AUTO, "passed 30 times", q.AUTOMATIC))
        _change(store, lambda cur: q.add(cur, "billing", "b.py::test_pay", "", "bo"))


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, History]]:
    store = Store(tmp_path_factory.mktemp("quarantine") / "q.duckdb", soft_flush_interval=0.05)
    try:
        yield store, History(store)
    finally:
        store.close()


@pytest.fixture(scope="module")
def client(filled: tuple[Store, History]) -> Iterator[Client]:
    store, _ = filled
    with TestClient(app=create_app(Settings(db_path=store.db.path), store=store)) as test_client:
        yield test_client


def _get(client: Client, path: str, **params: str) -> str:
    response = client.get(f"{path}?{urlencode(params)}" if params else path)
    assert response.status_code == 200, response.text[:300]
    return response.text.replace("<wbr>", "")


# --- the queries ----------------------------------------------------------------------


def test_a_run_knows_which_failures_were_in_quarantine_when_it_started(
    filled: tuple[Store, History],
) -> None:
    store, runs = filled
    cur = store.reader()
    during = run_quarantine(cur, runs.during)
    assert sorted(during) == sorted([FLAKY, AUTO, QUOTED])  # not the new test, not a pass
    assert (during[FLAKY].at_start, during[FLAKY].now) == (True, True)
    assert (during[FLAKY].mode, during[FLAKY].who) == ("manual", "ana")
    assert during[FLAKY].reason == f"flaky on CI {SCRIPT}"
    # released since: it was in quarantine then, and is not now
    assert (during[AUTO].at_start, during[AUTO].now, during[AUTO].mode) == (True, False, "auto")
    before = run_quarantine(cur, runs.before)
    # quarantined after that run started: in quarantine now, not then
    assert sorted(before) == sorted([FLAKY, QUOTED])
    assert (before[FLAKY].at_start, before[FLAKY].now) == (False, True)
    assert run_quarantine(cur, "not-a-run") == {}


def test_a_test_s_entry_and_the_projects_with_a_quarantine(filled: tuple[Store, History]) -> None:
    store, _ = filled
    cur = store.reader()
    found = entry(cur, "shop", FLAKY)
    assert found is not None
    assert (found.mode, found.who) == ("manual", "ana")
    assert entry(cur, "shop", AUTO) is None  # released
    assert entry(cur, "billing", FLAKY) is None  # another project's
    assert quarantine_projects(cur) == {"shop": 2, "billing": 1}


# --- the pages ------------------------------------------------------------------------


def test_the_quarantine_page_lists_tests_log_and_policy(client: Client) -> None:
    body = _get(client, "/quarantine", project="shop")
    now = body.split('id="quarantined"')[1].split("</section>")[0]
    assert "2 tests" in now
    assert f">{FLAKY}</a>" in now
    assert AUTO not in now  # released
    assert 'href="/tests?nodeid=t.py%3A%3Atest_flaky&amp;project=shop"' in now
    assert '<span class="badge q-manual"' in now
    assert "<td>ana</td>" in now
    assert html.escape(f"flaky on CI {SCRIPT}", quote=False) in now
    assert SCRIPT not in body
    # each test's command to take it out, quoted for a shell
    assert shlex.quote(QUOTED) in html.unescape(now)
    assert "datacat quarantine remove t.py::test_flaky --project shop" in html.unescape(now)
    # other projects
    assert 'href="/quarantine?project=billing">billing</a> (1)' in now
    policy = body.split('id="policy"')[1].split("</section>")[0]
    assert '<span class="badge q-auto">on</span>' in policy
    assert "<strong>30</strong> passes in a row" in policy
    log = body.split('id="quarantine-log"')[1].split("</section>")[0]
    row = r'badge q-(add|remove)">.*?class="nodeid"[^>]*>([^<]+)</a>'
    changes = [(a, html.unescape(n)) for a, n in re.findall(row, log, flags=re.DOTALL)]
    assert changes == [("remove", AUTO), ("add", QUOTED), ("add", AUTO), ("add", FLAKY)]
    assert "passed 30 times" in log
    assert "datacat (flaky rule)" in log


def test_the_page_says_how_to_change_it_since_it_only_reads(client: Client) -> None:
    body = html.unescape(_get(client, "/quarantine", project="shop"))
    change = body.split('id="change"')[1].split("</section>")[0]
    assert "The dashboard only reads" in change
    # this server has no tokens: the commands need none
    assert "export DATACAT_URL=http://testserver.local\n" in change
    assert "This server has no tokens" in change
    assert "DATACAT_TOKEN" not in change
    assert "datacat quarantine add 'tests/test_file.py::test_name' --project shop" in change
    assert "datacat quarantine list --project shop" in change
    assert '"project": "shop", "auto": false, "release_after": 30' in change  # turns it off
    assert "pytest --datacat --datacat-quarantine" in change
    # and it has no form that would change anything
    assert 'method="post"' not in body.split("<main")[1].split("</main>")[0]


def test_a_project_without_a_quarantine_says_so(client: Client) -> None:
    body = _get(client, "/quarantine", project="unheard-of")
    assert "No test of unheard-of is in quarantine." in body
    assert "Nothing changed in unheard-of's quarantine yet." in body
    assert '<span class="badge">off</span>' in body
    assert '<option value="unheard-of" selected>' in body
    # without ?project=, the project that ran last
    assert '<option value="shop" selected>shop (2 in quarantine)</option>' in _get(
        client, "/quarantine"
    )


def test_an_empty_store_shows_how_to_start(tmp_path: Path) -> None:
    store = Store(tmp_path / "empty.duckdb", soft_flush_interval=0.05)
    try:
        with TestClient(app=create_app(Settings(db_path=store.db.path), store=store)) as client:
            body = _get(client, "/quarantine")
    finally:
        store.close()
    assert "No test run recorded yet." in body
    assert "<h1>Quarantine</h1>" in body


def test_the_nav_bar_leads_to_the_quarantine(client: Client) -> None:
    assert '<a href="/quarantine" aria-current="page">Quarantine</a>' in _get(client, "/quarantine")
    assert '<a href="/quarantine">Quarantine</a>' in _get(client, "/runs")


def test_a_quarantined_test_s_page_says_since_when_why_and_who(client: Client) -> None:
    body = _get(client, "/tests", nodeid=FLAKY, project="shop")
    notice = body.split('class="notice quarantine-notice"')[1].split("</p>")[0]
    assert "<strong>In quarantine</strong> since <time" in notice
    assert '<span class="badge q-manual"' in notice
    assert "by ana: “flaky on CI &lt;script&gt;" in notice
    assert "--datacat-quarantine" in notice
    assert 'href="/quarantine?project=shop"' in notice
    released = _get(client, "/tests", nodeid=AUTO, project="shop")
    assert "quarantine-notice" not in released
    assert "Out of quarantine since <time" in released
    assert "by datacat (flaky rule): “passed 30 times”" in released
    never = _get(client, "/tests", nodeid=NEW, project="shop")
    assert "quarantine" not in never.split("<main")[1].split('id="history"')[0].lower()


def test_a_run_marks_its_failed_tests_that_were_quarantined(
    client: Client, filled: tuple[Store, History]
) -> None:
    _, runs = filled
    body = _get(client, f"/runs/{runs.during}")
    assert "3 of its failed tests were in" in body
    rows = body.split('id="run-tests"')[1].split("</table>")[0].split("<tr class=")[1:]
    marks = {
        nodeid: ("q-mark" in row, "q-later" in row)
        for row in rows
        for nodeid in (FLAKY, AUTO, NEW, "t.py::test_ok")
        if f">{nodeid}</a>" in row
    }
    assert marks == {
        FLAKY: (True, False),
        AUTO: (True, False),  # released since, but it was in quarantine then
        NEW: (False, False),
        "t.py::test_ok": (False, False),  # passed: nothing to mark
    }
    assert 'title="In quarantine when this run started (manual, since' in body
    # the htmx fragment of the tests carries the marks too
    fragment = client.get(
        f"/runs/{runs.during}", headers={"HX-Request": "true", "HX-Target": "run-tests"}
    ).text
    assert fragment.count('class="badge q-mark"') == 3
    earlier = _get(client, f"/runs/{runs.before}")
    assert "of its failed tests" not in earlier
    assert earlier.count('class="badge q-later"') == 2  # quarantined after it started
    assert "q-mark" not in earlier


def test_with_tokens_the_commands_take_one_of_the_quarantine_scope(
    filled: tuple[Store, History],
) -> None:
    store, _ = filled
    read = Token("read-token-0123456789abcdef", frozenset({Scope.READ}), "board")
    app = create_app(Settings(db_path=store.db.path), store=store, tokens=TokenSet((read,)))
    with TestClient(app=app) as client:
        answer = client.get("/quarantine", headers={"Authorization": f"Bearer {read.secret}"})
    assert answer.status_code == 200
    change = html.unescape(answer.text).split('id="change"')[1].split("</section>")[0]
    assert "DATACAT_TOKEN=<a token with the quarantine scope>" in change
    assert '-H "Authorization: Bearer $DATACAT_TOKEN"' in change
    assert "This server has no tokens" not in change
