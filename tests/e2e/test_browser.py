"""The dashboard in a real browser: a real ``datacat serve``, filled by the real plugin and
client, driven through chromium with Playwright.

Every page must load without a console error or a failed request; htmx filters must
update tables in place; charts must draw; a test named ``<script>alert(1)</script>``
must be text, never a script.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from datacat_client import create_session
from tests.support.browser import Watched, open_chromium
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]

SCRIPT = "<script>alert(1)</script>"
PROJECT = "browser-e2e"

SUITE = """
import os

import pytest

FAIL = os.environ.get("E2E_FAIL") == "1"


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", "plain"])
def test_named(name):
    assert name


def test_ok():
    pass


def test_sometimes():
    assert not FAIL, "it failed this time"


def _deeper(n):
    if n:
        return _deeper(n - 1)
    value = 1
    assert value == 2, "the explanation pytest writes on E lines"


def test_deep_failure():
    if FAIL:
        _deeper(25)


class TestAVeryLongClassNameThatNamesTheFeatureUnderTest:
    @pytest.mark.parametrize("case", ["first_case_with_a_long_identifier", "second"])
    def test_a_test_function_whose_name_is_long_enough_to_wrap(self, case):
        pass
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real server for the module (the pages only read what the fixtures wrote)."""
    with ServerProcess(tmp_path_factory.mktemp("browser") / "browser.duckdb") as process:
        yield process


def _pytest_run(suite: Path, url: str, *, fail: bool) -> None:
    env = {
        **os.environ,
        "E2E_FAIL": "1" if fail else "0",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "datacat",
            "-p",
            "no:cacheprovider",
            "-q",
            str(suite),
            "--datacat",
            f"--datacat-url={url}",
            f"--datacat-project={PROJECT}",
        ],
        env=env,
        cwd=suite.parent,
        capture_output=True,
        check=False,
        timeout=60,
    )


@pytest.fixture(scope="module")
def data(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Three pytest runs (the middle one fails) and an application session."""
    suite_dir = tmp_path_factory.mktemp("suite")
    suite = suite_dir / "test_suite.py"
    suite.write_text(textwrap.dedent(SUITE))
    for fail in (False, True, False):
        _pytest_run(suite, server.url, fail=fail)

    session = create_session(
        server.url,
        name="browser-app",
        product="BrowserApp",
        labels={"evil": SCRIPT},
        state={"window": {"open": ["Main"], "title": SCRIPT}},
        spool_dir=suite_dir / "spool",
    )
    for i, value in enumerate((20.0, 55.5, 31.0)):
        session.update_state({"window": {"open": ["Main", f"W{i}"]}})
        session.log_metric("cpu_percent", value)
        session.log_event("tick", {"i": i, "note": SCRIPT})
        time.sleep(0.02)
    try:
        raise ValueError(SCRIPT)
    except ValueError:
        session.log_exception(extra_data={"where": "the e2e test"})
    session.end()
    session.close()

    runs = httpx.get(f"{server.url}/api/runs/", params={"project": PROJECT}).json()
    assert len(runs) == 3, runs
    failed = next(r["id"] for r in runs if r["outcome"] == "failed")
    return {"failed_run": failed, "session": session.session_id}


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with open_chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


class Browser(Watched):
    """A watched page that can tell whether a chart drew."""

    def chart_pixels(self, selector: str) -> int:
        """How many pixels of the chart's canvas are painted."""
        self.wait_until(
            "s => { const c = document.querySelector(s); return !!(c && window.Chart"
            " && Chart.getChart(c) !== undefined); }",
            selector,
        )
        painted: int = self.page.evaluate(
            """s => {
                const c = document.querySelector(s);
                const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) n++;
                return n;
            }""",
            selector,
        )
        return painted


@pytest.fixture
def browser(browser_context: Any, server: ServerProcess, data: dict[str, str]) -> Iterator[Browser]:
    page = browser_context.new_page()
    watched = Browser(page, server.url)
    try:
        yield watched
        assert watched.problems == [], watched.problems
        assert watched.dialogs == [], f"a dialog opened: {watched.dialogs}"
    finally:
        page.close()


