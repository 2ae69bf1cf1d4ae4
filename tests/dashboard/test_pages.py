"""Every page through the real app: content, filters, htmx fragments, errors, escaping."""

from __future__ import annotations

import dataclasses
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import markupsafe
import pytest
from litestar.testing import TestClient

import dashboard
from dashboard._errors import ErrorPage
from dashboard.pages import (
    failures,
    flaky,
    metrics,
    overview,
    quarantine,
    runs,
    sessions,
    slow,
    sql,
    test_history,
)
from datacat_client import wire
from datacat_server.app import create_app
from datacat_server.settings import Settings
from datacat_server.store import Store
from tests.dashboard.data import EVIL_NODEID, OTHER_PROJECT, PROJECT, SCRIPT, Filled
from tests.server.records import RecordMaker

Client = TestClient[Any]

DASH = "\N{EN DASH}"
ESCAPED_SCRIPT = html.escape(SCRIPT, quote=False)  # &lt;script&gt;alert(1)&lt;/script&gt;
TEMPLATES = Path(dashboard.__file__).parent / "templates"


def url(base: str, /, **params: str) -> str:
    return f"{base}?{urlencode(params)}"


def get(client: Client, path: str, status: int = 200, **headers: str) -> str:
    """The page's HTML, without the line break hints (``<wbr>``) in node ids, so that
    a node id reads as itself (`test_node_ids_wrap_between_their_parts` checks them)."""
    response = client.get(path, headers=headers)
    assert response.status_code == status, f"{path}: {response.status_code} {response.text[:500]}"
    assert response.headers["content-type"].startswith("text/html")
    return response.text.replace("<wbr>", "")


def fragment(client: Client, path: str, target: str, status: int = 200) -> str:
    body = get(client, path, status, **{"HX-Request": "true", "HX-Target": target})
    assert "<html" not in body
    assert "<header" not in body
    assert "<footer" not in body
    assert f'id="{target}"' in body
    return body


# --- the pages and what they show ---------------------------------------------------


def test_overview_shows_runs_live_runs_problems_trend_flaky_and_slow(
    client: Client, filled: Filled
) -> None:
    body = get(client, "/")
    assert f'Overview · <span class="project">{PROJECT}</span>' in body
    live = body.split("Running now")[1].split("Hung and crashed")[0]
    assert filled.live_run[:8] in live
    assert filled.passed_run[:8] not in live
    assert 'data-chart="pass-rate-chart"' in body
    assert "Pass rate (%)" in body
    assert "50.0 %" in body  # the failed run: 2 passed, 2 failed
    assert "t.py::test_flaky" in body.split("Top flaky")[1]
    assert "t.py::test_slow" in body.split("Top slow")[1]
    # Something runs: the live part polls, and answers its poll with itself.
    assert '<div id="overview-live"' in body
    assert 'hx-trigger="every 3s"' in body
    assert filled.live_run[:8] in fragment(client, "/", "overview-live")


def test_the_overview_s_problems_are_those_of_its_project(client: Client, filled: Filled) -> None:
    body = get(client, "/")
    problems = body.split("Hung and crashed")[1].split("Pass rate")[0]
    assert filled.live_run[:8] in problems  # the shop's own run hangs
    # a program's hung session and another project's hung run are not the shop's ...
    assert filled.hung_session[:8] not in problems
    assert filled.other_project_run[:8] not in problems
    # ... but are counted, with a way to them
    # (both hang: the link goes where they are, and there is none to the crashed)
    assert (
        'Elsewhere (other projects and programs): <a href="/sessions?status=hung">2 hung</a>'
        " sessions." in problems
    )
    assert "status=crashed" not in problems
    billing = get(client, url("/", project=OTHER_PROJECT)).split("Hung and crashed")[1]
    billing = billing.split("Pass rate")[0]
    assert filled.other_project_run[:8] in billing
    assert filled.live_run[:8] not in billing
    worker_page = get(client, url("/", project="Worker"))
    worker = worker_page.split("Hung and crashed")[1]
    assert filled.hung_session[:8] in worker.split("Pass rate")[0]  # a program: its product
    assert '<option value="Worker" selected>Worker</option>' in worker_page  # not a run project


def test_the_overview_headline_shows_each_branch_s_latest_run(
    client: Client, filled: Filled
) -> None:
    body = get(client, "/")
    cards = body.split('<ul class="cards">')[1].split("</ul>")[0]
    main, feature = cards.split("<li>")[1:]
    # main: the live run (the partial run after the failed one does not speak for it)
    assert f'href="/runs/{filled.live_run}"' in main
    assert '<span class="card-branch">main</span>' in main
    assert '<span class="badge s-hung">hung</span>' in main
    assert "100.0 %" in main
    assert "1 test</span>" in main
    assert "still running" in main
    # feature-x: its one run, passed, 2 tests, in 12.5 s
    assert f'href="/runs/{filled.feature_run}"' in feature
    assert '<span class="badge r-passed">passed</span>' in feature
    assert "100.0 %" in feature
    assert "2 tests</span>" in feature
    assert "12.50 s · <time" in feature
    # a run goes on: the headline refreshes with the live part
    live_part = fragment(client, "/", "overview-live")
    assert f'<li><a class="card card-hung" href="/runs/{filled.live_run}"' in live_part


