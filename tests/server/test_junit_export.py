"""``GET /api/runs/{id}/junit.xml``: any run as JUnit XML, checked by real consumers.

Two oracles: the JUnit schema pytest's own tests validate against (``junit-10.xsd``,
through ``xmlschema``), and ``junitparser``, a JUnit consumer. And the round trip:
import → export → import keeps every outcome, duration and message.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from junitparser import Error, Failure, Skipped
from junitparser.xunit2 import JUnitXml
from litestar.testing import TestClient

from datacat_client import wire
from tests.server.records import RecordMaker, batch
from tests.server.test_junit_import import (
    DATA,
    GRADLE,
    PYTEST_SUITE,
    SUREFIRE,
    post_files,
    read,
    results,
)

Client = TestClient  # type: ignore[type-arg]

SCHEMA = xmlschema.XMLSchema(DATA / "junit-10.xsd")
T0 = 1_790_000_000.0


def export(client: Client, run_id: str, family: str = "xunit2") -> str:
    answer = client.get(f"/api/runs/{run_id}/junit.xml", params={"family": family})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    assert f'filename="run-{run_id}.junit.xml"' in answer.headers["content-disposition"]
    return answer.text


def pytest_run(client: Client) -> str:
    """A run as `pytest --datacat` sends it: every outcome, reruns, subtests, output."""
    maker = RecordMaker()

    def result(nodeid: str, outcome: str, duration: float, **fields: Any) -> Any:
        return maker.result(
            nodeid, outcome, call_duration=duration, started_at=T0, stopped_at=T0 + 1, **fields
        )

    records = [
        maker.start(product="shop", name="pytest", labels={"ci": "yes"}),
        maker.make(
            wire.RunStart,
            project="shop",
            branch="main",
            commit="abc123",
            hostname="box",
            timestamp=T0,
        ),
        result("tests/test_a.py::test_pass", "passed", 0.25, line=3),
        result(
            "tests/test_a.py::TestCart::test_total[x-1]",
            "failed",
            0.5,
            exc_type="AssertionError",
            exc_message='assert 1 == 2 <&> "quoted"\nsecond line',
            traceback="def test_total():\n>   assert 1 == 2\n\x1b[31mE   red\x1b[0m\x00",
            stdout="printed\r\nline two",
            stderr="warned",
            log="WARNING a log line",
        ),
        result(
            "tests/test_a.py::test_setup",
            "error",
            0.0,
            phase="setup",
            exc_type="RuntimeError",
            exc_message="no database",
            traceback="RuntimeError: no database",
        ),
        result("tests/test_a.py::test_skip", "skipped", 0.0, reason="not today"),
        result("tests/test_a.py::test_xfail", "xfailed", 0.1, reason="bug 12"),
        result("tests/test_a.py::test_xpass", "xpassed", 0.1),
        result(
            "tests/test_b.py::test_flaky",
            "failed",
            0.1,
            exc_type="TimeoutError",
            exc_message="slow",
            final=False,
        ),
        result("tests/test_b.py::test_flaky", "passed", 0.2, attempt=1),
        *(
            result(
                "tests/test_b.py::test_broken",
                "failed",
                0.3,
                exc_type="KeyError",
                exc_message=f"'k{n}'",
                attempt=n,
                final=n == 2,
            )
            for n in range(3)
        ),
        result("tests/test_b.py::test_sub", "failed", 0.01, subtest="i=1", exc_message="odd"),
        result("tests/test_b.py::test_sub", "passed", 0.01, subtest="i=2"),
        result("tests/test_b.py::test_sub", "failed", 0.05),
        maker.make(
            wire.RunFinish,
            exit_status=1,
            status="failed",
            counts={"passed": 1, "failed": 3},
            duration=3.5,
            timestamp=T0 + 3.5,
        ),
        maker.make(wire.SessionEnd, timestamp=T0 + 3.5),
    ]
    answer = client.post("/api/ingest", content=batch(*records))
    assert answer.status_code == 200, answer.text
    return maker.session_id


def test_a_pytest_run_exports_as_valid_junit(client: Client) -> None:
    run_id = pytest_run(client)
    text = export(client, run_id)
    SCHEMA.validate(text)  # raises with the reason if invalid
    assert "\x1b" not in text
    assert "#x1B[31mE   red#x1B[0m#x00" in text  # as pytest writes what XML cannot hold
    assert "printed&#13;\nline two" in text
    (suite,) = JUnitXml.fromstring(text)
    assert (suite.name, suite.tests, suite.failures, suite.errors, suite.skipped) == (
        "shop",
        11,
        4,
        1,
        2,
    )
    assert suite.time == 3.5
    assert dt.datetime.fromisoformat(suite.timestamp) == dt.datetime.fromtimestamp(T0, dt.UTC)
    assert suite.timestamp.endswith("+00:00")
    assert suite.hostname == "box"
    assert {p.name: p.value for p in suite.properties()} == {
        "datacat.run": run_id,
        "project": "shop",
        "branch": "main",
        "commit": "abc123",
    }
    cases = {(case.classname, case.name): case for case in suite}
    passed = cases["tests.test_a", "test_pass"]
    assert (passed.is_passed, passed.time) == (True, 0.25)
    failed = cases["tests.test_a.TestCart", "test_total[x-1]"]
    (failure,) = failed.result
    assert isinstance(failure, Failure)
    assert failure.message == 'assert 1 == 2 <&> "quoted"\nsecond line'
    assert failure.type == "AssertionError"
    assert failure.text.startswith("def test_total():\n>   assert 1 == 2")
    assert failed.system_out.startswith("printed\r\nline two\n")
    assert "WARNING a log line" in failed.system_out
    assert failed.system_err == "warned"
    (error,) = cases["tests.test_a", "test_setup"].result
    assert isinstance(error, Error)
    assert error.message == "no database"
    (skipped,) = cases["tests.test_a", "test_skip"].result
    assert isinstance(skipped, Skipped)
    assert skipped.message == "not today"
    (xfail,) = cases["tests.test_a", "test_xfail"].result
    assert (xfail.type, xfail.message) == ("pytest.xfail", "bug 12")
    assert cases["tests.test_a", "test_xpass"].is_passed  # as pytest writes an xpass
    flaky = cases["tests.test_b", "test_flaky"]
    assert flaky.is_passed
    assert flaky.time == 0.2
    assert [(f.type, f.message) for f in flaky.flaky_failures()] == [("TimeoutError", "slow")]
    broken = cases["tests.test_b", "test_broken"]
    assert [(type(r), r.message) for r in broken.result] == [(Failure, "'k0'")]
    assert [r.message for r in broken.rerun_failures()] == ["'k1'", "'k2'"]
    assert cases["tests.test_b", "test_sub [i=1]"].result[0].message == "odd"
    assert cases["tests.test_b", "test_sub [i=2]"].is_passed
    assert not cases["tests.test_b", "test_sub"].is_passed


def test_xunit1_adds_files_lines_and_rerun_times(client: Client) -> None:
    run_id = pytest_run(client)
    text = export(client, run_id, "xunit1")
    (suite,) = JUnitXml.fromstring(text)
    cases = {(case.classname, case.name): case for case in suite}
    passed = cases["tests.test_a", "test_pass"]
    assert (passed._elem.get("file"), passed._elem.get("line")) == ("tests/test_a.py", "3")
    assert '<flakyFailure message="slow" type="TimeoutError" time="0.1"' in text
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        SCHEMA.validate(text)  # the schema knows no `file`: hence xunit2 by default


def test_unknown_runs_and_families(client: Client) -> None:
    missing = client.get("/api/runs/6f9619ff-8b86-d011-b42d-00c04fc964ff/junit.xml")
    assert missing.status_code == 404
    assert client.get("/api/runs/not-a-uuid/junit.xml").status_code == 404
    run_id = pytest_run(client)
    assert client.get(f"/api/runs/{run_id}/junit.xml?family=xunit3").status_code == 400


# -- the round trip -----------------------------------------------------------------------


def stored(client: Client, run_id: str) -> list[tuple[Any, ...]]:
    """What a run keeps of each result, in a comparable order."""
    return sorted(
        (
            row["nodeid"],
            row["subtest"] or "",
            row["attempt"],
            row["final"],
            row["outcome"],
            round(row["duration"], 6),
            row["exc_type"],
            row["exc_message"],
            row["traceback"],
            row["reason"],
            row["stdout"],
            row["stderr"],
            row["file"],
            row["line"],
        )
        for row in results(client, run_id)
    )


def without_interim_durations(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``rows`` as xunit2 keeps them: its rerun elements have no time (the schema has
    none), so only the attempt a testcase element stands for keeps its duration."""
    groups: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for row in rows:
        groups.setdefault((row[0], row[1]), []).append(row)
    kept = []
    for attempts in groups.values():
        *earlier, final = attempts
        failed = {"failed", "error"}
        if earlier and all(a[4] in failed for a in earlier):
            own = attempts[0] if final[4] in failed else final
            kept.extend(a if a is own else (*a[:5], 0.0, *a[6:]) for a in attempts)
        else:
            kept.extend(attempts)
    return sorted(kept)


