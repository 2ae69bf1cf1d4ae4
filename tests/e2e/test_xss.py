"""Stored XSS: whatever a test suite or a program sends is text on every dashboard page.

A real ``datacat serve`` is filled through the real pytest plugin (a generated suite
whose ids, markers, reasons, messages, output, project, labels, branch, commit and CI
link are hostile) and through the client library (sessions, state, events, exceptions,
metrics, and runs sent record by record for the fields pytest cannot make hostile:
exception types, class and file names, workers, hosts, hangs, tests in progress). Each
field gets its own payload, tagged with the field's name, so a page that shows it can
be held to showing it.

Every page is opened in chromium (and its htmx parts are made to swap), and on
each: no payload ran (``window.__xss`` stays undefined, no dialog opened, no console
error), no element carries an ``on*`` attribute or a ``javascript:`` link, no inline
script or injected element exists, and every payload the page shows reads verbatim in
its visible text: escaping cannot pass by dropping the data.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx
import pytest

from datacat_client import create_session, wire
from tests.support.browser import Watched, open_chromium
from tests.support.server import ServerProcess
from tests.support.wait import wait_for

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]

# -- payloads ---------------------------------------------------------------------------
# Each names the field it is put in, so that a failure says which field ran or vanished.


def script(tag: str) -> str:
    return f"<script>window.__xss='{tag}'</script>"


def alert(tag: str) -> str:
    """A script without ``=`` (for label keys, cut at the first ``=``)."""
    return f"<script>alert('{tag}')</script>"


def img(tag: str) -> str:
    return f"<img src=x onerror=\"window.__xss='{tag}'\">"


def svg(tag: str) -> str:
    return f'"><svg onload="window.__xss=\'{tag}\'">'


def js_url(tag: str) -> str:
    return f"javascript:window.__xss='{tag}'"


def template(tag: str) -> str:
    """Jinja and JS template syntax: must read literally (never ``49``)."""
    return f"{{{{7*7}}}}{{% raw %}}<b>{tag}</b>${{7*7}}"


def lines(tag: str) -> str:
    """Several lines, both quotes, and the end tags of the elements text may sit in."""
    return (
        f"first line of {tag} <img src=x onerror=\"window.__xss='{tag}'\">\n"
        f"second \"double\" 'single' </pre></textarea></title></script></details>\n"
        f"  third <script>window.__xss='{tag}-3'</script> {{{{7*7}}}}"
    )


#: The metric name closes the JSON <script> its chart spec sits in, if it can.
METRIC = "</script><script>window.__xss='metric-name'</script><!--<script>"

P: dict[str, str] = {
    # The pytest plugin's run: options, CI variables, and the suite itself.
    "project": svg("project"),
    "label-key": alert("label-key"),
    "label-value": img("label-value"),
    "branch": script("branch"),
    "commit": svg("commit"),
    "ci-url": js_url("ci-url"),
    "param": img("param"),
    "param-tpl": template("param-tpl"),
    "marker": svg("marker"),
    "exc-message": script("exc-message"),
    "traceback": img("traceback"),
    "stdout": lines("stdout"),
    "stderr": svg("stderr"),
    "log": script("log"),
    "skip": svg("skip"),
    "xfail": img("xfail"),
    "subtest": script("subtest"),
    "run-reason": img("run-reason"),
    # A run sent record by record: every field of a run and of a result.
    "syn-file": svg("syn-file"),
    "syn-class": img("syn-class"),
    "syn-func": script("syn-func"),
    "syn-param": template("syn-param"),
    "syn-label-key": alert("syn-label-key"),
    "syn-label-value": js_url("syn-label-value"),
    "syn-branch": script("syn-branch"),
    "syn-commit": img("syn-commit"),
    "ci-provider": svg("ci-provider"),
    "syn-ci-url": js_url("syn-ci-url"),
    "python": script("python"),
    "python-impl": img("python-impl"),
    "platform": svg("platform"),
    "hostname": template("hostname"),
    "pytest-version": script("pytest-version"),
    "plugin": img("plugin"),
    "arg": svg("arg"),
    "exc-type": img("exc-type"),
    "syn-exc-message": script("syn-exc-message"),
    "syn-traceback": lines("syn-traceback"),
    "syn-stdout": svg("syn-stdout"),
    "syn-stderr": img("syn-stderr"),
    "syn-log": script("syn-log"),
    "worker": template("worker"),
    "syn-marker": svg("syn-marker"),
    "syn-skip": img("syn-skip"),
    "syn-subtest": script("syn-subtest"),
    "run-status": svg("run-status"),
    "count-key": img("count-key"),
    "syn-run-reason": script("syn-run-reason"),
    # A run that hangs, with a test in progress.
    "hung-name": img("hung-name"),
    "hung-product": svg("hung-product"),
    "hung-version": script("hung-version"),
    "hung-label-key": alert("hung-label-key"),
    "hung-label-value": svg("hung-label-value"),
    "hung-branch": template("hung-branch"),
    # An http(s) link is kept as a link: its quotes must stay inside the attribute.
    "hung-ci-url": 'https://ci.example/job?a="><svg onload="window.__xss=\'hung-ci-url\'">',
    "inprogress-nodeid": script("inprogress-nodeid"),
    "inprogress-worker": img("inprogress-worker"),
    "hang-nodeid": svg("hang-nodeid"),
    "hang-worker": script("hang-worker"),
    "thread-name": img("thread-name"),
    "stack": lines("stack"),
    # An application's session.
    "app-name": script("app-name"),
    "app-product": img("app-product"),
    "app-version": svg("app-version"),
    "app-label-key": alert("app-label-key"),
    "app-label-value": template("app-label-value"),
    "state-key": svg("state-key"),
    "state-nested-key": script("state-nested-key"),
    "state-list-item": template("state-list-item"),
    "state-value": img("state-value"),
    "state-patch": lines("state-patch"),
    "event-name": svg("event-name"),
    "event-key": script("event-key"),
    "event-value": img("event-value"),
    "event-deep": template("event-deep"),
    "event-string": js_url("event-string"),
    "metric-name": METRIC,
    "tag-key": script("tag-key"),
    "tag-value": img("tag-value"),
    "exc-class": img("exc-class"),
    "app-exc-message": script("app-exc-message"),
    "extra-key": svg("extra-key"),
    "extra-value": template("extra-value"),
    # Typed into filters, and echoed.
    "filter-branch": svg("filter-branch"),
    "sql-value": lines("sql-value"),
    "sql-column": img("sql-column"),
}

#: Error pages repeat what was asked for (quoted with repr: no quotes in these).
NOT_FOUND = "<img src=x onerror=window.__xss=404>"
BAD_CHOICE = "<svg onload=window.__xss=400>"
BAD_TABLE = "<img src=x onerror=window.__xss=4000>"

NODEID = f"test_suite.py::test_flaky[{P['param']}]"
NODEID_TPL = f"test_suite.py::test_template[{P['param-tpl']}]"
SYN_NODEID = f"{P['syn-file']}.py::Test{P['syn-class']}::test_{P['syn-func']}[{P['syn-param']}]"
TAG = f"{P['tag-key']}={P['tag-value']}"


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_name(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


SQL_LITERAL = f"SELECT {_sql_text(P['sql-value'])} AS {_sql_name(P['sql-column'])}"
SQL_STORED = (
    "SELECT nodeid, file, cls, func, param_id, markers[1] AS marker, exc_type, exc_message,"
    " stdout FROM test_results"
    f" WHERE project = {_sql_text(P['project'])} AND exc_type IS NOT NULL ORDER BY nodeid"
)
SQL_BAD_TABLE = f"SELECT * FROM {_sql_name(BAD_TABLE)}"

SUITE = """
import json
import logging
import os
import sys