def test_every_page_loads_without_errors(browser: Browser, data: dict[str, str]) -> None:
    nodeid = quote("test_suite.py::test_sometimes")
    for path, heading in [
        ("/", "Overview"),
        ("/runs", "Test runs"),
        (f"/runs/{data['failed_run']}", "Run"),
        (f"/tests?nodeid={nodeid}&project={PROJECT}", "test_suite.py::test_sometimes"),
        ("/flaky", "Flaky tests"),
        ("/slow", "Slow tests"),
        ("/failures", "Failure clusters"),
        ("/quarantine", "Quarantine"),
        ("/sessions", "Sessions"),
        (f"/sessions/{data['session']}", "Session"),
        ("/explore?name=cpu_percent", "Metrics explorer"),
        ("/sql", "SQL console"),
    ]:
        browser.open(path)
        assert heading in browser.page.locator("h1").inner_text(), path
        assert browser.page.locator("nav[aria-label=Main] a").count() >= 8
    assert browser.problems == []


def test_a_filter_updates_the_table_in_place(browser: Browser, data: dict[str, str]) -> None:
    page = browser.page
    browser.open("/runs")
    page.evaluate("window.__sameDocument = true")
    assert page.locator("#runs-table tbody tr").count() == 3
    with page.expect_response(lambda r: "outcome=passed" in r.url):
        page.select_option("select[name=outcome]", "passed")
    browser.wait_until("document.querySelectorAll('#runs-table tbody tr').length === 2")
    assert page.evaluate("window.__sameDocument") is True  # no full reload
    assert "outcome=passed" in page.url  # the URL carries the filter (hx-push-url)
    assert data["failed_run"][:8] not in page.locator("#runs-table").inner_text()

    # The run's tests: the search box filters as one types.
    browser.open(f"/runs/{data['failed_run']}")
    page.evaluate("window.__sameDocument = true")
    with page.expect_response(lambda r: "q=sometimes" in r.url):
        page.fill("#test-search", "sometimes")
    browser.wait_until("document.querySelectorAll('#run-tests tbody tr').length === 1")
    assert "test_sometimes" in page.locator("#run-tests").inner_text()
    assert page.evaluate("window.__sameDocument") is True


def test_charts_draw(browser: Browser, data: dict[str, str]) -> None:
    browser.open("/")
    assert browser.chart_pixels("canvas[data-chart=pass-rate-chart]") > 500
    nodeid = quote("test_suite.py::test_sometimes")
    browser.open(f"/tests?nodeid={nodeid}&project={PROJECT}")
    assert browser.chart_pixels("canvas[data-chart=history-chart]") > 500
    browser.open("/explore?name=cpu_percent")
    assert browser.chart_pixels("canvas[data-chart=metric-chart]") > 500
    # After an htmx swap, the new chart is drawn too.
    with browser.page.expect_response(lambda r: "aggregation=peak" in r.url):
        browser.page.select_option("select[name=aggregation]", "peak")
    browser.page.wait_for_selector("#metrics-result dd:text('1')")
    assert browser.chart_pixels("canvas[data-chart=metric-chart]") > 500
    browser.open(f"/sessions/{data['session']}")
    assert browser.chart_pixels("canvas[data-chart=metric-chart-1]") > 500


def test_a_script_in_a_test_name_is_text(browser: Browser, data: dict[str, str]) -> None:
    page = browser.page
    for path in (f"/runs/{data['failed_run']}", "/slow", f"/sessions/{data['session']}"):
        browser.open(path)
        page.wait_for_timeout(100)
        assert SCRIPT in page.locator("main").inner_text(), path
        assert page.evaluate("document.querySelectorAll('main script:not([type])').length") == 0
    # The SQL console shows query results as text too.
    browser.open("/sql")
    page.fill("#sql-text", "SELECT nodeid FROM tests WHERE nodeid LIKE '%script%'")
    page.click("#sql-form button[type=submit]")
    page.wait_for_selector("#sql-result table")
    assert SCRIPT in page.locator("#sql-result").inner_text()
    page.wait_for_timeout(200)
    assert browser.dialogs == []