def test_a_partial_run_is_marked_and_left_out_of_the_pass_rate_trend(
    client: Client, filled: Filled
) -> None:
    runs_list = get(client, "/runs")
    row = runs_list.split(f'href="/runs/{filled.partial_run}"')[1].split("</tr>")[0]
    assert '<span class="badge partial"' in row
    passed_row = runs_list.split(f'href="/runs/{filled.passed_run}"')[1].split("</tr>")[0]
    assert "partial" not in passed_row
    run_page = get(client, f"/runs/{filled.partial_run}")
    assert '<span class="badge partial"' in run_page.split("</h1>")[0]
    assert (
        "A partial run: only part of the suite was selected (<code>-k test_only_here</code>)"
        in run_page
    )
    overview_page = get(client, "/")
    trend = overview_page.split("Pass rate, run by run")[1].split("</section>")[0]
    assert filled.partial_run[:8] not in trend  # neither in the chart nor in its table
    assert filled.failed_run[:8] in trend
    assert "1 partial run (<code>-k</code>, <code>--lf</code>, some files) is left out." in trend
    spec = _chart_spec(overview_page, "pass-rate-chart")
    rates = [p["y"] for d in spec["datasets"] for p in d["points"]]
    assert sorted(rates) == [50.0, 100.0, 100.0]  # no 0 % run
    # The axis spans the data, not always 0-100 %
    assert (spec["y"]["min"], spec["y"]["max"]) == (45.0, 100.0)


def test_the_pass_rate_tooltip_names_the_counts_and_a_line_per_branch(
    client: Client, filled: Filled
) -> None:
    spec = _chart_spec(get(client, "/"), "pass-rate-chart")
    by_label = {d["label"]: d for d in spec["datasets"]}
    assert set(by_label) == {"main", "feature-x"}
    assert by_label["main"]["tips"] == ["4 passed, 0 failed", "2 passed, 2 failed"]
    assert all(not tip.startswith(":") for d in spec["datasets"] for tip in d["tips"])


def test_runs_list_shows_each_run_with_counts_and_duration(client: Client, filled: Filled) -> None:
    body = get(client, "/runs")
    for run in (filled.passed_run, filled.failed_run, filled.live_run, filled.feature_run):
        assert f'href="/runs/{run}"' in body
    assert "feature-x" in body
    assert "c0ffee1234" in body
    assert "12.50 s" in body  # durations with their unit
    assert '<span class="count c-failed" title="failed">2 failed</span>' in body


def test_run_page_shows_metadata_failures_first_with_tracebacks_and_slowest(
    client: Client, filled: Filled
) -> None:
    body = get(client, f"/runs/{filled.failed_run}")
    assert "github-actions" in body
    assert "3.11.7" in body
    assert "Linux-x86_64" in body
    assert "c0ffee1234567890" in body
    assert "main" in body
    tests_part = body.split('<div id="run-tests"')[1]
    assert tests_part.index("t.py::test_flaky") < tests_part.index("t.py::test_ok")
    assert '<summary>Traceback</summary><pre class="tb-text">' in tests_part
    # the failures come before everything but the outcome: the tests table precedes
    # the slowest tests, and where the run ran is folded away
    assert body.index('<div id="run-tests"') < body.index("Slowest tests")
    assert '<details class="where"' in body
    assert ">ended<" not in body  # the run's outcome says it all; no session jargon
    slowest = body.split("Slowest tests")[1]
    assert slowest.index("t.py::test_slow") < slowest.index("t.py::test_ok")
    assert "1.53 s" in slowest
    assert 'hx-trigger="every' not in body  # it ended: nothing polls


def test_a_failure_s_traceback_opens_with_pytest_s_explanation_marked(
    client: Client, filled: Filled
) -> None:
    body = get(client, f"/runs/{filled.failed_run}")
    flaky_row = body.split('<tr class="row-failed">')[1].split("</tr>")[0]
    assert "t.py::test_flaky" in flaky_row
    assert '<details class="tb" data-key="t:t.py::test_flaky#0#:tb" open>' in flaky_row
    assert '<span class="tb-e">E       assert 1 == 2\n</span>' in flaky_row
    assert '<span class="tb-here">&gt;       assert compute() == 2\n</span>' in flaky_row
    # passed tests have no traceback; a page opens its first few failures only
    assert runs.OPEN_TRACEBACKS == 5


