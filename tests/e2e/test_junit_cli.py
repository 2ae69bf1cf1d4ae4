"""``datacat import junit`` against a real ``datacat serve``, and the export over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import xmlschema
from junitparser.xunit2 import JUnitXml

from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.e2e

DATA = Path(__file__).parents[1] / "data" / "junit"
SUREFIRE = sorted((DATA / "surefire").glob("*.xml"))
SCHEMA = xmlschema.XMLSchema(DATA / "junit-10.xsd")


def datacat(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datacat_server", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_import_then_again_then_export(live_server: ServerProcess) -> None:
    url = live_server.url
    files = [str(path) for path in SUREFIRE]
    first = datacat(
        "import", "junit", *files, "--url", url, "--project", "api", "--branch", "main",
        "--commit", "abc", "--label", "team=payments",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    line = first.stdout.strip()
    assert line.startswith("imported 2 files as run ")
    assert "7 tests (4 passed, 1 failed, 1 skipped, 1 error, 6 rerun), failed" in line
    run_id = line.split("as run ", 1)[1].split(":", 1)[0]
    assert line.endswith(f"· {url}/runs/{run_id}")
    again = datacat(
        "import", "junit", *reversed(files), "--project", "api", env={"DATACAT_URL": url}
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"already imported: 2 files are run {run_id}")
    runs = httpx.get(f"{url}/api/runs", params={"project": "api"}).json()
    assert [(r["id"], r["branch"], r["labels"]["team"]) for r in runs] == [
        (run_id, "main", "payments")
    ]
    exported = httpx.get(f"{url}/api/runs/{run_id}/junit.xml")
    assert exported.status_code == 200
    SCHEMA.validate(exported.text)
    (suite,) = JUnitXml.fromstring(exported.text)
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (7, 1, 1, 1)


def test_a_file_cut_short_is_stored_up_to_the_break_and_exits_1(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    data = SUREFIRE[0].read_bytes()
    cut = tmp_path / "TEST-cut.xml"
    cut.write_bytes(data[: data.index(b'<testcase name="dividesByZero"') + 40])
    done = datacat("import", "junit", str(cut), "--url", live_server.url, "--project", "api")
    assert done.returncode == 1
    assert "2 tests (2 passed, 1 rerun), interrupted" in done.stdout
    assert f"datacat import junit: {cut}, line 21, column" in done.stderr
    assert "cut short" in done.stderr
    assert "Traceback" not in done.stderr


def test_refusals_and_usage_errors_say_why(live_server: ServerProcess, tmp_path: Path) -> None:
    url = live_server.url
    missing = datacat("import", "junit", str(tmp_path / "nope.xml"), "--url", url, "--project", "p")
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
    no_project = datacat("import", "junit", str(SUREFIRE[0]), "--url", url)
    assert no_project.returncode == 2
    assert "--project is required" in no_project.stderr
    bomb = datacat(
        "import", "junit", str(DATA / "billion-laughs.xml"), "--url", url, "--project", "p"
    )
    assert bomb.returncode == 1
    assert f"datacat import junit: HTTP 400: {DATA}/billion-laughs.xml is refused" in bomb.stderr
    nowhere = f"http://127.0.0.1:{free_port()}"
    down = datacat("import", "junit", str(SUREFIRE[0]), "--url", nowhere, "--project", "p")
    assert down.returncode == 1
    assert f"cannot connect to {nowhere}" in down.stderr
    assert httpx.get(f"{url}/api/runs").json() == []


def test_tokens_are_sent_and_needed(tmp_path: Path) -> None:
    tokens = {"DATACAT_TOKENS": "ingest:ingest-0123456789abcdef,read:read-0123456789abcdef00"}
    with ServerProcess(tmp_path / "tokens.duckdb", env=tokens) as server:
        args = ("import", "junit", str(SUREFIRE[0]), "--url", server.url, "--project", "p")
        refused = datacat(*args)
        assert refused.returncode == 1
        assert "401: a token is required" in refused.stderr
        wrong = datacat(*args, "--token", "read-0123456789abcdef00")
        assert "403: this token lacks the ingest scope" in wrong.stderr
        done = datacat(*args, env={"DATACAT_TOKEN": "ingest-0123456789abcdef"})
        assert done.returncode == 0, done.stderr


def test_the_command_needs_the_base_install_only(live_server: ServerProcess) -> None:
    """No server dependency is imported: each import of one fails here."""
    blocked = ["litestar", "uvicorn", "duckdb", "jinja2", "pyarrow", "defusedxml"]
    script = textwrap.dedent(
        f"""
        import sys
        for name in {blocked!r}:
            sys.modules[name] = None  # importing it now raises ImportError
        from datacat_server.cli import main
        raise SystemExit(main(sys.argv[1:]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "import", "junit", str(DATA / "gotestsum.xml"),
         "--url", live_server.url, "--project", "go"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported 1 file as run ")


SUITE = """
import pytest

def test_ok():
    pass

def test_fails():
    assert 2 + 2 == 5

@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    pass

class TestThing:
    def test_method(self):
        print("hi")
"""


@pytest.mark.slow
def test_one_suite_recorded_by_the_plugin_and_imported_from_its_xml(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    """pytest --datacat and pytest --junitxml of the same tests: the same node ids,
    outcomes and durations, and the plugin's run exports to valid JUnit XML."""
    (tmp_path / "test_suite.py").write_text(textwrap.dedent(SUITE))
    report = tmp_path / "report.xml"
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--datacat",
         f"--datacat-url={live_server.url}", "--datacat-project=suite",
         f"--junitxml={report}", "-o", "junit_family=xunit1", "test_suite.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 1, ran.stdout + ran.stderr
    done = datacat("import", "junit", str(report), "--url", live_server.url, "--project", "suite")
    assert done.returncode == 0, done.stderr
    runs = httpx.get(f"{live_server.url}/api/runs", params={"project": "suite"}).json()
    assert len(runs) == 2
    by_source = {run["labels"].get("source", "pytest"): run for run in runs}

    def outcomes(run_id: str) -> dict[str, str]:
        rows = httpx.get(f"{live_server.url}/api/runs/{run_id}/tests").json()
        return {row["nodeid"]: row["outcome"] for row in rows}

    plugin, imported = outcomes(by_source["pytest"]["id"]), outcomes(by_source["junit"]["id"])
    assert plugin == imported
    assert plugin["test_suite.py::TestThing::test_method"] == "passed"
    assert plugin["test_suite.py::test_fails"] == "failed"
    exported = httpx.get(f"{live_server.url}/api/runs/{by_source['pytest']['id']}/junit.xml")
    SCHEMA.validate(exported.text)
    (suite,) = JUnitXml.fromstring(exported.text)
    assert {(case.classname, case.name) for case in suite} == {
        ("test_suite", "test_ok"),
        ("test_suite", "test_fails"),
        ("test_suite", "test_param[1]"),
        ("test_suite", "test_param[2]"),
        ("test_suite.TestThing", "test_method"),
    }