def test_sql_examples_fill_the_editor(browser: Browser) -> None:
    page = browser.page
    browser.open("/sql")
    page.click("a[data-sql-example]:text('Describe the test results view')")
    assert page.input_value("#sql-text") == "DESCRIBE test_results"
    assert "/sql" in page.url
    assert "q=" not in page.url
    page.click("#sql-form button[type=submit]")
    page.wait_for_selector("#sql-result table")
    assert "nodeid" in page.locator("#sql-result").inner_text()


def test_a_live_session_refreshes_itself_until_it_ends(
    browser: Browser, server: ServerProcess, tmp_path: Path
) -> None:
    page = browser.page
    session = create_session(
        server.url, name="live-one", state={"step": 0}, spool_dir=tmp_path / "spool"
    )
    try:
        assert session.flush(5)
        browser.open(f"/sessions/{session.session_id}")
        page.evaluate("window.__sameDocument = true")
        assert page.locator("#session-live[hx-trigger]").count() == 1
        session.update_state({"step": 41})
        session.log_metric("speed", 3.5)
        assert session.flush(5)
        browser.wait_until(
            "document.querySelector('#session-live .state').innerText.includes('step: 41')"
        )
        assert browser.chart_pixels("canvas[data-chart=metric-chart-1]") > 100
        session.end()
        assert session.flush(5)
        browser.wait_until("!document.querySelector('#session-live').hasAttribute('hx-trigger')")
        assert "ended" in page.locator("#session-live .badge").first.inner_text()
        assert page.evaluate("window.__sameDocument") is True
    finally:
        session.close()
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url))
    page.wait_for_timeout(3500)
    assert polls == [], "the page still polls after the session ended"


def test_the_content_security_policy_stops_an_injected_script(
    browser_context: Any, server: ServerProcess, data: dict[str, str]
) -> None:
    # Were escaping ever to miss, the payload would still not run: the pages allow only
    # their own script files. (test_xss.py tests escaping with the policy bypassed.)
    page = browser_context.new_page()
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    try:
        page.goto(f"{server.url}/runs/{data['failed_run']}", wait_until="load")
        page.evaluate(
            """() => {
                const main = document.querySelector("main");
                main.insertAdjacentHTML("beforeend", '<img src="data:," onerror="window.__csp = 1">');
                const script = document.createElement("script");
                script.textContent = "window.__csp = 2";
                main.appendChild(script);
            }"""
        )
        page.wait_for_timeout(300)
        assert page.evaluate("typeof window.__csp") == "undefined"
        assert any("Content Security Policy" in text for text in messages), messages
        # and the page's own scripts ran: htmx and the charts are there
        assert page.evaluate("typeof window.htmx") == "object"
    finally:
        page.close()


#: Every page a new user walks through (the run and session pages get their ids).
PAGES = (
    "/",
    "/runs",
    "/runs/{failed_run}",
    "/tests?nodeid=test_suite.py%3A%3Atest_sometimes&project=" + PROJECT,
    "/flaky",
    "/slow",
    "/failures",
    "/sessions",
    "/sessions/{session}",
    "/sessions/{failed_run}",
    "/explore",
    "/sql",
)

#: The inputs whose placeholder is wider than the room the input has for it.
CUT_PLACEHOLDERS = """() => {
  const ctx = document.createElement("canvas").getContext("2d");
  return Array.from(document.querySelectorAll("input[placeholder]"))
    .filter(i => i.offsetParent !== null && i.placeholder)
    .map(i => {
      const cs = getComputedStyle(i);
      ctx.font = `${cs.fontStyle} ${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
      const spinner = i.type === "number" ? 16 : 0;  // its arrows take room when shown
      const room = i.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
      return {name: i.name, text: i.placeholder, need: ctx.measureText(i.placeholder).width,
              room: room - spinner};
    })
    .filter(x => x.need > x.room);
}"""


def test_every_placeholder_fits_its_field(browser: Browser, data: dict[str, str]) -> None:
    for path in PAGES:
        browser.open(path.format(**data))
        assert browser.page.evaluate(CUT_PLACEHOLDERS) == [], path