def test_the_run_s_tests_are_paged_with_numbers_and_counts(
    client: Client, filled: Filled, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "TESTS_PER_PAGE", 3)
    first = get(client, f"/runs/{filled.failed_run}").split('<div id="run-tests"')[1]
    pager = first.split('<nav class="pager"')[1].split("</nav>")[0]
    assert f"1{DASH}3 of 4 results" in pager
    assert '<span class="current" aria-current="page">1</span>' in pager
    assert f'href="/runs/{filled.failed_run}?page=2"' in pager
    assert 'rel="next">Next →</a>' in pager
    assert '<span class="off">← Previous</span>' in pager
    assert "Older" not in pager
    assert first.split("<tbody>")[1].split("</tbody>")[0].count("<tr ") == 3
    second = fragment(client, f"/runs/{filled.failed_run}?page=2", "run-tests")
    pager = second.split('<nav class="pager"')[1].split("</nav>")[0]
    assert f"4{DASH}4 of 4 results" in pager
    assert f'href="/runs/{filled.failed_run}" hx-get' in pager  # page 1: no page parameter
    assert '<span class="off">Next →</span>' in pager
    assert second.split("<tbody>")[1].split("</tbody>")[0].count("<tr ") == 1
    # the count follows the filters, and the links keep them
    failed = get(client, f"/runs/{filled.failed_run}?outcome=passed&page=1")
    assert f"1{DASH}2 of 2 results" not in failed  # one page: no pager
    assert '<nav class="pager"' not in failed
    past = get(client, f"/runs/{filled.failed_run}?page=9")
    assert "This list has only 2 pages." in past
    assert f'href="/runs/{filled.failed_run}?page=2" hx-get' in past  # "previous": the last


def test_the_runs_list_is_paged_with_counts(
    client: Client, filled: Filled, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "RUNS_PER_PAGE", 2)
    body = get(client, url("/runs", project=PROJECT))
    assert f"1{DASH}2 of 5 runs" in body
    assert 'href="/runs?project=shop&amp;page=3"' in body


def test_a_ci_url_that_is_not_http_is_not_a_link(client: Client, filled: Filled) -> None:
    body = get(client, f"/runs/{filled.failed_run}")
    assert 'href="javascript:' not in body
    assert "<code>javascript:alert(1)</code>" in body
    assert 'href="https://ci.example/run/1"' in get(client, f"/runs/{filled.passed_run}")


def test_a_live_run_polls_and_shows_its_hang_and_the_test_in_progress(
    client: Client, filled: Filled
) -> None:
    body = get(client, f"/runs/{filled.live_run}")
    assert 'hx-trigger="every 3s"' in body
    assert 'hx-include="#test-filters"' in body
    assert "Tests in progress" in body
    assert "t.py::test_stuck" in body
    assert "application appears hung" in body
    assert "silent for 1 min 2 s" in body
    assert "Thread MainThread" in body
    # Its poll answers the live part, and the tests table out of band.
    poll = fragment(client, f"/runs/{filled.live_run}", "run-live")
    assert '<div id="run-tests" hx-swap-oob="true">' in poll


def test_test_history_strip_chart_failures_and_failing_since(
    client: Client, filled: Filled
) -> None:
    body = get(client, url("/tests", nodeid="t.py::test_flaky", project=PROJECT))
    strip = body.split('<ol class="strip"')[1].split("</ol>")[0]
    assert strip.count('class="cell o-passed"') == 2
    assert strip.count('class="cell o-failed"') == 1
    assert f'href="/runs/{filled.failed_run}"' in strip
    assert re.search(
        r'title="run \w{8} · failed · \d+ ms · 2027-\d\d-\d\d [\d:]+ UTC · main"', strip
    )
    for outcome in ("passed", "failed", "error", "skipped", "xfailed", "xpassed"):
        assert f'<span class="cell o-{outcome}"></span> {outcome}' in body  # the legend
    assert 'data-chart="history-chart"' in body
    assert "Duration (ms)" in body
    assert "Run started (UTC)" in body
    assert "AssertionError" in body.split("<h2>Failures</h2>")[1]
    assert "Failing since" not in body  # it passed on feature-x afterwards
    flaky = body.split('<p class="notice">Flaky:')[1].split("</p>")[0]
    assert "passed and failed on the same commit (<code>c0ffee1234</code>)" in flaky
    assert 'href="/flaky?project=shop"' in flaky
    main_only = get(
        client, url("/tests", nodeid="t.py::test_flaky", project=PROJECT, branch="main")
    )
    assert "Failing since" in main_only


def test_flaky_slow_and_failures_pages(client: Client, filled: Filled) -> None:
    body = get(client, "/flaky")
    table = body.split('id="flaky-table"')[1]
    assert "t.py::test_flaky" in table
    assert "t.py::test_ok" not in table
    assert "33.3 %" in table  # failed in 1 of 3 runs

    body = get(client, "/slow")
    assert "Slowest" in body
    assert "Got slower" in body
    assert body.index("t.py::test_slow") < body.index("t.py::test_ok")
    assert "1.53 s" in body

    body = get(client, "/failures")
    table = body.split('id="failures-table"')[1]
    assert "AssertionError" in table
    assert "boom &lt;script&gt;alert(&lt;n&gt;)&lt;/script&gt; &lt;n&gt;" in table  # signature
    # the example's run (the newest failure)
    assert any(f'href="/runs/{run}"' in table for run in (filled.failed_run, filled.partial_run))
    assert "/tests?nodeid=t.py%3A%3Atest_flaky&amp;project=shop" in table


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[Store, Client]]:
    """An empty store of its own, and a client of the app over it."""
    store = Store(tmp_path / "fresh.duckdb", soft_flush_interval=0.05)
    try:
        with TestClient(app=create_app(Settings(db_path=store.db.path), store=store)) as client:
            yield store, client
    finally:
        store.close()