def identity_aside(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows without node id, file and line."""
    return sorted(row[1:12] for row in rows)


def comparable(text: str) -> str:
    """An export with what names its run taken out."""
    text = re.sub(r"<properties>.*?</properties>", "", text, flags=re.S)
    return re.sub(r'<testsuite name="[^"]*"', "<testsuite", text)


def pytest_xml(pytester: pytest.Pytester) -> list[tuple[str, bytes]]:
    pytester.makepyfile(test_shop=PYTEST_SUITE)
    report = pytester.path / "report.xml"
    pytester.runpytest(f"--junitxml={report}", "-o", "junit_family=xunit1")
    return [("report.xml", report.read_bytes())]


SETS = {
    "go-junit-report": lambda _: read(DATA / "go-junit-report.xml"),
    "gotestsum": lambda _: read(DATA / "gotestsum.xml"),
    "jest": lambda _: read(DATA / "jest-junit.xml"),
    "surefire": lambda _: read(*SUREFIRE),
    "gradle": lambda _: read(*GRADLE),
    "nested": lambda _: read(DATA / "nested.xml"),
    "pytest": pytest_xml,
}


@pytest.mark.parametrize("name", list(SETS))
def test_import_export_import_keeps_every_outcome_duration_and_message(
    client: Client, pytester: pytest.Pytester, name: str
) -> None:
    files = SETS[name](pytester)
    first = post_files(client, files, project=name).json()["run_id"]
    original = stored(client, first)
    assert original
    for family in ("xunit1", "xunit2"):
        text = export(client, first, family)
        if family == "xunit2":
            SCHEMA.validate(text)
        again = post_files(client, [("export.xml", text.encode())], project=f"{name}-{family}")
        assert again.status_code == 201, again.text
        second = again.json()["run_id"]
        expected = original if family == "xunit1" else without_interim_durations(original)
        got = stored(client, second)
        if family == "xunit2" and name == "pytest":
            # without `file`, pytest's node ids cannot be rebuilt: the results can
            expected, got = identity_aside(expected), identity_aside(got)
        assert got == expected
        # and the export of the re-import is the same document
        assert comparable(export(client, second, family)) == comparable(text)
    run = client.get(f"/api/runs/{first}").json()
    back = client.get(f"/api/runs/{second}").json()
    assert (back["started_at"], back["counts"]) == (run["started_at"], run["counts"])


def test_suite_output_is_exported_after_the_testcases(client: Client) -> None:
    run_id = post_files(client, read(*GRADLE)).json()["run_id"]
    text = export(client, run_id)
    SCHEMA.validate(text)
    (suite,) = JUnitXml.fromstring(text)
    assert suite.system_out == "slugging 4 inputs\n"
    assert Path(GRADLE[0]).name in client.get(f"/api/runs/{run_id}").json()["args"]


def test_the_schema_documents_both_bodies_and_the_xml_answer(client: Client) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    upload = paths["/api/import/junit"]["post"]
    assert set(upload["requestBody"]["content"]) == {"application/xml", "multipart/form-data"}
    assert {"200", "201", "207", "400", "413"} <= set(upload["responses"])
    download = paths["/api/runs/{run_id}/junit.xml"]["get"]["responses"]
    assert set(download["200"]["content"]) == {"application/xml"}
    assert set(download["404"]["content"]) == {"application/json"}
    # and an error of the export is JSON, as the schema says
    answer = client.get("/api/runs/not-a-run/junit.xml")
    assert answer.headers["content-type"].startswith("application/json")