#: Where the E lines of the traceback of the test named by ``arg`` sit in its box.
TRACEBACK_VIEW = """name => {
  const row = [...document.querySelectorAll("#run-tests tbody tr")]
    .find(r => r.textContent.includes(name));
  const pre = row.querySelector("details.tb > pre.tb-text");
  const first = pre.querySelector(".tb-e");
  const box = pre.getBoundingClientRect(), line = first.getBoundingClientRect();
  return {open: pre.parentElement.open, scrolled: pre.scrollTop,
          scrollable: pre.scrollHeight > pre.clientHeight * 2,
          visible: line.top >= box.top && line.bottom <= box.bottom};
}"""


def test_a_traceback_opens_on_pytest_s_explanation(browser: Browser, data: dict[str, str]) -> None:
    page = browser.page
    browser.open(f"/runs/{data['failed_run']}")
    browser.wait_until("!!document.querySelector('pre.tb-text[data-shown]')")
    view = page.evaluate(TRACEBACK_VIEW, "test_deep_failure")
    # a long traceback (25 frames), open, scrolled down to its E lines
    assert view == {"open": True, "scrolled": view["scrolled"], "scrollable": True, "visible": True}
    assert view["scrolled"] > 0
    # Folded and opened again after scrolling away: back on the E lines.
    page.evaluate(
        """name => {
          const row = [...document.querySelectorAll("#run-tests tbody tr")]
            .find(r => r.textContent.includes(name));
          const details = row.querySelector("details.tb");
          details.querySelector("pre").scrollTop = 0;
          details.open = false;
        }""",
        "test_deep_failure",
    )
    assert page.evaluate(TRACEBACK_VIEW, "test_deep_failure")["open"] is False
    row = page.locator("#run-tests tbody tr", has_text="test_deep_failure")
    row.locator("details.tb > summary").first.click()
    browser.wait_until(
        "name => { const r = [...document.querySelectorAll('#run-tests tbody tr')]"
        ".find(r => r.textContent.includes(name)); return r.querySelector('pre.tb-text').scrollTop > 0; }",
        "test_deep_failure",
    )
    assert page.evaluate(TRACEBACK_VIEW, "test_deep_failure")["visible"] is True


#: Node ids whose parts (the text between two <wbr>) are drawn on more than one line.
BROKEN_NODEIDS = """() => {
  const broken = [], wrapped = [];
  for (const link of document.querySelectorAll("main a.nodeid")) {
    if (link.getClientRects().length > 1) wrapped.push(link.textContent);
    for (const node of link.childNodes) {
      if (node.nodeType !== Node.TEXT_NODE || !node.textContent) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      const tops = new Set(Array.from(range.getClientRects(), r => Math.round(r.top)));
      if (tops.size > 1) broken.push(node.textContent);
    }
  }
  return {broken, wrapped};
}"""


def test_node_ids_wrap_between_their_parts_only(browser: Browser, data: dict[str, str]) -> None:
    page = browser.page
    page.set_viewport_size({"width": 760, "height": 900})
    try:
        for path in (f"/runs/{data['failed_run']}", "/slow", "/flaky"):
            browser.open(path)
            found = page.evaluate(BROKEN_NODEIDS)
            assert found["broken"] == [], path
            if path.startswith("/runs/"):
                assert any("TestAVeryLongClassName" in text for text in found["wrapped"])
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})


def test_charts_span_their_data_and_per_test_metrics_are_points(
    browser: Browser, data: dict[str, str]
) -> None:
    browser.open("/")
    browser.chart_pixels("canvas[data-chart=pass-rate-chart]")
    y = browser.page.evaluate(
        "() => { const s = Chart.getChart(document.querySelector("
        "'canvas[data-chart=pass-rate-chart]')).scales.y; return [s.min, s.max]; }"
    )
    assert 0 < y[0] < 100  # not always 0-100 %
    assert y[1] == 100
    browser.open(f"/sessions/{data['failed_run']}")
    assert browser.chart_pixels("canvas[data-chart=metric-chart-1]") > 100
    charts = browser.page.evaluate(
        """() => Array.from(document.querySelectorAll("canvas[data-chart]"), c => {
          const chart = Chart.getChart(c);
          return {lines: chart.data.datasets.map(d => d.showLine),
                  x: chart.options.scales.x.title.text, y: chart.options.scales.y.title.text};
        })"""
    )
    assert {c["y"].split(" ")[0] for c in charts} >= {"test_duration", "test_cpu_time"}
    for chart in charts:
        assert chart["lines"] == [False], chart  # one value per test: no line between them
        assert chart["x"] == "Tests, highest value first"