def test_failures_sent_without_times_do_not_break_the_failures_page(
    fresh: tuple[Store, Client],
) -> None:
    # A client may leave out when a test started and stopped: such a cluster has no
    # example to show, and the page says the rest.
    store, client = fresh
    maker = RecordMaker()
    store.write_sync(
        [
            maker.start(product=PROJECT, name="pytest"),
            maker.make(wire.RunStart, project=PROJECT),
            maker.result("t.py::test_x", "failed", exc_type="ValueError", exc_message="no"),
        ]
    )
    table = get(client, "/failures").split('id="failures-table"')[1]
    assert "<code>ValueError</code>" in table
    assert "t.py::test_x" in table


def test_an_empty_store_says_how_to_fill_it(fresh: tuple[Store, Client]) -> None:
    _, client = fresh
    overview_page = get(client, "/")
    assert "No test run recorded yet." in overview_page
    assert "<pre>pytest --datacat --datacat-url http://testserver.local</pre>" in overview_page
    assert "datacat demo" in overview_page
    assert "<form" not in overview_page.split("<main")[1]  # no filters over nothing
    assert "Pass rate" not in overview_page
    for path in ("/runs", "/flaky", "/slow", "/failures"):
        assert "No test run recorded yet." in get(client, path), path


def test_sessions_list_and_filters(client: Client, filled: Filled) -> None:
    body = get(client, "/sessions")
    assert filled.app_session[:8] in body
    assert "EditorApp" in body
    assert "channel=beta" in body
    hung = get(client, "/sessions?status=hung")
    assert filled.hung_session[:8] in hung
    assert filled.app_session[:8] not in hung
    for query in ("name=editor", "label=channel%3Dbeta", "path=theme&value=dark"):
        found = get(client, f"/sessions?{query}")
        assert filled.app_session[:8] in found, query
        assert filled.hung_session[:8] not in found, query


def test_session_page_state_tree_events_history_and_metrics(client: Client, filled: Filled) -> None:
    body = get(client, f"/sessions/{filled.app_session}")
    state = body.split("<h2>State</h2>")[1].split("</section>")[0]
    assert '<span class="key">window</span>' in state
    assert '"Inspector"' in state
    assert '<span class="key">theme</span>: <span class="v-str">"dark"</span>' in state
    events = body.split("<h2>Events</h2>")[1]
    assert "window_opened" in events
    assert "ValueError" in events
    assert "Traceback (most recent call last):" in events
    assert "extra data" in events
    assert "cycle" in events
    assert "State history" in body
    assert body.count('data-key="sh-') >= 2
    assert 'data-chart="metric-chart-1"' in body
    assert 'data-chart="metric-chart-2"' in body
    assert "<h3>fps" in body
    assert "59.5" in body
    assert 'hx-trigger="every' not in body  # ended
    hung = get(client, f"/sessions/{filled.hung_session}")
    assert 'hx-trigger="every 3s"' in hung
    assert fragment(client, f"/sessions/{filled.hung_session}", "session-live")


def test_a_session_page_shows_hang_stacks_as_the_run_page_does(
    client: Client, filled: Filled
) -> None:
    run_page = get(client, f"/runs/{filled.live_run}")
    session_page = get(client, f"/sessions/{filled.live_run}")
    stack = (
        '<pre class="tb-text">  File &#34;stuck.py&#34;\n'
        "&lt;script&gt;alert(1)&lt;/script&gt;</pre>"
    )
    for body in (run_page, session_page):
        assert "Thread MainThread</summary>" in body
        assert stack in body
        assert 'in <a class="nodeid"' in body
        assert "silent for 1 min 2 s" in body
    events = session_page.split("<h2>Events</h2>")[1]
    assert '<span class="v-str">"  File' not in events  # no JSON tree of the frames
    # A program's hang (no test, no threads) reads as a sentence too.
    hung = get(client, f"/sessions/{filled.hung_session}").split("<h2>Events</h2>")[1]
    assert "silent for 1 min 30 s" in hung


def test_a_test_run_s_session_events_read_as_tests(client: Client, filled: Filled) -> None:
    events = get(client, f"/sessions/{filled.failed_run}").split("<h2>Events</h2>")[1]
    assert (
        '<span class="badge o-failed">failed</span> <a class="nodeid"'
        ' href="/tests?nodeid=t.py%3A%3Atest_flaky&amp;project=shop">t.py::test_flaky</a>'
    ) in events
    assert "on gw0</span>" in events
    assert '{"nodeid": "t.py::test_ok"' not in events  # no JSON for a test's result
    exception = events.split('class="event event-exception"')[1].split("</li>")[0]
    assert 'in <a class="nodeid"' in exception  # an exception names its test


