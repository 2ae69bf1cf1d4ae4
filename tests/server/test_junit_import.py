"""``POST /api/import/junit``: other runners' JUnit XML stored as runs, in-process.

The fixtures under ``tests/data/junit`` are written in the exact shape each producer
emits (see its README); pytest's XML is made here by running pytest for real.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from datacat_server.app import create_app
from datacat_server.settings import Settings

Client = TestClient  # type: ignore[type-arg]

DATA = Path(__file__).parents[1] / "data" / "junit"
SUREFIRE = sorted((DATA / "surefire").glob("*.xml"))
GRADLE = sorted((DATA / "gradle").glob("*.xml"))


def post_xml(client: Client, body: bytes, **params: Any) -> Any:
    params.setdefault("project", "shop")
    return client.post(
        "/api/import/junit",
        content=body,
        params=params,
        headers={"Content-Type": "application/xml"},
    )


def post_files(client: Client, files: list[tuple[str, bytes]], **params: Any) -> Any:
    params.setdefault("project", "shop")
    return client.post(
        "/api/import/junit",
        files=[("file", (name, data, "application/xml")) for name, data in files],
        params=params,
    )


def read(*paths: Path) -> list[tuple[str, bytes]]:
    return [(path.name, path.read_bytes()) for path in paths]


def results(client: Client, run_id: str) -> list[dict[str, Any]]:
    """Every result of a run, by node id then attempt."""
    answer = client.get(f"/api/runs/{run_id}/tests", params={"order": "nodeid", "limit": 10000})
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()
    return rows


def by_nodeid(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        found.setdefault(row["nodeid"], []).append(row)
    return found


def stored(client: Client) -> tuple[int, int, int]:
    """Sessions, runs and results in the store."""
    cur = client.app.state.store.reader()
    row = cur.execute(
        "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM runs),"
        " (SELECT count(*) FROM results)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


# -- producers ----------------------------------------------------------------------------


def test_go_junit_report(client: Client) -> None:
    answer = post_xml(
        client,
        (DATA / "go-junit-report.xml").read_bytes(),
        branch="main",
        commit="abc123",
        label=["ci=nightly"],
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["counts"] == {"passed": 3, "failed": 1, "skipped": 1}
    assert body["status"] == "failed"
    assert body["complete"] is True
    assert body["already_imported"] is False
    assert body["url"] == f"/runs/{body['run_id']}"
    run = client.get(f"/api/runs/{body['run_id']}").json()
    assert (run["project"], run["branch"], run["commit"]) == ("shop", "main", "abc123")
    assert run["labels"] == {"source": "junit", "runner": "go", "ci": "nightly"}
    assert run["started_at"] == "2026-03-02T10:15:04.000000Z"
    assert run["hostname"] == "ci-runner-7"
    assert run["outcome"] == "failed"
    assert run["duration"] == pytest.approx(1.004)
    tests = by_nodeid(results(client, body["run_id"]))
    assert set(tests) == {
        "github.com/acme/shop/cart::TestAdd",
        "github.com/acme/shop/cart::TestTotal/with_discount",
        "github.com/acme/shop/cart::TestTotal/without_discount",
        "github.com/acme/shop/cart::TestRemoteSync",
        "github.com/acme/shop/money::TestRound",
    }
    (failed,) = tests["github.com/acme/shop/cart::TestTotal/with_discount"]
    # go-junit-report calls every failure "Failed": the test's own line says what failed
    assert failed["exc_message"] == "cart_test.go:42: total = 90, want 85"
    assert failed["exc_type"] is None
    assert failed["traceback"] == "    cart_test.go:42: total = 90, want 85"
    assert failed["duration"] == pytest.approx(0.012)
    assert failed["cls"] == "github.com/acme/shop/cart"
    assert failed["func"] == "TestTotal/with_discount"
    # tests are laid out one after another from their suite's timestamp
    assert failed["started_at"] == "2026-03-02T10:15:04.001000Z"
    (skipped,) = tests["github.com/acme/shop/cart::TestRemoteSync"]
    assert (skipped["outcome"], skipped["reason"]) == ("skipped", "Skipped")
    (second_suite,) = tests["github.com/acme/shop/money::TestRound"]
    assert second_suite["started_at"] == "2026-03-02T10:15:05.000000Z"


def test_gotestsum_rerun_fails_is_one_test_with_two_attempts(client: Client) -> None:
    body = post_xml(client, (DATA / "gotestsum.xml").read_bytes()).json()
    assert body["counts"] == {"passed": 3, "rerun": 1}
    assert (body["tests"], body["results"], body["status"]) == (3, 4, "passed")
    refund = by_nodeid(results(client, body["run_id"]))["github.com/acme/shop/payments::TestRefund"]
    assert [(r["attempt"], r["outcome"], r["final"]) for r in refund] == [
        (0, "failed", False),
        (1, "passed", True),
    ]
    assert refund[0]["exc_message"] == "refund_test.go:31: gateway timeout after 500ms"
    assert refund[0]["traceback"].startswith("=== RUN   TestRefund\n    refund_test.go:31")
    assert [r["duration"] for r in refund] == pytest.approx([0.5, 0.22])


def test_jest_junit(client: Client) -> None:
    body = post_xml(client, (DATA / "jest-junit.xml").read_bytes(), project="web").json()
    assert body["counts"] == {"passed": 3, "failed": 1, "skipped": 1}
    run = client.get(f"/api/runs/{body['run_id']}").json()
    assert run["labels"]["runner"] == "jest"
    # jest-junit writes its timestamps in UTC without an offset
    assert run["started_at"] == "2026-03-02T10:30:00.000000Z"
    tests = by_nodeid(results(client, body["run_id"]))
    # jest-junit repeats the full title as classname and name: the suite groups it
    assert "Cart::Cart adds an item" in tests
    assert "formatPrice::formatPrice formats cents" in tests
    (failed,) = tests["Cart::Cart applies a discount code"]
    assert failed["exc_type"] == "Error"
    assert failed["exc_message"] == "Error: expect(received).toBe(expected) // Object.is equality"
    assert "Expected: 85\nReceived: 90" in failed["traceback"]
    assert tests["Cart::Cart syncs with the server"][0]["outcome"] == "skipped"


def test_surefire_reruns_become_attempts_with_their_output(client: Client) -> None:
    answer = post_files(client, read(*SUREFIRE), project="api")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["files"] == 2
    assert body["counts"] == {"passed": 4, "failed": 1, "skipped": 1, "error": 1, "rerun": 6}
    assert (body["tests"], body["results"]) == (7, 13)
    run = client.get(f"/api/runs/{body['run_id']}").json()
    assert run["labels"]["runner"] == "surefire"
    assert sorted(run["args"]) == [path.name for path in SUREFIRE]  # the files, by name
    tests = by_nodeid(results(client, body["run_id"]))
    calc = "com.example.shop.CalculatorTest::"
    flaky = tests[calc + "roundsHalfUp"]
    assert [(r["outcome"], r["final"]) for r in flaky] == [("failed", False), ("passed", True)]
    assert flaky[0]["exc_type"] == "java.lang.AssertionError"
    assert flaky[0]["exc_message"] == "\nExpected: <3>\n     but: was <2>"
    assert "CalculatorTest.java:31" in flaky[0]["traceback"]
    assert flaky[0]["stdout"] == "rounding 2.5 with a cold cache\n"
    assert flaky[1]["duration"] == pytest.approx(0.021)
    broken = tests[calc + "dividesByZero"]
    assert [(r["attempt"], r["outcome"], r["final"]) for r in broken] == [
        (0, "failed", False),
        (1, "failed", False),
        (2, "failed", True),
    ]
    assert [r["stdout"] for r in broken] == ["dividing 1 by 0\n", "dividing 1 by 0 (again)\n", None]
    assert {r["exc_message"] for r in broken} == {"/ by zero"}
    assert broken[0]["duration"] == pytest.approx(0.013)
    assert tests[calc + "formatsCurrency"][0]["reason"] == "currency service not mocked yet"
    inventory = "com.example.shop.InventoryTest::"
    reserved = tests[inventory + "reservesStock"]
    assert [r["outcome"] for r in reserved] == ["error", "failed", "passed"]
    assert reserved[0]["stderr"] == "WARN retrying the warehouse\n"
    released = tests[inventory + "releasesStock"]
    assert [(r["outcome"], r["final"]) for r in released] == [("error", False), ("error", True)]
    assert released[0]["stderr"] == "ERROR warehouse unreachable\n"
    assert tests[inventory + "countsStock(int)[1]"][0]["outcome"] == "passed"


def test_gradle_with_test_retry_and_suite_output(client: Client) -> None:
    body = post_files(client, read(*GRADLE), project="strings").json()
    assert body["counts"] == {"passed": 4, "failed": 1, "skipped": 1, "rerun": 1}
    run = client.get(f"/api/runs/{body['run_id']}").json()
    assert "runner" not in run["labels"]  # Gradle's XML does not say who wrote it
    assert run["hostname"] == "gradle-worker"
    tests = by_nodeid(results(client, body["run_id"]))
    slug = "com.example.strings.SlugTest::"
    (accents,) = tests[slug + "stripsAccents()"]
    assert accents["exc_type"] == "org.opentest4j.AssertionFailedError"
    assert accents["exc_message"].endswith("but was: <crème-brûlée>")
    assert slug + "[1] input=Hello World, expected=hello-world" in tests
    retried = tests["com.example.strings.TrimTest::trimsUnicodeSpaces()"]
    assert [(r["outcome"], r["final"]) for r in retried] == [("failed", False), ("passed", True)]
    cur = client.app.state.store.reader()
    events = cur.execute(
        "SELECT data->>'suite', data->>'system_out' FROM events"
        " WHERE session_id = ?::UUID AND name = 'junit_suite_output'",
        [body["run_id"]],
    ).fetchall()
    assert events == [("com.example.strings.SlugTest", "slugging 4 inputs\n")]


def test_nested_suites_and_missing_attributes_get_defaults(client: Client) -> None:
    answer = post_xml(client, (DATA / "nested.xml").read_bytes())
    assert answer.status_code == 201, answer.text
    tests = {
        nodeid: rows[0]
        for nodeid, rows in by_nodeid(results(client, answer.json()["run_id"])).items()
    }
    assert set(tests) == {
        "db::connects",
        "db::<testcase 1>",
        "db.Migrations::migrates",
        "lonely",
        "app::slow",
        "app::boots",
    }
    assert tests["db.Migrations::migrates"]["duration"] == 0.0  # time="-3"
    assert tests["app::slow"]["duration"] == 1000.25  # time="1,000.25"
    assert tests["app::boots"]["duration"] == 0.0  # time="abc"
    assert tests["app::boots"]["outcome"] == "error"
    run = client.get(f"/api/runs/{answer.json()['run_id']}").json()
    assert run["outcome"] == "failed"
    assert run["duration"] == pytest.approx(1002.25)


PYTEST_SUITE = """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("no database")