_CHART = """s => { const c = Chart.getChart(document.querySelector(s));
  return {type: c.config.type, labels: c.data.labels, data: c.data.datasets.map(d => d.data),
          drawn: c.data.datasets.map((d, i) => c.getDatasetMeta(i).type),
          widths: c.getDatasetMeta(0).data.map(e => e.width || 0),
          lines: c.data.datasets.map(d => d.showLine), y: c.options.scales.y.title.text}; }"""


def test_per_session_aggregations_are_bars_and_counters_rates(
    browser: Browser, server: ServerProcess, tmp_path: Path
) -> None:
    ids = []
    for n in range(3):  # through the client library, unit and kind on the wire
        session = create_session(server.url, name=f"bars-{n}", spool_dir=tmp_path / "spool")
        for value in (100.0 + n, 40.0, 300.0 + 10 * n):
            session.log_metric("bar_latency", value, unit="ms")
        for total in (0, 10, 30):
            session.log_metric("bar_requests", total, unit="requests", kind="counter")
        session.end()
        assert session.flush(5)
        session.close()
        ids.append(session.session_id)
    page = browser.page
    canvas = "canvas[data-chart=metric-chart]"

    browser.open("/explore?name=bar_latency")  # every value: a line per session
    assert browser.chart_pixels(canvas) > 500
    every = page.evaluate(_CHART, canvas)
    assert every["type"] == "line"
    assert len(every["lines"]) == 3
    assert every["y"] == "bar_latency (ms)"

    with page.expect_response(lambda r: "aggregation=peak" in r.url):
        page.select_option("select[name=aggregation]", "peak")
    browser.wait_until(f"Chart.getChart(document.querySelector('{canvas}'))?.config.type === 'bar'")
    assert browser.chart_pixels(canvas) > 500
    peaks = page.evaluate(_CHART, canvas)
    assert peaks["drawn"] == ["bar"]  # one dataset of bars: no line joins the sessions
    assert peaks["labels"] == [i[:8] for i in ids]
    assert peaks["data"] == [[300.0, 310.0, 320.0]]
    assert all(width > 5 for width in peaks["widths"]), peaks["widths"]
    assert peaks["y"] == "bar_latency (ms)"
    assert "320 ms" in page.locator("#metrics-result dl.stats").inner_text()

    browser.open("/explore?name=bar_requests")
    assert browser.chart_pixels(canvas) > 100
    rates = page.evaluate(_CHART, canvas)
    assert rates["y"] == "bar_requests rate (requests/s)"
    assert "requests/s" in page.locator("#metrics-result dl.stats").inner_text()
    assert "is a counter" in page.locator("#metrics-result").inner_text()


def test_quarantine_shows_on_its_page_the_test_s_page_and_the_run(
    browser: Browser, server: ServerProcess, data: dict[str, str]
) -> None:
    nodeid = "test_suite.py::test_sometimes"
    answer = httpx.post(
        f"{server.url}/api/quarantine",
        json={"project": PROJECT, "nodeid": nodeid, "reason": "fails one run in three"},
    )
    assert answer.json() == {"changed": True}
    page = browser.page
    browser.open(f"/runs/{data['failed_run']}")
    badge = page.locator("#run-tests a.badge.q-later")  # quarantined after that run
    assert badge.count() == 1
    assert badge.is_visible()
    with page.expect_navigation():
        badge.click()
    assert page.url.endswith(f"/quarantine?project={PROJECT}")
    listed = page.locator("#quarantined").inner_text()
    assert nodeid in listed
    assert "fails one run in three" in listed
    assert page.locator("nav a[aria-current=page]").inner_text() == "Quarantine"
    browser.open(f"/tests?nodeid={quote(nodeid)}&project={PROJECT}")
    notice = page.locator(".quarantine-notice")
    assert notice.is_visible()
    assert "In quarantine since" in notice.inner_text()