def test_a_string_ending_in_a_line_break_keeps_its_quote_on_its_line(
    client: Client, filled: Filled
) -> None:
    body = get(client, f"/sessions/{filled.app_session}")
    events = body.split("<h2>Events</h2>")[1]
    # the exception's traceback lines end in "\n": shown in a <pre>, not as a tree
    assert '<pre class="tb-text">Traceback (most recent call last):\nValueError:' in events
    state = body.split("<h2>State</h2>")[1].split("</section>")[0]
    assert '<span class="v-str">"dark"</span>' in state
    assert (
        '<span class="v-str">"two\nlines<span class="eol" title="ends with a line break">↵</span>"'
        in state
    )


def test_per_test_metrics_of_a_run_are_points_per_test_in_their_unit(
    client: Client, filled: Filled
) -> None:
    body = get(client, f"/sessions/{filled.failed_run}")
    charts = _session_charts(body)
    assert set(charts) == {"test_cpu_time", "test_duration", "test_rss_delta"}
    for name, spec in charts.items():
        (dataset,) = spec["datasets"]
        assert dataset["showLine"] is False, name  # no line from one test to another
        assert spec["x"]["time"] is False, name
        assert spec["x"]["title"] == "Tests, highest value first"
        values = [p["y"] for p in dataset["points"]]
        assert values == sorted(values, reverse=True), name
        assert [p["x"] for p in dataset["points"]] == [1, 2, 3, 4]
        assert (spec["x"]["min"], spec["x"]["max"]) == (0, 5)
        assert len(dataset["tips"]) == 4
        assert "t.py::test_slow" in dataset["tips"]
        assert set(dataset["outcomes"]) == {"passed", "failed"}
    rss = charts["test_rss_delta"]
    assert rss["y"]["title"] == "test_rss_delta (MiB)"
    assert [p["y"] for p in rss["datasets"][0]["points"]] == [6.0, 4.5, 3.0, 1.5]
    assert charts["test_duration"]["y"]["title"] == "test_duration (s)"
    assert charts["test_cpu_time"]["y"]["title"] == "test_cpu_time (ms)"
    # the table beside each: tests, the highest first, values in their unit
    assert "values, one per test</span></h3>" in body
    assert '<td class="num">6.0 MiB</td>' in body
    assert "1572864" not in body.split("<h2>Metrics</h2>")[1].split("<h2>Events</h2>")[0]


def test_an_application_s_metrics_read_in_their_unit(client: Client, filled: Filled) -> None:
    body = get(client, f"/sessions/{filled.app_session}")
    assert '<td class="num">250 ms</td>' in body
    latency = _session_charts(body)["latency"]
    assert latency["y"]["title"] == "latency (ms)"
    assert latency["datasets"][0]["showLine"] is True  # one series over time: a line
    assert latency["x"]["time"] is True
    explorer = get(client, url("/explore", name="latency"))
    stats = explorer.split('<dl class="stats">')[1].split("</dl>")[0]
    assert "<dd>250 ms</dd>" in stats
    rss = get(client, url("/explore", name="test_rss_delta"))
    assert "<dt>Peak</dt><dd>6.0 MiB</dd>" in rss
    assert _chart_spec(rss, "metric-chart")["y"]["title"] == "test_rss_delta (MiB)"


@pytest.mark.parametrize("path", ["/explore", "/sessions"])
def test_state_path_fields_suggest_the_paths_that_exist(client: Client, path: str) -> None:
    body = get(client, path)
    field = body.split('name="path"')[1].split("</label>")[0]
    assert 'list="state-paths"' in field
    options = re.findall(r'<option value="([^"]*)">', field.split('<datalist id="state-paths">')[1])
    assert {"window", "window.open", "window.title", "theme"} <= set(options)
    assert html.escape(SCRIPT) in options  # a key holding markup is escaped


def test_node_ids_wrap_between_their_parts(client: Client, filled: Filled) -> None:
    raw = client.get("/failures").text
    table = raw.split('id="failures-table"')[1]
    assert ">t.py::<wbr>test_flaky</a>" in table
    assert "test_evil.py::<wbr>test_evil<wbr>[&lt;script&gt;" in table


def test_a_test_run_session_links_to_its_run(client: Client, filled: Filled) -> None:
    body = get(client, f"/sessions/{filled.failed_run}")
    assert f'href="/runs/{filled.failed_run}"' in body


