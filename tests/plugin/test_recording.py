"""Every outcome pytest knows, recorded with its details, and counted as pytest counts."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.plugin.conftest import Api, plugins, run_id_of, run_pytest, summary_line
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

OUTCOMES = """
import pytest, sys

def test_passes():
    print("quiet stdout")

def test_fails():
    print("noisy stdout")
    sys.stderr.write("noisy stderr\\n")
    assert {"a": 1}["a"] == 2

def test_raises():
    raise KeyError("missing-key")

@pytest.mark.skip(reason="not on this platform")
def test_skipped():
    pass

@pytest.mark.xfail(reason="known bug 12")
def test_xfailed():
    assert 0

@pytest.mark.xfail(reason="fixed already")
def test_xpassed():
    pass

@pytest.fixture
def broken_setup():
    raise RuntimeError("database down")

def test_setup_error(broken_setup):
    pass

@pytest.fixture
def broken_teardown():
    yield
    raise OSError("cleanup failed")

def test_teardown_error(broken_teardown):
    pass

@pytest.mark.slow
@pytest.mark.parametrize("value", [1, 2])
def test_params(value):
    assert value

class TestGroup:
    def test_in_class(self):
        pass
"""


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("outcomes")
    (directory / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: slow tests\n")
    (directory / "test_outcomes.py").write_text(OUTCOMES)
    return directory


@pytest.fixture(scope="module")
def recorded(suite: Path, server: ServerProcess) -> tuple[pytest.RunResult, str]:
    """One recorded run of every outcome, which the tests below look at."""
    result = run_pytest(
        suite, *plugins(), "--datacat", f"--datacat-url={server.url}", spool=suite / "spool"
    )
    return result, run_id_of("\n".join(result.outlines))


def test_each_test_has_one_result_with_its_outcome(
    recorded: tuple[pytest.RunResult, str], api: Api
) -> None:
    _, run_id = recorded
    tests = {t["nodeid"].split("::", 1)[1]: t for t in api.tests(run_id)}
    assert {name: t["outcome"] for name, t in tests.items()} == {
        "test_passes": "passed",
        "test_fails": "failed",
        "test_raises": "failed",
        "test_skipped": "skipped",
        "test_xfailed": "xfailed",
        "test_xpassed": "xpassed",
        "test_setup_error": "error",
        "test_teardown_error": "error",
        "test_params[1]": "passed",
        "test_params[2]": "passed",
        "TestGroup::test_in_class": "passed",
    }
    assert tests["test_setup_error"]["phase"] == "setup"
    assert tests["test_teardown_error"]["phase"] == "teardown"
    assert all(t["final"] and t["attempt"] == 0 for t in tests.values())


def test_details_of_failures_skips_and_xfails(
    recorded: tuple[pytest.RunResult, str], api: Api
) -> None:
    _, run_id = recorded
    tests = {t["nodeid"].split("::", 1)[1]: t for t in api.tests(run_id)}
    fails = tests["test_fails"]
    assert fails["exc_type"] == "AssertionError"
    assert "assert 1 == 2" in fails["exc_message"]
    assert "def test_fails" in fails["traceback"]
    assert fails["stdout"] == "noisy stdout\n"
    assert fails["stderr"] == "noisy stderr\n"
    assert tests["test_raises"]["exc_type"] == "KeyError"
    assert "missing-key" in tests["test_raises"]["exc_message"]
    assert tests["test_setup_error"]["exc_type"] == "RuntimeError"
    assert tests["test_setup_error"]["exc_message"] == "database down"
    assert tests["test_teardown_error"]["exc_type"] == "OSError"
    assert tests["test_skipped"]["reason"] == "not on this platform"
    assert tests["test_xfailed"]["reason"] == "known bug 12"
    assert tests["test_xpassed"]["reason"] == "fixed already"
    # Captured output is kept for failures only, by default.
    assert tests["test_passes"]["stdout"] is None
    assert tests["test_passes"]["exc_type"] is None


def test_where_and_what_each_test_is(
    recorded: tuple[pytest.RunResult, str], api: Api, suite: Path
) -> None:
    _, run_id = recorded
    source = (suite / "test_outcomes.py").read_text().splitlines()
    tests = {t["nodeid"].split("::", 1)[1]: t for t in api.tests(run_id)}
    param = tests["test_params[2]"]
    assert param["file"] == "test_outcomes.py"
    assert param["func"] == "test_params"
    assert param["param_id"] == "2"
    assert {"parametrize", "slow"} <= set(param["markers"])
    # pytest locates a decorated function at its first decorator.
    assert param["line"] == source.index("@pytest.mark.slow") + 1
    assert tests["TestGroup::test_in_class"]["cls"] == "TestGroup"
    assert "xfail" in tests["test_xfailed"]["markers"]
    for test in tests.values():
        assert test["duration"] >= 0
        assert test["duration"] == pytest.approx(
            test["setup_duration"] + test["call_duration"] + test["teardown_duration"]
        )
        assert test["started_at"] <= test["stopped_at"]
        assert test["cpu_time"] is not None
        assert test["cpu_time"] >= 0
        assert test["rss_delta"] is not None


def test_counts_and_status_equal_what_pytest_reports(
    recorded: tuple[pytest.RunResult, str], api: Api
) -> None:
    result, run_id = recorded
    run = api.run(run_id)
    outcomes = result.parseoutcomes()
    expected = {("error" if k == "errors" else k): v for k, v in outcomes.items()}
    assert {k: v for k, v in run["counts"].items() if k != "warnings"} == expected
    assert run["outcome"] == "failed"
    assert run["exit_status"] == 1
    assert run["status"] == "ended"
    assert run["duration"] > 0
    assert run["pytest_version"] == pytest.__version__
    assert "--datacat" in run["args"]


def test_a_passing_run_and_its_metadata(
    pytester: pytest.Pytester, server: ServerProcess, api: Api
) -> None:
    pytester.makepyfile("def test_a(): pass")
    for args in (
        ["init", "-q", "-b", "feature/x"],
        ["add", "."],
        ["-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "one"],
    ):
        subprocess.run(["git", *args], cwd=pytester.path, check=True, capture_output=True)
    tracked = pytester.path / "test_a_passing_run_and_its_metadata.py"
    tracked.write_text("def test_a(): pass\n\ndef test_b(): pass\n")  # uncommitted change
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=pytester.path, capture_output=True, text=True, check=True
    ).stdout.strip()
    result = pytester.runpytest_subprocess(
        *plugins(),
        "--datacat",
        f"--datacat-url={server.url}",
        "--datacat-project=shop",
        "--datacat-label=team=payments",
    )
    assert result.ret == 0
    run = api.run(run_id_of(result.stdout.str()))
    assert run["outcome"] == "passed"
    assert run["project"] == "shop"
    assert run["labels"] == {"team": "payments"}
    assert (run["commit"], run["branch"], run["dirty"]) == (head, "feature/x", True)
    assert run["python_version"]
    assert run["hostname"]
    assert run["counts"] == {"passed": 2}
    assert run["ci_provider"] == ""


def test_ci_variables_win_over_git(
    pytester: pytest.Pytester, server: ServerProcess, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_SHA": "abc123",
        "GITHUB_REF_NAME": "main",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_RUN_ID": "42",
    }.items():
        monkeypatch.setenv(key, value)
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess(*plugins(), "--datacat", f"--datacat-url={server.url}")
    run = api.run(run_id_of(result.stdout.str()))
    assert (run["commit"], run["branch"]) == ("abc123", "main")
    assert run["ci_provider"] == "github-actions"
    assert run["ci_url"] == "https://github.com/acme/shop/actions/runs/42"


def test_collection_errors_are_recorded(
    pytester: pytest.Pytester, server: ServerProcess, api: Api
) -> None:
    pytester.makepyfile(test_ok="def test_a(): pass", test_broken="import not_a_module_anywhere\n")
    result = pytester.runpytest_subprocess(*plugins(), "--datacat", f"--datacat-url={server.url}")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # pytest stops when collection fails
    run_id = run_id_of(result.stdout.str())
    tests = api.tests(run_id)
    broken = [t for t in tests if t["nodeid"] == "test_broken.py"]
    assert len(broken) == 1
    assert broken[0]["outcome"] == "error"
    assert broken[0]["phase"] == "collect"
    assert "not_a_module_anywhere" in broken[0]["traceback"]
    assert api.run(run_id)["outcome"] == "interrupted"


NAMES = """
import pytest