import pytest

P = json.loads(os.environ["XSS_PAYLOADS"])
FAIL = os.environ.get("XSS_FAIL") == "1"


@getattr(pytest.mark, P["marker"])
@pytest.mark.parametrize("value", [1], ids=[P["param"]])
def test_flaky(value):
    print(P["stdout"])
    sys.stderr.write(P["stderr"] + "\\n")
    logging.getLogger("xss").warning(P["log"])
    if FAIL:
        raise ValueError(P["exc-message"] + "\\n" + P["traceback"])


@pytest.mark.parametrize("value", [1], ids=[P["param-tpl"]])
def test_template(value):
    pass


def test_skipped():
    pytest.skip(P["skip"])


@pytest.mark.xfail(reason=P["xfail"])
def test_xfail():
    raise AssertionError


def test_subtests(subtests):
    with subtests.test(msg=P["subtest"]):
        pass


def test_zz_last(request):
    if FAIL:
        request.session.shouldfail = P["run-reason"]
"""

# -- filling a real server ---------------------------------------------------------------

_FOREIGN_ENV = (
    "DATACAT_",
    "PYTEST_",
    "GITHUB_",
    "GITLAB",
    "CI_",
    "CIRCLE",
    "BUILDKITE",
    "TF_BUILD",
    "SYSTEM_",
    "BUILD_",
    "JENKINS",
    "BRANCH_NAME",
    "GIT_",
)


def _pytest_run(suite: Path, url: str, *, fail: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV)}
    env.update(
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
        XSS_PAYLOADS=json.dumps(P),
        XSS_FAIL="1" if fail else "0",
        # The plugin reads the branch, commit and job link of GitHub Actions.
        GITHUB_ACTIONS="true",
        GITHUB_REF_NAME=P["branch"],
        GITHUB_SHA=P["commit"],
        GITHUB_SERVER_URL=P["ci-url"],
        GITHUB_REPOSITORY="o/r",
        GITHUB_RUN_ID="1",
        GITHUB_STEP_SUMMARY=str(suite.parent / "step-summary.md"),
    )
    return subprocess.run(
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
            f"--datacat-project={P['project']}",
            f"--datacat-label={P['label-key']}={P['label-value']}",
        ],
        env=env,
        cwd=suite.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _synthetic_run(url: str, spool: Path) -> str:
    """A finished run whose every field (and its results') is hostile."""
    session = create_session(
        url,
        name="pytest",
        product=P["project"],
        labels={P["syn-label-key"]: P["syn-label-value"]},
        spool_dir=spool,
        heartbeat_interval=None,
    )
    session.record(
        wire.RunStart,
        project=P["project"],
        branch=P["syn-branch"],
        commit=P["syn-commit"],
        ci_provider=P["ci-provider"],
        ci_url=P["syn-ci-url"],
        python_version=P["python"],
        python_implementation=P["python-impl"],
        platform=P["platform"],
        hostname=P["hostname"],
        pytest_version=P["pytest-version"],
        plugins=[P["plugin"]],
        args=[P["arg"]],
        workers=2,
    )
    now = time.time()
    session.record(
        wire.TestResult,
        nodeid=SYN_NODEID,
        outcome="failed",
        markers=[P["syn-marker"]],
        started_at=now - 0.3,
        stopped_at=now,
        call_duration=0.25,
        exc_type=P["exc-type"],
        exc_message=P["syn-exc-message"],
        traceback=P["syn-traceback"],
        stdout=P["syn-stdout"],
        stderr=P["syn-stderr"],
        log=P["syn-log"],
        worker=P["worker"],
    )
    session.record(
        wire.TestResult,
        nodeid=SYN_NODEID,
        outcome="skipped",
        subtest=P["syn-subtest"],
        reason=P["syn-skip"],
        started_at=now,
        stopped_at=now,
    )
    session.record(
        wire.RunFinish,
        exit_status=1,
        status=P["run-status"],
        reason=P["syn-run-reason"],
        counts={P["count-key"]: 1, "failed": 1},
        duration=0.3,
    )
    session.end()
    assert session.flush(10), "the synthetic run was not stored"
    session.close()
    assert session.stats.dropped == 0, session.stats
    return session.session_id


def _hung_run(url: str, spool: Path) -> str:
    """A run that hangs in a test (it never ends: its pages poll)."""
    session = create_session(
        url,
        name=P["hung-name"],
        product=P["hung-product"],
        version=P["hung-version"],
        labels={P["hung-label-key"]: P["hung-label-value"]},
        spool_dir=spool,
        heartbeat_interval=None,
    )
    session.record(
        wire.RunStart,
        project=P["project"],
        branch=P["hung-branch"],
        ci_provider="ci",
        ci_url=P["hung-ci-url"],
    )
    session.record(wire.TestStart, nodeid=P["inprogress-nodeid"], worker=P["inprogress-worker"])
    session.log_event(
        "application_appears_hung",
        {
            "nodeid": P["hang-nodeid"],
            "seconds_since_heartbeat": 5.0,
            "timeout": 1.0,
            "worker": P["hang-worker"],
            "pid": 1,
            "threads": [{"name": P["thread-name"], "ident": 1, "stack": [P["stack"]]}],
        },
    )
    assert session.flush(10), "the hung run was not stored"
    session.close()
    assert session.stats.dropped == 0, session.stats
    return session.session_id


def _app_session(url: str, spool: Path) -> str:
    """An application's session: names, labels, nested state, events, metrics, an exception."""
    session = create_session(
        url,
        name=P["app-name"],
        product=P["app-product"],
        version=P["app-version"],
        labels={P["app-label-key"]: P["app-label-value"]},
        state={
            "ui": {"title": P["state-value"]},
            P["state-key"]: {P["state-nested-key"]: [P["state-list-item"], 1, None, True]},
        },
        spool_dir=spool,
        heartbeat_interval=None,
    )
    session.update_state({"ui": {"title": P["state-value"]}, "note": P["state-patch"]})
    session.log_event(
        P["event-name"],
        {P["event-key"]: P["event-value"], "deep": {"list": [P["event-deep"]]}},
    )
    session.log_event("text", P["event-string"])
    for value in (1.0, 2.5, 4.0):
        session.log_metric(P["metric-name"], value, tags={P["tag-key"]: P["tag-value"]})
    hostile = type(P["exc-class"], (Exception,), {})
    try:
        raise hostile(P["app-exc-message"])
    except Exception:
        session.log_exception(extra_data={P["extra-key"]: P["extra-value"]})
    session.end()
    assert session.flush(10), "the application session was not stored"
    session.close()
    assert session.stats.dropped == 0, session.stats
    return session.session_id


@dataclasses.dataclass(frozen=True)
class Data:
    """The ids the pages are opened with."""

    failed_run: str
    passed_run: str
    syn_run: str
    hung_run: str
    app: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("xss") / "xss.duckdb") as process:
        yield process