def test_metrics_explorer_statistics_and_filters(client: Client, filled: Filled) -> None:
    body = get(client, "/explore")
    for name in ("fps", "memory_mb", "test_duration"):
        assert f'<option value="{name}"' in body
    body = get(client, "/explore?name=fps")
    stats = body.split('<dl class="stats">')[1].split("</dl>")[0]
    assert "<dd>59.5</dd>" in stats
    assert "<dd>44.75</dd>" in stats
    assert "<dd>30</dd>" in stats
    assert 'data-chart="metric-chart"' in body
    assert "Time (UTC)" in body
    peak = get(client, "/explore?name=fps&aggregation=peak")
    assert "<dt>Points</dt><dd>1" in peak
    for query in (
        "filter=current&path=theme&value=dark",
        "filter=history&path=window.open&value=%5B%22Main%22%5D",
        "filter=contains&path=window.open&value=Inspector",
    ):
        found = get(client, f"/explore?name=fps&{query}")
        assert "<dt>Sessions matched</dt><dd>1</dd>" in found, query
    none = get(client, "/explore?name=fps&filter=current&path=theme&value=light")
    assert "<dt>Sessions matched</dt><dd>0</dd>" in none


def test_sql_console_runs_a_query_and_lists_the_schema(client: Client) -> None:
    body = get(client, url("/sql", q="SELECT 41 + 1 AS answer"))
    assert '<th title="INTEGER">answer</th>' in body
    assert "<td>42</td>" in body
    assert 'href="/api/sql?q=SELECT+41+%2B+1+AS+answer&amp;format=csv"' in body
    assert "format=parquet" in body
    assert "<code>test_results</code>" in body
    assert "nodeid" in body
    assert "data-sql-example=" in body
    assert "Slowest tests of the latest run" in body
    # The Run button posts; htmx gets the result fragment.
    response = client.post(
        "/sql",
        data={"sql": "SELECT nodeid FROM tests ORDER BY nodeid"},
        headers={"HX-Request": "true", "HX-Target": "sql-result"},
    )
    assert response.status_code == 200
    assert "<html" not in response.text
    assert "t.py::test_flaky" in response.text
    # A plain post (no JavaScript) gets the whole page.
    response = client.post("/sql", data={"sql": "SELECT 1"})
    assert response.status_code == 200
    assert "<html" in response.text


@pytest.mark.parametrize(
    ("sql_text", "message"),
    [
        ("DROP TABLE runs", "only read-only queries"),
        ("SELECT * FROM no_such_table", "no_such_table"),
        ("SELECT 1; SELECT 2", "one statement at a time"),
        ("COPY runs TO '/tmp/x.csv'", "only read-only queries"),
    ],
)
def test_sql_console_refusals_and_errors_are_messages(
    client: Client, sql_text: str, message: str
) -> None:
    response = client.post(
        "/sql", data={"sql": sql_text}, headers={"HX-Request": "true", "HX-Target": "sql-result"}
    )
    assert response.status_code == 400
    assert 'id="sql-result"' in response.text
    assert "Not run:" in response.text
    assert message in response.text
    assert get(client, url("/sql", q=sql_text), 400)


# --- filters ------------------------------------------------------------------------


def test_runs_filters(client: Client, filled: Filled) -> None:
    passed = get(client, "/runs?outcome=passed")
    assert filled.passed_run[:8] in passed
    assert filled.failed_run[:8] not in passed
    failed = get(client, "/runs?outcome=failed")
    assert filled.failed_run[:8] in failed
    assert filled.passed_run[:8] not in failed
    feature = get(client, "/runs?branch=feature-x")
    assert filled.feature_run[:8] in feature
    assert filled.passed_run[:8] not in feature
    nope = get(client, "/runs?project=nope")
    assert nope.count('href="/runs/') == 0
    assert "No run matches these filters." in nope
    # Blank fields (what a form sends) mean "any".
    assert filled.failed_run[:8] in get(client, "/runs?project=&branch=&outcome=")


def test_run_tests_filter_by_outcome_and_search(client: Client, filled: Filled) -> None:
    only_failed = get(client, f"/runs/{filled.failed_run}?outcome=failed")
    table = only_failed.split('<div id="run-tests"')[1].split("<h2>Slowest tests")[0]
    assert "t.py::test_flaky" in table
    assert "t.py::test_ok" not in table
    assert 'class="badge o-passed"' not in table
    searched = get(client, f"/runs/{filled.failed_run}?q=slow").split('<div id="run-tests"')[1]
    searched = searched.split("<h2>Slowest tests")[0]
    assert "t.py::test_slow" in searched
    assert "t.py::test_ok" not in searched
    # The search is text, not a pattern.
    assert "No test matches" in get(client, f"/runs/{filled.failed_run}?q=%25")


def test_window_filters_on_insight_pages(client: Client) -> None:
    feature = get(client, "/flaky?branch=feature-x").split('id="flaky-table"')[1]
    assert "t.py::test_flaky" not in feature  # never failed there
    one_run = get(client, "/failures?runs=1").split('id="failures-table"')[1]
    assert "No failure in the last 1 runs" in one_run  # the newest run is the live one
    assert 'value="3" class="narrow"' in get(client, "/slow?runs=3")
    # A branch with no runs is not a branch without failures.
    for page, table in (("flaky", "flaky-table"), ("failures", "failures-table")):
        nowhere = get(client, f"/{page}?branch=nosuch").split(f'id="{table}"')[1]
        assert "No runs of shop on nosuch yet" in nowhere, page
        assert "in the last" not in nowhere.split("</section>")[0], page