def test_passes():
    print("hello")

def test_fails():
    assert 1 + 1 == 3

def test_setup_error(broken):
    pass

def test_skipped():
    pytest.skip("not today")

@pytest.mark.xfail(reason="known bug")
def test_xfails():
    assert False

@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    assert n

class TestGroup:
    def test_method(self):
        pass

@pytest.fixture
def leaky():
    yield
    raise OSError("cannot clean up")

def test_fails_then_teardown_errs(leaky):
    assert False, "first"
"""


@pytest.mark.parametrize("family", ["xunit1", "xunit2"])
def test_pytest_junitxml(client: Client, pytester: pytest.Pytester, family: str) -> None:
    pytester.makepyfile(test_shop=PYTEST_SUITE)
    report = pytester.path / "report.xml"
    pytester.runpytest(f"--junitxml={report}", "-o", f"junit_family={family}")
    body = post_xml(client, report.read_bytes()).json()
    # pytest writes the last test twice (its failure, then its teardown error); like
    # pytest's own plugin, the import records the failure
    assert body["counts"] == {"passed": 4, "failed": 2, "error": 1, "skipped": 1, "xfailed": 1}
    run = client.get(f"/api/runs/{body['run_id']}").json()
    assert run["labels"]["runner"] == "pytest"
    tests = {nodeid: rows[0] for nodeid, rows in by_nodeid(results(client, body["run_id"])).items()}
    if family == "xunit1":  # with `file`, pytest's own node ids and lines come back
        assert set(tests) == {
            "test_shop.py::test_passes",
            "test_shop.py::test_fails",
            "test_shop.py::test_setup_error",
            "test_shop.py::test_skipped",
            "test_shop.py::test_xfails",
            "test_shop.py::test_param[1]",
            "test_shop.py::test_param[2]",
            "test_shop.py::TestGroup::test_method",
            "test_shop.py::test_fails_then_teardown_errs",
        }
        method = tests["test_shop.py::TestGroup::test_method"]
        assert (method["file"], method["cls"], method["func"]) == (
            "test_shop.py",
            "TestGroup",
            "test_method",
        )
        # the line of its `def`, counted from 1 (pytest's XML counts from 0)
        assert (
            method["line"]
            == PYTEST_SUITE.strip().splitlines().index("    def test_method(self):") + 1
        )
        assert tests["test_shop.py::test_param[2]"]["param_id"] == "2"
        prefix = "test_shop.py::"
    else:
        assert "test_shop.TestGroup::test_method" in tests
        prefix = "test_shop::"
    failed = tests[prefix + "test_fails"]
    assert (failed["outcome"], failed["exc_type"]) == ("failed", "AssertionError")
    assert failed["exc_message"].startswith("assert (1 + 1) == 3")
    error = tests[prefix + "test_setup_error"]
    assert (error["outcome"], error["phase"]) == ("error", "setup")
    assert "no database" in error["exc_message"]
    assert tests[prefix + "test_skipped"]["reason"] == "not today"
    both = tests[prefix + "test_fails_then_teardown_errs"]
    assert (both["outcome"], both["exc_message"]) == (
        "failed",
        "AssertionError: first\nassert False",
    )
    assert (tests[prefix + "test_xfails"]["outcome"], tests[prefix + "test_xfails"]["reason"]) == (
        "xfailed",
        "known bug",
    )


# -- one run per file set -----------------------------------------------------------------


def test_the_same_files_twice_store_one_run(client: Client) -> None:
    first = post_files(client, read(*SUREFIRE))
    assert first.status_code == 201
    before = stored(client)
    again = post_files(client, read(*reversed(SUREFIRE)))  # any order: the same run
    assert again.status_code == 200, again.text
    assert again.json()["already_imported"] is True
    assert again.json()["run_id"] == first.json()["run_id"]
    assert again.json()["counts"] == first.json()["counts"]
    assert stored(client) == before == (1, 1, 13)
    # a file given twice counts once
    twice = post_files(client, read(SUREFIRE[0], SUREFIRE[0], SUREFIRE[1]))
    assert twice.status_code == 200
    assert twice.json()["files"] == 2
    # another project, or other files, make another run
    other = post_files(client, read(*SUREFIRE), project="elsewhere")
    assert other.status_code == 201
    assert other.json()["run_id"] != first.json()["run_id"]
    one = post_files(client, read(SUREFIRE[0]))
    assert one.status_code == 201
    assert stored(client)[:2] == (3, 3)


def test_branch_commit_and_labels_also_come_from_the_form(client: Client) -> None:
    answer = client.post(
        "/api/import/junit",
        files=[("file", ("go.xml", (DATA / "go-junit-report.xml").read_bytes(), "text/xml"))],
        data={
            "project": "formed",
            "branch": "dev",
            "commit": "f00",
            "label": ["a=1", "runner=go-x"],
        },
    )
    assert answer.status_code == 201, answer.text
    run = client.get(f"/api/runs/{answer.json()['run_id']}").json()
    assert (run["project"], run["branch"], run["commit"]) == ("formed", "dev", "f00")
    assert run["labels"] == {"source": "junit", "runner": "go-x", "a": "1"}  # given wins


# -- cut short and broken -----------------------------------------------------------------


def cut_before(data: bytes, marker: bytes) -> bytes:
    """The document up to the middle of the element that starts with ``marker``."""
    at = data.index(marker)
    return data[: at + len(marker) + 20]


def test_a_file_cut_short_stores_what_came_before_and_names_the_break(client: Client) -> None:
    data = cut_before(SUREFIRE[0].read_bytes(), b'<testcase name="dividesByZero"')
    answer = post_files(client, [("TEST-cut.xml", data), *read(SUREFIRE[1])])
    assert answer.status_code == 207, answer.text
    body = answer.json()
    assert body["complete"] is False
    assert body["status"] == "interrupted"
    (error,) = body["errors"]
    line = data.count(b"\n") + 1
    assert error.startswith(f"TEST-cut.xml, line {line}, column ")
    assert "cut short" in error
    assert "2 complete testcases before it were read" in error
    tests = by_nodeid(results(client, body["run_id"]))
    calc = [n for n in tests if n.startswith("com.example.shop.CalculatorTest::")]
    assert sorted(calc) == [
        "com.example.shop.CalculatorTest::addsTwoNumbers",
        "com.example.shop.CalculatorTest::roundsHalfUp",
    ]
    assert len([n for n in tests if "InventoryTest" in n]) == 3  # the whole other file
    run = client.get(f"/api/runs/{body['run_id']}").json()
    assert (run["outcome"], run["exit_status"]) == ("interrupted", 2)
    assert "TEST-cut.xml, line" in run["reason"]
    again = post_files(client, [("TEST-cut.xml", data), *read(SUREFIRE[1])])
    assert again.status_code == 207
    assert again.json()["already_imported"] is True


def test_broken_xml_in_the_middle_is_read_up_to_the_break(client: Client) -> None:
    first, rest = (DATA / "jest-junit.xml").read_bytes().split(b"</testcase>", 1)
    data = first + b"</testcase>" + rest.replace(b"</testcase>", b"</testcas>", 1)
    answer = post_xml(client, data)
    assert answer.status_code == 207
    (error,) = answer.json()["errors"]
    assert "the XML breaks here: mismatched tag" in error
    assert error.startswith("body, line 13, column")
    assert "1 complete testcase before it was read" in error
    assert answer.json()["tests"] == 1


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "send a JUnit XML document"),
        (b"not xml at all", "no testcase could be read: body, line 1, column 0"),
        (b'<?xml version="1.0"?><testsuites><testsuite name="a"><testcase name=', "cut short"),
        (b"<html><body>oops</body></html>", "body is not JUnit XML: its root element is <html>"),
        (b"\xff\xfe\x00<", "no testcase could be read"),
    ],
)
def test_nothing_readable_is_400_and_stores_nothing(client: Client, body: bytes, says: str) -> None:
    answer = post_xml(client, body)
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["detail"]
    assert stored(client) == (0, 0, 0)


def test_an_empty_suite_is_a_run_without_tests(client: Client) -> None:
    body = post_xml(client, b'<testsuite name="empty" tests="0"/>').json()
    assert (body["status"], body["tests"], body["counts"]) == ("no_tests", 0, {})


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"project": ""}, "project is required"),
        ({"label": ["novalue"]}, "a label is written K=V"),
        ({"branch": "b" * 1001}, "branch is 1001 characters long"),
    ],
)
def test_bad_options_are_400(client: Client, params: dict[str, Any], says: str) -> None:
    answer = post_xml(client, (DATA / "gotestsum.xml").read_bytes(), **params)
    assert answer.status_code == 400
    assert says in answer.json()["detail"]
    assert stored(client) == (0, 0, 0)


def test_a_name_past_the_limit_refuses_the_import(client: Client) -> None:
    long = "x" * 5000
    answer = post_xml(
        client, f'<testsuite name="s"><testcase classname="c" name="{long}"/></testsuite>'.encode()
    )
    assert answer.status_code == 400
    assert "body: the test 'c::xxx" in answer.json()["detail"]
    assert "at most 4000" in answer.json()["detail"]
    assert stored(client) == (0, 0, 0)


# -- hostile files ------------------------------------------------------------------------


#: Lists collecting what this process opens, while an `opened_files` block runs.
_WATCHERS: list[list[str]] = []


def _watch(event: str, args: tuple[Any, ...]) -> None:
    if _WATCHERS and event in ("open", "urllib.Request") and args:
        for seen in _WATCHERS:
            seen.append(str(args[0]))


@contextmanager
def opened_files() -> Iterator[list[str]]:
    """Paths opened (and URLs requested) in this process while the block runs."""
    if not getattr(sys, "_datacat_junit_watch", False):
        sys.addaudithook(_watch)  # once: an audit hook cannot be removed
        sys._datacat_junit_watch = True  # type: ignore[attr-defined]
    seen: list[str] = []
    _WATCHERS.append(seen)
    try:
        yield seen
    finally:
        _WATCHERS.remove(seen)


def test_billion_laughs_is_refused_at_once(client: Client) -> None:
    answer = post_xml(client, (DATA / "billion-laughs.xml").read_bytes())
    assert answer.status_code == 400
    assert "billion" not in answer.text
    assert "declares a DTD" in answer.json()["detail"]
    assert len(answer.content) < 1000  # nothing was expanded into the answer
    assert stored(client) == (0, 0, 0)


@pytest.mark.parametrize(
    "template",
    [
        # an external general entity, read into a message
        '<!DOCTYPE testsuites [<!ENTITY secret SYSTEM "file://{path}">]>'
        '<testsuites><testsuite name="s"><testcase name="t">'
        '<failure message="&secret;">&secret;</failure></testcase></testsuite></testsuites>',
        # an external parameter entity
        '<!DOCTYPE testsuites [<!ENTITY % secret SYSTEM "file://{path}"> %secret;]>'
        '<testsuites><testsuite name="s"><testcase name="t"/></testsuite></testsuites>',
        # an external DTD
        '<!DOCTYPE testsuites SYSTEM "file://{path}">'
        '<testsuites><testsuite name="s"><testcase name="t"/></testsuite></testsuites>',
    ],
)
def test_external_entities_are_refused_and_no_file_is_read(
    client: Client, tmp_path: Path, template: str
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-3141592")
    document = f'<?xml version="1.0"?>\n{template.format(path=secret)}'.encode()
    with opened_files() as probe:  # the watch sees a read of the file
        secret.read_text()
    assert str(secret) in probe
    with opened_files() as opened:
        answer = post_xml(client, document)
        files = post_files(client, [("xxe.xml", document), *read(SUREFIRE[0])])
    assert answer.status_code == 400
    assert files.status_code == 400  # the whole import: nothing of it is stored
    assert "declares a DTD" in answer.json()["detail"]
    assert not [path for path in opened if "secret" in path]
    assert "TOP-SECRET" not in answer.text + files.text
    assert stored(client) == (0, 0, 0)


def test_deep_nesting_is_refused(client: Client) -> None:
    deep = b"<testsuites>" + b"<testsuite>" * 200 + b"</testsuite>" * 200 + b"</testsuites>"
    answer = post_xml(client, deep)
    assert answer.status_code == 400
    assert "nested deeper than 100" in answer.json()["detail"]
    a_deep_failure = (
        b'<testsuite name="s"><testcase name="t"><failure>'
        + b"<x>" * 90
        + b"</x>" * 90
        + b"</failure></testcase></testsuite>"
    )
    assert post_xml(client, a_deep_failure).status_code == 201


@pytest.fixture
def small_client(tmp_path: Path) -> Iterator[Client]:
    settings = Settings(db_path=tmp_path / "small.duckdb", max_body_size=2_000)
    with TestClient(app=create_app(settings)) as test_client:
        yield test_client


def test_bodies_past_the_limit_are_413(small_client: Client) -> None:
    big = (DATA / "surefire" / SUREFIRE[0].name).read_bytes()
    assert len(big) > 2_000
    assert post_xml(small_client, big).status_code == 413
    assert post_files(small_client, read(SUREFIRE[0])).status_code == 413
    assert post_xml(small_client, (DATA / "gotestsum.xml").read_bytes()).status_code == 201
    assert stored(small_client)[1] == 1


# -- imported runs are runs like any other ------------------------------------------------


def test_imported_runs_show_in_the_runs_and_every_insight(client: Client) -> None:
    runs = [post_files(client, read(*SUREFIRE), project="api").json()["run_id"]]
    for commit in ("c1", "c2"):
        shifted = [
            (name, data.replace(b'name="com.example', f'name="{commit}.com.example'.encode(), 1))
            for name, data in read(*SUREFIRE)
        ]
        runs.append(post_files(client, shifted, project="api", commit=commit).json()["run_id"])
    listed = client.get("/api/runs", params={"project": "api"}).json()
    assert sorted(run["id"] for run in listed) == sorted(runs)
    flaky = client.get("/api/flaky", params={"project": "api"}).json()
    rounds = next(t for t in flaky if t["nodeid"].endswith("CalculatorTest::roundsHalfUp"))
    assert rounds["flaky_in_run"] == 3
    slow = client.get("/api/slow", params={"project": "api"}).json()
    assert any(t["nodeid"].endswith("InventoryTest::releasesStock") for t in slow)
    clusters = client.get("/api/failures", params={"project": "api"}).json()
    zero = next(c for c in clusters if c["exc_type"] == "java.lang.ArithmeticException")
    assert zero["signature"] == "/ by zero"
    assert zero["count"] == 9  # three attempts in each of three runs
    history = client.get(
        "/api/tests/history",
        params={"project": "api", "nodeid": "com.example.shop.CalculatorTest::dividesByZero"},
    )
    assert history.status_code == 200
    page = client.get(f"/runs/{runs[0]}")
    assert page.status_code == 200
    assert "dividesByZero" in page.text
    assert "/ by zero" in page.text
    assert runs[0] in client.get("/runs", params={"project": "api"}).text
    assert client.get("/flaky", params={"project": "api"}).status_code == 200


def test_a_large_build_with_thousands_of_files_is_one_run(client: Client) -> None:
    """Past the 1,000 parts Litestar's own form parser takes (a big Maven build)."""
    files = [
        (
            f"TEST-pkg.Case{n}Test.xml",
            f'<testsuite name="pkg.Case{n}Test"><testcase classname="pkg.Case{n}Test"'
            f' name="works" time="0.001"/></testsuite>'.encode(),
        )
        for n in range(1500)
    ]
    answer = post_files(client, files, project="big")
    assert answer.status_code == 201, answer.text
    assert (answer.json()["files"], answer.json()["tests"]) == (1500, 1500)


def test_a_form_without_files_or_with_a_broken_body_is_400(client: Client) -> None:
    empty = client.post("/api/import/junit", data={"project": "p"}, files={"x": ("", b"")})
    assert empty.status_code == 400
    broken = client.post(
        "/api/import/junit?project=p",
        content=b"--b\r\nContent-Disposition: form-data; name=file; filename=a.xml\r\n\r\n<te",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert broken.status_code == 400
    assert "multipart/form-data body is malformed" in broken.json()["detail"]
    assert stored(client) == (0, 0, 0)