@pytest.fixture(scope="module")
def data(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Data:
    suite_dir = tmp_path_factory.mktemp("xss-suite")
    suite = suite_dir / "test_suite.py"
    suite.write_text(textwrap.dedent(SUITE))
    # It fails, then passes: a flaky test, a failure cluster, a stopped run.
    failed = _pytest_run(suite, server.url, fail=True)
    passed = _pytest_run(suite, server.url, fail=False)
    spool = suite_dir / "spool"
    syn_run = _synthetic_run(server.url, spool)
    hung_run = _hung_run(server.url, spool)
    app = _app_session(server.url, spool)

    runs: list[dict[str, Any]] = []
    for _ in range(50):  # the writer stores in the background: at most ~5 s
        runs = httpx.get(
            f"{server.url}/api/runs/", params={"project": P["project"]}, timeout=5
        ).json()
        if len(runs) == 4:
            break
        time.sleep(0.1)
    output = f"{failed.stdout}\n{failed.stderr}\n{passed.stdout}\n{passed.stderr}"
    assert len(runs) == 4, f"{runs}\n{output}"
    real = {r["outcome"]: r["id"] for r in runs if r["id"] not in (syn_run, hung_run)}
    assert set(real) == {"stopped", "passed"}, f"{runs}\n{output}"
    tests = httpx.get(f"{server.url}/api/runs/{real['stopped']}/tests", timeout=5).json()
    nodeids = {t["nodeid"] for t in tests}
    assert {NODEID, NODEID_TPL} <= nodeids, nodeids
    return Data(real["stopped"], real["passed"], syn_run, hung_run, app)


# -- the browser -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    # Escaping is what is tested here: the pages' Content-Security-Policy would stop
    # most payloads that escaping missed, and hide the miss. (test_browser.py checks
    # the pages under the policy.)
    with open_chromium(tmp_path_factory.mktemp("xss-chromium"), bypass_csp=True) as context:
        yield context


#: What a page holds that a payload could have made: run in the page, it returns what
#: it found. Handlers (``on*``, ``hx-on*``) and ``javascript:`` URLs are looked for on
#: every element; inline scripts must be JSON (the chart specs) and parse; main holds no
#: image, SVG, MathML, frame, object, meta, base, link, style or <b> element (the
#: dashboard uses none; the payloads would make them).
INSPECT = r"""() => {
  const found = {xss: typeof window.__xss === "undefined" ? null : String(window.__xss),
                 handlers: [], jsUrls: [], scripts: [], elements: []};
  const urlAttrs = ["href", "src", "action", "formaction", "xlink:href", "data", "poster"];
  for (const el of document.querySelectorAll("*")) {
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      const text = `<${el.localName} ${name}="${attr.value.slice(0, 120)}">`;
      if (/^(data-)?(hx-)?on/.test(name)) found.handlers.push(text);
      const value = attr.value.replace(/[\u0000-\u0020]/g, "").toLowerCase();
      if (urlAttrs.includes(name) && value.startsWith("javascript:")) found.jsUrls.push(text);
    }
  }
  for (const s of document.scripts) {
    if (s.src) {
      if (new URL(s.src).origin !== location.origin) found.scripts.push(s.src);
    } else if (s.type !== "application/json") {
      found.scripts.push(s.outerHTML.slice(0, 200));
    } else {
      try { JSON.parse(s.textContent); } catch (e) {
        found.scripts.push("not JSON: " + s.textContent.slice(0, 200));
      }
    }
  }
  const injected = ["img", "svg", "iframe", "object", "embed", "math", "meta", "base", "link",
                    "style", "b"].map(tag => "main " + tag).join(", ");
  for (const el of document.querySelectorAll(injected)) found.elements.push(el.outerHTML.slice(0, 200));
  return found;
}"""

#: Open every <details>, as a reader would: folded text is not in ``innerText``.
UNFOLD = "() => document.querySelectorAll('details').forEach(d => { d.open = true; })"

#: Count htmx swaps from now on.
COUNT_SWAPS = """() => {
  window.__swaps = 0;
  document.addEventListener("htmx:afterSettle", () => { window.__swaps += 1; });
}"""


def _norm(text: str) -> str:
    """Whitespace folded as a page folds it outside <pre>."""
    return " ".join(text.split())


class Tab(Watched):
    """A watched page on a fake clock that counts htmx swaps, and checks what it shows."""

    def open(self, path: str) -> None:
        # A fake clock that still runs: a live page's 3 s poll can be brought forward.
        self.page.clock.install()
        response = self.page.goto(self.base + path, wait_until="load")
        assert response is not None
        assert response.status == self.expected_status, (path, response.status)
        self.page.evaluate(COUNT_SWAPS)

    def wait_swaps(self, count: int = 1, timeout: float = 10_000) -> None:
        self.page.wait_for_function(f"window.__swaps >= {count}", timeout=timeout)

    def check(self, where: str, shows: tuple[str, ...]) -> str:
        """Nothing ran or was injected, and every payload of ``shows`` reads as text."""
        page = self.page
        page.wait_for_timeout(150)  # an injected image's error event, an svg's load
        found = page.evaluate(INSPECT)
        assert found["xss"] is None, f"{where}: a payload ran: window.__xss = {found['xss']}"
        assert self.dialogs == [], f"{where}: a dialog opened: {self.dialogs}"
        assert found["handlers"] == [], f"{where}: event handler attributes: {found['handlers']}"
        assert found["jsUrls"] == [], f"{where}: javascript: URLs: {found['jsUrls']}"
        assert found["scripts"] == [], f"{where}: scripts that are not ours: {found['scripts']}"
        assert found["elements"] == [], f"{where}: injected elements: {found['elements']}"
        assert self.problems == [], f"{where}: {self.problems}"
        page.evaluate(UNFOLD)
        text = page.locator("main").inner_text()
        folded = _norm(text)
        missing = [key for key in shows if _norm(P.get(key, key)) not in folded]
        assert missing == [], f"{where}: not shown as text: {missing}\n--- page text:\n{text}"
        return text

    def pre_texts(self) -> list[str]:
        texts: list[str] = self.page.eval_on_selector_all(
            "main pre", "ps => ps.map(p => p.innerText)"
        )
        return texts


@pytest.fixture
def tab(browser_context: BrowserContext, server: ServerProcess, data: Data) -> Iterator[Tab]:
    page = browser_context.new_page()
    try:
        yield Tab(page, server.url)
    finally:
        page.close()


# -- the pages ---------------------------------------------------------------------------

Action = Callable[[Tab, Data], None]


@dataclasses.dataclass(frozen=True)
class View:
    """A page, the payloads it shows, and (optionally) an htmx swap and what it shows then.

    ``shows`` holds keys of `P` or, for composed values, the text itself.
    """

    name: str
    path: Callable[[Data], str]
    shows: tuple[str, ...]
    status: int = 200
    title: str | None = None
    action: Action | None = None
    after: tuple[str, ...] = ()
    #: Multi-line payloads that must read exactly so in a <pre>.
    verbatim: tuple[str, ...] = ()
    #: The exact ``href`` of the first link a selector finds.
    links: dict[str, str] = dataclasses.field(default_factory=dict)


def _q(route: str, /, **params: str) -> str:
    return f"{route}?{urlencode(params, quote_via=quote)}"


def _pick_project(tab: Tab, data: Data) -> None:
    tab.page.select_option("select[name=project]", P["project"])
    tab.wait_swaps()


def _search_tests(tab: Tab, data: Data) -> None:
    tab.page.fill("#test-search", "onerror")
    tab.wait_swaps()


def _wait_for_the_poll(tab: Tab, data: Data) -> None:
    tab.page.clock.fast_forward(3_100)  # a live page refreshes itself every 3 s
    tab.wait_swaps()


def _branch(value: str) -> Action:
    def act(tab: Tab, data: Data) -> None:
        threshold = tab.page.locator("main form input[name=threshold]")
        if threshold.count():
            # The slow page's default threshold (1.5) does not fit its step (0.1 from
            # min 1.01): the browser holds the form invalid and htmx would send nothing.
            threshold.fill("2.01")
        field = tab.page.locator("main form input[name=branch]")
        field.fill(value)
        field.press("Tab")  # a change event
        tab.wait_swaps()

    return act


def _filter_sessions(tab: Tab, data: Data) -> None:
    field = tab.page.locator("input[name=name]")
    field.fill(P["app-name"])
    field.press("Tab")
    tab.wait_swaps()


def _peak(tab: Tab, data: Data) -> None:
    tab.page.select_option("select[name=aggregation]", "peak")
    tab.wait_swaps()


def _run_sql(tab: Tab, data: Data) -> None:
    tab.page.fill("#sql-text", SQL_STORED)
    tab.page.click("#sql-form button[type=submit]")
    tab.wait_swaps()


REAL_RUN = (
    "project",
    "label-key",
    "label-value",
    "branch",
    "commit",
    "ci-url",
    "run-reason",
    NODEID,
    NODEID_TPL,
    "exc-message",
    "traceback",
    "stdout",
    "stderr",
    "log",
    "skip",
    "xfail",
    "subtest",
)
SYN_RUN = (
    SYN_NODEID,
    "syn-label-key",
    "syn-label-value",
    "syn-branch",
    "syn-commit",
    "ci-provider",
    "syn-ci-url",
    "python",
    "python-impl",
    "platform",
    "hostname",
    "pytest-version",
    "plugin",
    "arg",
    "exc-type",
    "syn-exc-message",
    "syn-traceback",
    "syn-stdout",
    "syn-stderr",
    "syn-log",
    "worker",
    "syn-skip",
    "syn-subtest",
    "run-status",
    "count-key",
    "syn-run-reason",
)
HUNG_RUN = (
    "project",
    "hung-label-key",
    "hung-label-value",
    "hung-branch",
    "inprogress-nodeid",
    "inprogress-worker",
    "hang-nodeid",
    "hang-worker",
    "thread-name",
    "stack",
)
APP = (
    "app-name",
    "app-product",
    "app-version",
    "app-label-key",
    "app-label-value",
    "state-key",
    "state-nested-key",
    "state-list-item",
    "state-value",
    "state-patch",
    "event-name",
    "event-key",
    "event-value",
    "event-deep",
    "event-string",
    "metric-name",
    TAG,
    "exc-class",
    "app-exc-message",
    "extra-key",
    "extra-value",
)
RUNS_LIST = ("project", "branch", "syn-branch", "hung-branch", "run-status", "count-key")

VIEWS = [
    View(
        "overview",
        lambda d: _q("/", project=P["project"]),
        (
            "project",
            "branch",
            "syn-branch",
            "hung-branch",
            "run-status",
            "count-key",
            "hung-name",
            "hung-product",
            NODEID,
        ),
        action=_wait_for_the_poll,
        after=("hung-branch", "hung-name", "hung-product"),
    ),
    View("runs", lambda d: "/runs", RUNS_LIST, action=_pick_project, after=RUNS_LIST),
    View(
        "run (pytest plugin)",
        lambda d: f"/runs/{d.failed_run}",
        REAL_RUN,
        action=_search_tests,
        after=(NODEID, "exc-message", "traceback", "stdout", "stderr", "log"),
        verbatim=("stdout",),
    ),
    View("run (records)", lambda d: f"/runs/{d.syn_run}", SYN_RUN, verbatim=("syn-traceback",)),
    View(
        "run (hung, live)",
        lambda d: f"/runs/{d.hung_run}",
        HUNG_RUN,
        action=_wait_for_the_poll,
        after=HUNG_RUN,
        verbatim=("stack",),
        links={"main a[rel~=noopener]": P["hung-ci-url"]},
    ),
    View(
        "test history (pytest plugin)",
        lambda d: _q("/tests", nodeid=NODEID, project=P["project"]),
        (NODEID, "project", "marker", "branch", "exc-message"),
        title=NODEID,
        action=_branch(P["branch"]),
        after=("branch", "exc-message"),
    ),
    View(
        "test history (records)",
        lambda d: _q("/tests", nodeid=SYN_NODEID, project=P["project"]),
        (SYN_NODEID, "syn-file", "syn-marker", "syn-branch", "exc-type", "syn-exc-message"),
        title=SYN_NODEID,
    ),
    View(
        "flaky",
        lambda d: _q("/flaky", project=P["project"]),
        (NODEID,),
        action=_branch(P["filter-branch"]),
        after=("project", "filter-branch"),
    ),
    View(
        "slow",
        lambda d: _q("/slow", project=P["project"]),
        (NODEID, NODEID_TPL, SYN_NODEID),
        action=_branch(P["filter-branch"]),
        after=("project", "filter-branch"),
    ),
    View(
        "failures",
        lambda d: _q("/failures", project=P["project"]),
        ("exc-type", "exc-message", "syn-exc-message", NODEID, SYN_NODEID),
        action=_branch(P["filter-branch"]),
        after=("project", "filter-branch"),
    ),
    View(
        "sessions",
        lambda d: "/sessions",
        (
            "label-key",
            "label-value",
            "syn-label-key",
            "syn-label-value",
            "hung-name",
            "hung-product",
            "hung-version",
            "hung-label-key",
            "hung-label-value",
            "app-name",
            "app-product",
            "app-version",
            "app-label-key",
            "app-label-value",
        ),
        action=_filter_sessions,
        after=("app-name", "app-product", "app-version", "app-label-key", "app-label-value"),
    ),
    View("session (application)", lambda d: f"/sessions/{d.app}", APP, title="app-name"),
    View(
        "session (records run)",
        lambda d: f"/sessions/{d.syn_run}",
        (
            "syn-label-key",
            "syn-label-value",
            SYN_NODEID,
            "exc-type",
            "syn-exc-message",
            # Line by line: this page joins a result's traceback lines without their
            # line breaks (the events view splits it on them).
            *P["syn-traceback"].splitlines(),
            "worker",
            "syn-subtest",
        ),
    ),
    View(
        "session (pytest plugin run)",
        lambda d: f"/sessions/{d.failed_run}",
        ("label-key", "label-value", NODEID, "exc-message", "traceback"),
    ),
    View(
        "session (hung run)",
        lambda d: f"/sessions/{d.hung_run}",
        (
            "hung-name",
            "hung-product",
            "hung-version",
            "hung-label-key",
            "hung-label-value",
            "inprogress-nodeid",
            "inprogress-worker",
            "hang-nodeid",
            "hang-worker",
            "thread-name",
            "stack",
        ),
        action=_wait_for_the_poll,
        after=("hung-name", "inprogress-nodeid", "hang-nodeid", "thread-name"),
    ),
    View(
        "metrics",
        lambda d: _q(
            "/explore",
            name=P["metric-name"],
            filter="current",
            path="ui.title",
            value=P["state-value"],
        ),
        ("metric-name",),
        action=_peak,
        after=("metric-name",),
    ),
    View(
        "sql",
        lambda d: _q("/sql", q=SQL_LITERAL),
        ("sql-value", "sql-column"),
        action=_run_sql,
        after=(
            SYN_NODEID,
            NODEID,
            "syn-file",
            "syn-class",
            "syn-func",
            "syn-param",
            "syn-marker",
            "marker",
            "exc-type",
            "exc-message",
            "syn-exc-message",
            "syn-stdout",
        ),
    ),
    View("error: unknown run", lambda d: "/runs/" + quote(NOT_FOUND, safe=""), (NOT_FOUND,), 404),
    View(
        "error: unknown test",
        lambda d: _q("/tests", nodeid=NOT_FOUND, project=P["project"]),
        (NOT_FOUND,),
        404,
    ),
    View("error: bad filter", lambda d: _q("/explore", aggregation=BAD_CHOICE), (BAD_CHOICE,), 400),
    View("error: bad SQL", lambda d: _q("/sql", q=SQL_BAD_TABLE), (BAD_TABLE,), 400),
    View(
        "sign-in: hostile next",
        lambda d: _q("/login", next=f"/{P['project']}"),
        (),
        links={"main a": f"/{P['project']}"},
    ),
    View(
        "sign-in: javascript: next",
        lambda d: _q("/login", next=P["ci-url"]),
        (),
        links={"main a": "/"},
    ),
]


@pytest.mark.parametrize("view", VIEWS, ids=[v.name for v in VIEWS])
def test_every_field_is_text(tab: Tab, data: Data, view: View) -> None:
    tab.expected_status = view.status
    tab.open(view.path(data))
    tab.check(view.name, view.shows)
    if view.title is not None:
        assert P.get(view.title, view.title) in tab.page.title(), view.name
    for key in view.verbatim:
        pres = tab.pre_texts()
        assert any(P[key] in pre for pre in pres), f"{view.name}: {key} not verbatim: {pres}"
    for selector, href in view.links.items():
        assert tab.page.locator(selector).first.get_attribute("href") == href, view.name
    if view.action is not None:
        view.action(tab, data)
        tab.check(f"{view.name}, after an htmx swap", view.after)


def test_the_sql_console_keeps_the_statement(tab: Tab, data: Data) -> None:
    tab.open(_q("/sql", q=SQL_LITERAL))
    assert tab.page.input_value("#sql-text") == SQL_LITERAL
    tab.check("sql editor", ("sql-value",))


def test_the_checks_see_an_injected_payload(tab: Tab, data: Data) -> None:
    """The inspection is not vacuous: markup put in a page by script is caught."""
    page = tab.page
    tab.open("/sql")
    page.evaluate(
        """() => {
          const main = document.querySelector("main");
          main.insertAdjacentHTML("beforeend",
            `<img src=x onerror="window.__xss='control'"><a href=" javascript:void(0)">x</a>`);
          const s = document.createElement("script");
          s.textContent = "window.__ran = true";
          main.appendChild(s);
          setTimeout(() => alert("control"));
        }"""
    )
    page.wait_for_function("window.__xss === 'control'")
    wait_for(lambda: tab.dialogs, "the control's dialog")
    assert tab.dialogs == ["control"]
    found = page.evaluate(INSPECT)
    assert found["xss"] == "control"
    assert any("onerror" in h for h in found["handlers"])
    assert any("javascript:" in u for u in found["jsUrls"])
    assert any("window.__ran" in s for s in found["scripts"])
    assert any(e.startswith("<img") for e in found["elements"])
    assert page.evaluate("window.__ran") is True