def test_pagination_links_keep_the_filters(client: Client, filled: Filled) -> None:
    body = get(client, "/runs?branch=main&page=2")
    assert "This list has only 1 page." in body
    assert 'href="/runs?branch=main"' in body  # "newer" goes back to page 1


# --- htmx fragments -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/runs?outcome=failed", "runs-table"),
        ("/flaky?runs=10", "flaky-table"),
        ("/slow?order=max", "slow-tables"),
        ("/failures", "failures-table"),
        ("/sessions?status=ended", "sessions-table"),
        ("/explore?name=fps&aggregation=average", "metrics-result"),
        (f"/tests?nodeid=t.py::test_ok&project={PROJECT}", "history"),
    ],
)
def test_htmx_requests_get_the_fragment_without_the_layout(
    client: Client, path: str, target: str
) -> None:
    response = client.get(path, headers={"HX-Request": "true", "HX-Target": target})
    assert response.status_code == 200
    assert "HX-Request" in response.headers["vary"]
    body = response.text
    assert "<html" not in body
    assert "<header" not in body
    assert "<form" not in body
    assert body.lstrip().startswith(("<section", "<div"))
    assert f'id="{target}"' in body


def test_run_tests_fragment(client: Client, filled: Filled) -> None:
    body = fragment(client, f"/runs/{filled.failed_run}?outcome=failed", "run-tests")
    assert "t.py::test_flaky" in body
    assert "t.py::test_ok" not in body
    assert "hx-swap-oob" not in body


def test_a_history_restore_gets_the_whole_page(client: Client) -> None:
    body = get(
        client,
        "/runs?outcome=failed",
        **{"HX-Request": "true", "HX-Target": "runs-table", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in body


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/runs/00000000-0000-0000-0000-000000000000",
        "/runs/not-a-uuid",
        "/sessions/00000000-0000-0000-0000-000000000000",
        "/sessions/not-a-uuid",
        "/tests?nodeid=t.py::test_nope&project=shop",
        "/tests?nodeid=t.py::test_ok&project=no-such-project",
    ],
)
def test_unknown_things_are_a_404_page(client: Client, path: str) -> None:
    body = get(client, path, 404)
    assert "<h1>404 · Not found</h1>" in body
    assert "<nav" in body


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/runs?outcome=exploded", "outcome must be one of"),
        ("/runs?page=0", "page must be between 1"),
        ("/runs?page=two", "page must be a whole number"),
        ("/runs/{run}?outcome=bad", "outcome must be one of"),
        ("/flaky?runs=-1", "runs must be between 1"),
        ("/slow?threshold=abc", "threshold must be a number"),
        ("/slow?threshold=nan", "threshold must be between"),
        ("/slow?order=fastest", "order must be one of"),
        ("/failures?runs=1e9", "runs must be a whole number"),
        ("/tests", "nodeid is required"),
        ("/sessions?status=sleeping", "status must be one of"),
        ("/sessions?path=theme", "needs both a path"),
        ("/sessions?path=.&value=1", "state path is empty"),
        ("/explore?name=fps&aggregation=median", "aggregation must be one of"),
        ("/explore?name=fps&filter=current", "needs a state path and a value"),
        ("/explore?name=fps&filter=sometimes", "filter must be one of"),
    ],
)
def test_bad_filter_values_are_a_400_page(
    client: Client, filled: Filled, path: str, message: str
) -> None:
    body = get(client, path.format(run=filled.failed_run), 400)
    assert "400 · Bad request" in body
    assert message in body


def test_a_bad_filter_in_an_htmx_request_keeps_the_target(client: Client) -> None:
    body = fragment(client, "/runs?outcome=exploded", "runs-table", 400)
    assert 'class="notice notice-error"' in body


# --- escaping -----------------------------------------------------------------------


def _pages_showing_the_evil_test(filled: Filled) -> list[str]:
    return [
        f"/runs/{filled.passed_run}",
        f"/runs/{filled.failed_run}",
        f"/runs/{filled.failed_run}?outcome=failed",
        f"/runs/{filled.failed_run}?q=evil",
        url("/tests", nodeid=EVIL_NODEID, project=PROJECT),
        "/flaky",
        "/slow",
        "/failures",
        url("/sql", q="SELECT nodeid, param_id FROM tests"),
    ]


def test_the_evil_test_is_shown_escaped_everywhere(client: Client, filled: Filled) -> None:
    escaped_nodeid = str(markupsafe.escape(EVIL_NODEID))  # as Jinja writes quotes
    for path in _pages_showing_the_evil_test(filled):
        body = get(client, path)
        assert SCRIPT not in body, path
        assert ESCAPED_SCRIPT in body, path
        if not path.startswith("/sql"):
            assert escaped_nodeid in body, path  # quotes, unicode and newline intact
    history = get(client, url("/tests", nodeid=EVIL_NODEID, project=PROJECT))
    assert f'<h1 class="nodeid-title">{escaped_nodeid}</h1>' in history
    assert 'value="test_evil.py::test_evil[&lt;script&gt;' in history  # the hidden input


