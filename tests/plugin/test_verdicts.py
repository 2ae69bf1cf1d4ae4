"""What the closing line says about failures (classified by the server against the base
run), and quarantine: a quarantined test's failure leaves the exit status alone."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import httpx
import pytest

from tests.plugin.conftest import plugins, run_pytest, summary_line
from tests.support.server import ServerProcess

SUITE = """
import pathlib
import pytest

FAIL = set(pathlib.Path(__file__).with_name("fail.txt").read_text().split(","))

@pytest.mark.parametrize("name", ["alpha", "beta", "gamma"])
def test_case(name):
    assert name not in FAIL, name
"""


@pytest.fixture
def project() -> str:
    return f"verdicts-{uuid.uuid4().hex[:8]}"


def _run(
    suite: Path, server: ServerProcess, project: str, fail: str, spool: Path, *extra: str
) -> pytest.RunResult:
    (suite / "fail.txt").write_text(fail)
    return run_pytest(
        suite,
        *plugins(),
        "--datacat",
        f"--datacat-url={server.url}",
        f"--datacat-project={project}",
        *extra,
        spool=spool,
    )


@pytest.mark.e2e
def test_the_closing_line_classifies_the_failures(
    tmp_path: Path, server: ServerProcess, project: str, clean_environment: Path
) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    _run(tmp_path, server, project, "", clean_environment)
    _run(tmp_path, server, project, "alpha", clean_environment)
    result = _run(tmp_path, server, project, "alpha,beta", clean_environment)
    line = summary_line(result)
    assert "1 new failure, 1 already failing" in line, line
    assert result.ret == 1


@pytest.mark.e2e
def test_a_quarantined_failure_does_not_fail_the_build(
    tmp_path: Path, server: ServerProcess, project: str, clean_environment: Path
) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    nodeid = "test_suite.py::test_case[beta]"
    answer = httpx.post(
        f"{server.url}/api/quarantine",
        json={"project": project, "nodeid": nodeid, "reason": "flaky, #9"},
        timeout=10,
    )
    assert answer.json() == {"changed": True}
    only_quarantined = _run(
        tmp_path, server, project, "beta", clean_environment, "--datacat-quarantine"
    )
    assert only_quarantined.ret == 0
    line = summary_line(only_quarantined)
    assert "1 quarantined test failed (not failing the build)" in line, line
    assert "1 failed" in "\n".join(only_quarantined.outlines)  # still reported, and recorded
    # Another failure still fails the build; without the option, so does the quarantined one.
    both = _run(tmp_path, server, project, "alpha,beta", clean_environment, "--datacat-quarantine")
    assert both.ret == 1
    without = _run(tmp_path, server, project, "beta", clean_environment)
    assert without.ret == 1


@pytest.mark.e2e
def test_no_answer_means_no_quarantine(
    tmp_path: Path, server: ServerProcess, project: str, clean_environment: Path
) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    # beta fails: with nobody to say it is quarantined, its failure fails the build.
    (tmp_path / "fail.txt").write_text("beta")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    result = run_pytest(
        tmp_path,
        *plugins(),
        "--datacat",
        f"--datacat-url=http://127.0.0.1:{closed}",
        f"--datacat-project={project}",
        "--datacat-quarantine",
        "--datacat-flush-timeout=2",
        spool=clean_environment,
    )
    assert result.ret == 1  # never a green build because the server was unreachable
    assert result.parseoutcomes() == {"passed": 2, "failed": 1}
    line = summary_line(result)
    assert "quarantine not applied" in line
    assert "classification unavailable (the server has not stored this run)" in line