@pytest.mark.parametrize("text", ["<script>alert(1)</script>", "naïve ✓ 名前", 'q"uo\\'te', "line\\nbreak"])
def test_names(text):
    pass
"""


def test_any_unicode_quotes_markup_or_newline_is_stored_exactly(
    pytester: pytest.Pytester, server: ServerProcess, api: Api
) -> None:
    pytester.makeini(
        "[pytest]\ndisable_test_id_escaping_and_forfeit_all_rights_to_community_support = true\n"
    )
    pytester.makepyfile(test_names=NAMES)
    result = pytester.runpytest_subprocess(*plugins(), "--datacat", f"--datacat-url={server.url}")
    result.assert_outcomes(passed=4)
    params = sorted(t["param_id"] for t in api.tests(run_id_of(result.stdout.str())))
    assert params == sorted(
        ["<script>alert(1)</script>", "naïve ✓ 名前", "q\"uo'te", "line\nbreak"]
    )


def test_capture_all_and_none(pytester: pytest.Pytester, server: ServerProcess, api: Api) -> None:
    pytester.makepyfile(
        "def test_a():\n    print('said')\n\ndef test_b():\n    print('said'); assert 0\n"
    )
    for mode, passed_out, failed_out in (("all", "said\n", "said\n"), ("none", None, None)):
        result = pytester.runpytest_subprocess(
            *plugins(), "--datacat", f"--datacat-url={server.url}", f"--datacat-capture={mode}"
        )
        tests = {t["nodeid"]: t for t in api.tests(run_id_of(result.stdout.str()))}
        assert tests["test_capture_all_and_none.py::test_a"]["stdout"] == passed_out
        assert tests["test_capture_all_and_none.py::test_b"]["stdout"] == failed_out


def test_long_output_is_truncated_and_marked(
    pytester: pytest.Pytester, server: ServerProcess, api: Api
) -> None:
    pytester.makepyfile("def test_a():\n    print('x' * 200_000)\n    assert 0\n")
    result = pytester.runpytest_subprocess(*plugins(), "--datacat", f"--datacat-url={server.url}")
    (test,) = api.tests(run_id_of(result.stdout.str()))
    assert len(test["stdout"]) < 20_000
    assert "[datacat: " in test["stdout"]
    assert "characters truncated]" in test["stdout"]


def test_github_step_summary(
    pytester: pytest.Pytester, server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile(
        "import time\ndef test_a(): time.sleep(0.05)\ndef test_b(): assert 1 == 2, 'boom'\n"
    )
    result = pytester.runpytest_subprocess(*plugins(), "--datacat", f"--datacat-url={server.url}")
    text = summary.read_text()
    assert "1 passed, 1 failed" in text
    assert "test_github_step_summary.py::test_b" in text
    assert "AssertionError: boom" in text
    assert "Slowest tests" in text
    assert run_id_of(result.stdout.str()) in text


def test_exit_code_and_output_unchanged_but_for_one_line(
    recorded: tuple[pytest.RunResult, str], suite: Path
) -> None:
    result, run_id = recorded
    plain = run_pytest(suite, *plugins(), spool=suite / "spool")
    assert plain.ret == result.ret
    assert plain.parseoutcomes() == result.parseoutcomes()
    line = summary_line(result)
    assert f"{len(OUTCOME_NAMES)} results recorded" in line
    assert run_id in line
    plain_lines = {_timeless(out) for out in plain.outlines}
    assert [out for out in result.outlines if _timeless(out) not in plain_lines] == [line]


def _timeless(line: str) -> str:
    return re.sub(r" in [0-9.]+s", " in ?s", line)


#: The results of OUTCOMES.
OUTCOME_NAMES = [
    "test_passes",
    "test_fails",
    "test_raises",
    "test_skipped",
    "test_xfailed",
    "test_xpassed",
    "test_setup_error",
    "test_teardown_error",
    "test_params[1]",
    "test_params[2]",
    "test_in_class",
]


CPU_SUITE = """
import time

def recurse(n):
    if n == 0:
        raise ValueError("deep down")
    return recurse(n - 1)

def test_fails_deep_down():
    recurse(300)

def test_busy():
    end = time.thread_time() + 0.2
    while time.thread_time() < end:
        pass
"""


@pytest.mark.parametrize("xdist", [False, True], ids=["in-process", "xdist"])
def test_cpu_time_is_the_test_s_own_not_pytest_s_report_of_it(
    pytester: pytest.Pytester, server: ServerProcess, api: Api, xdist: bool
) -> None:
    # pytest formats a 300-frame traceback after the test's call: that CPU is pytest's.
    pytester.makepyfile(test_cpu=CPU_SUITE)
    extra = [*plugins("xdist"), "-n", "1"] if xdist else plugins()
    result = pytester.runpytest_subprocess(*extra, "--datacat", f"--datacat-url={server.url}")
    result.assert_outcomes(passed=1, failed=1)
    tests = {t["nodeid"].split("::")[1]: t for t in api.tests(run_id_of(result.stdout.str()))}
    deep, busy = tests["test_fails_deep_down"], tests["test_busy"]
    # One thread's CPU time cannot outgrow the wall-clock time of the phases it counts.
    assert deep["cpu_time"] <= deep["duration"] + 0.002, deep
    assert 0.19 <= busy["cpu_time"] <= busy["duration"] + 0.002, busy