def test_sessions_labels_state_events_and_hang_stacks_are_escaped(
    client: Client, filled: Filled
) -> None:
    for path in (
        "/sessions",
        f"/sessions/{filled.app_session}",
        f"/runs/{filled.live_run}",
        url("/explore", name="fps", filter="current", path="window.title", value=SCRIPT),
        url("/sessions", label=f"evil={SCRIPT}"),
    ):
        body = get(client, path)
        assert SCRIPT not in body, path
        assert ESCAPED_SCRIPT in body, path


def test_chart_data_cannot_close_its_script_element(client: Client, filled: Filled) -> None:
    body = get(client, f"/sessions/{filled.app_session}")
    for spec in re.findall(
        r'<script type="application/json" id="[^"]+">(.*?)</script>', body, re.S
    ):
        assert "<" not in spec
        assert ">" not in spec


# --- the pieces ---------------------------------------------------------------------


def _session_charts(body: str) -> dict[str, Any]:
    """A session page's metric charts, by metric name."""
    specs = (
        _chart_spec(body, f"metric-chart-{n}") for n in range(1, body.count("data-chart=") + 1)
    )
    return {spec["datasets"][0]["label"]: spec for spec in specs}


def _chart_spec(body: str, chart_id: str) -> Any:
    match = re.search(
        rf'<script type="application/json" id="{chart_id}">(.*?)</script>', body, re.S
    )
    assert match, chart_id
    return json.loads(match.group(1))


def test_static_files_are_served(client: Client) -> None:
    body = get(client, "/")
    for name in ("app.css", "app.js", "vendor/htmx.min.js", "vendor/chart.umd.min.js"):
        match = re.search(rf'"(/static/{re.escape(name)}\?v=[0-9a-f]+)"', body)
        assert match, name
        response = client.get(match.group(1))
        assert response.status_code == 200, name
        assert len(response.content) > 100, name
    assert client.get("/static/vendor/LICENSE-htmx").status_code == 200


def test_every_page_has_the_navigation_bar(client: Client, filled: Filled) -> None:
    paths = ("/", "/runs", "/flaky", "/slow", "/failures", "/quarantine", "/sessions", "/explore")
    for path in (*paths, "/sql"):
        body = get(client, path)
        assert body.count('<nav aria-label="Main">') == 1
        assert f'<a href="{path}" aria-current="page">' in body, path


PAGE_CONTEXTS = [
    overview.OverviewPage,
    runs.RunsPage,
    runs.RunPage,
    test_history.TestHistoryPage,
    flaky.FlakyPage,
    slow.SlowPage,
    failures.FailuresPage,
    sessions.SessionsPage,
    sessions.SessionPage,
    metrics.MetricsPage,
    quarantine.QuarantinePage,
    sql.SqlPage,
    ErrorPage,
]


@pytest.mark.parametrize("context", PAGE_CONTEXTS, ids=lambda c: c.__name__)
def test_each_page_context_is_a_documented_dataclass_naming_its_templates(
    context: type[object],
) -> None:
    assert dataclasses.is_dataclass(context)
    assert context.__dataclass_params__.frozen  # type: ignore[attr-defined]
    doc = context.__doc__ or ""
    named = re.findall(r"``([\w.]+\.html)``", doc)
    assert named, f"{context.__name__} names no template"
    for template in named:
        assert (TEMPLATES / template).is_file(), template


def test_an_unexpected_error_is_a_500_page_that_tells_nothing(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(flaky, "flaky_tests", broken)
    response = client.get("/flaky")
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert "secret detail" not in response.text
    assert "<nav" in response.text


@pytest.mark.parametrize("path", ["/", "/runs/not-a-run", "/slow?runs=many", "/static/app.css"])
def test_every_answer_carries_the_security_headers(client: Client, path: str) -> None:
    answer = client.get(path)
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_a_mistyped_url_is_a_page_for_a_browser_and_json_for_a_script(client: Client) -> None:
    page = client.get("/runz", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 404
    assert "There is no page here." in page.text
    assert "<nav" in page.text  # the whole dashboard frame, to go on from
    script = client.get("/runz", headers={"Accept": "application/json"})
    assert script.status_code == 404
    assert script.json() == {"status_code": 404, "detail": "Not Found"}
    api = client.get("/api/nope", headers={"Accept": "text/html"})
    assert api.headers["content-type"].startswith("application/json")


def test_a_parse_error_keeps_its_lines_so_the_caret_points_at_the_fault(client: Client) -> None:
    response = client.post(
        "/sql", data={"sql": "SELEC 1"}, headers={"HX-Request": "true", "HX-Target": "sql-result"}
    )
    assert response.status_code == 400
    error = response.text.split('<pre class="sql-error">')[1].split("</pre>")[0]
    lines = error.splitlines()
    source = next(line for line in lines if line.startswith("LINE 1:"))
    caret = lines[lines.index(source) + 1]
    assert caret.index("^") == source.index("SELEC"), error
