"""Enabling the plugin and reading its options: command line over environment over ini."""

from __future__ import annotations

import pytest

from pytest_datacat.options import resolve_options
from tests.plugin.conftest import plugins
from tests.support.server import ServerProcess


def _options(pytester: pytest.Pytester, *args: str, env: dict[str, str] | None = None) -> object:
    config = pytester.parseconfigure(*plugins(), *args)
    try:
        return resolve_options(config, env or {})
    finally:
        config._ensure_unconfigure()


@pytest.mark.slow  # auto-loads every installed plugin: 3 s a run here
@pytest.mark.e2e
def test_off_unless_asked(
    pytester: pytest.Pytester, server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD")  # loaded by its entry point
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess(f"--datacat-url={server.url}")
    result.assert_outcomes(passed=1)
    assert "datacat:" not in result.stdout.str()


def test_off_adds_no_hooks(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure(*plugins())
    try:
        names = {name for name, _ in config.pluginmanager.list_name_plugin()}
        assert not {"datacat-recorder", "datacat-probe", "datacat-worker"} & names
    finally:
        config._ensure_unconfigure()


@pytest.mark.parametrize(
    ("args", "env", "ini"),
    [
        (["--datacat"], {}, ""),
        ([], {"DATACAT_ENABLE": "1"}, ""),
        ([], {}, "datacat = true"),
    ],
)
def test_three_ways_to_switch_it_on(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    ini: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    config = pytester.parseconfigure(*plugins(), *args)
    try:
        names = {name for name, _ in config.pluginmanager.list_name_plugin()}
        assert "datacat-recorder" in names
    finally:
        config._ensure_unconfigure()


def test_command_line_beats_environment_beats_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\ndatacat_project = from-ini\ndatacat_url = http://ini:1\n"
        "datacat_hang_timeout = 7\ndatacat_labels =\n    team=ini\n    os=linux\n"
    )
    from_ini = _options(pytester, "--datacat")
    assert from_ini is not None
    assert from_ini.project == "from-ini"  # type: ignore[attr-defined]
    assert from_ini.url == "http://ini:1"  # type: ignore[attr-defined]
    assert from_ini.hang_timeout == 7.0  # type: ignore[attr-defined]
    assert from_ini.labels == {"team": "ini", "os": "linux"}  # type: ignore[attr-defined]
    env = {
        "DATACAT_PROJECT": "from-env",
        "DATACAT_URL": "https://env:2",
        "DATACAT_LABELS": "team=env",
    }
    from_env = _options(pytester, "--datacat", env=env)
    assert from_env.project == "from-env"  # type: ignore[attr-defined]
    assert from_env.url == "https://env:2"  # type: ignore[attr-defined]
    assert from_env.labels == {"team": "env"}  # type: ignore[attr-defined]
    from_cli = _options(
        pytester,
        "--datacat",
        "--datacat-project=from-cli",
        "--datacat-url=http://cli:3/",
        "--datacat-label=team=cli",
        "--datacat-label=tier=1",
        env=env,
    )
    assert from_cli.project == "from-cli"  # type: ignore[attr-defined]
    assert from_cli.url == "http://cli:3"  # type: ignore[attr-defined]
    assert from_cli.labels == {"team": "cli", "tier": "1"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "env", "ini"),
    [
        (["--datacat-quarantine", "--datacat-base=release"], {}, ""),
        ([], {"DATACAT_QUARANTINE": "1", "DATACAT_BASE": "release"}, ""),
        ([], {}, "datacat_quarantine = true\ndatacat_base = release"),
    ],
)
def test_quarantine_and_the_base_branch_three_ways(
    pytester: pytest.Pytester, args: list[str], env: dict[str, str], ini: str
) -> None:
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    options = _options(pytester, "--datacat", *args, env=env)
    assert options.quarantine is True  # type: ignore[attr-defined]
    assert options.base == "release"  # type: ignore[attr-defined]


def test_the_environment_turns_quarantine_off_over_the_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ndatacat_quarantine = true\n")
    options = _options(pytester, "--datacat", env={"DATACAT_QUARANTINE": "0"})
    assert options.quarantine is False  # type: ignore[attr-defined]


def test_defaults(pytester: pytest.Pytester) -> None:
    options = _options(pytester, "--datacat")
    assert options is not None
    assert options.url == "http://127.0.0.1:8080"  # type: ignore[attr-defined]
    assert options.project == pytester.path.name  # type: ignore[attr-defined]
    assert options.hang_timeout == 60.0  # type: ignore[attr-defined]
    assert options.flush_timeout == 10.0  # type: ignore[attr-defined]
    assert options.capture == "failed"  # type: ignore[attr-defined]
    assert options.quarantine is False  # type: ignore[attr-defined]
    assert options.base is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "env", "ini", "message"),
    [
        (
            ["--datacat-hang-timeout=-3"],
            {},
            "",
            "--datacat-hang-timeout must be a positive number of seconds, such as 60 or 2.5;"
            " got '-3'",
        ),
        (
            [],
            {"DATACAT_HANG_TIMEOUT": "abc"},
            "",
            "DATACAT_HANG_TIMEOUT must be a positive number of seconds",
        ),
        (
            [],
            {},
            "datacat_flush_timeout = 0",
            "datacat_flush_timeout in tox.ini must be a positive",
        ),
        (
            [],
            {"DATACAT_HEARTBEAT_INTERVAL": "x"},
            "",
            "DATACAT_HEARTBEAT_INTERVAL must be a positive number of seconds",
        ),
        (
            ["--datacat-url=localhost:8080"],
            {},
            "",
            "--datacat-url must be an http:// or https:// URL with a host,"
            " such as http://127.0.0.1:8080; got 'localhost:8080'",
        ),
        ([], {"DATACAT_URL": "ftp://x"}, "", "DATACAT_URL must be an http:// or https:// URL"),
        (
            ["--datacat-capture=some"],
            {},
            "",
            "--datacat-capture must be one of failed, all, none; got 'some'",
        ),
        ([], {}, "datacat_capture = most", "datacat_capture in tox.ini must be one of failed"),
        (["--datacat-label=novalue"], {}, "", "--datacat-label must be KEY=VALUE labels"),
        ([], {"DATACAT_LABELS": "a=1,b"}, "", "DATACAT_LABELS must be KEY=VALUE labels"),
        ([], {}, "datacat_labels =\n    =x", "datacat_labels in tox.ini must be KEY=VALUE"),
    ],
)
def test_a_bad_value_names_where_it_came_from_and_what_is_accepted(
    pytester: pytest.Pytester, args: list[str], env: dict[str, str], ini: str, message: str
) -> None:
    pytester.makefile(".ini", tox=f"[pytest]\n{ini}\n")
    with pytest.raises(pytest.UsageError) as caught:
        _options(pytester, "--datacat", *args, env=env)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("env", "ini", "message"),
    [
        (
            {"DATACAT_ENABLE": "maybe"},
            "",
            "DATACAT_ENABLE must be 1, true, yes or on (record the run),"
            " or 0, false, no, off or empty (do not); got 'maybe'",
        ),
        ({}, "datacat = maybe", "datacat in tox.ini must be true or false"),
    ],
)
def test_a_bad_switch_names_where_it_came_from_and_what_is_accepted(
    pytester: pytest.Pytester, env: dict[str, str], ini: str, message: str
) -> None:
    pytester.makefile(".ini", tox=f"[pytest]\n{ini}\n")
    with pytest.raises(pytest.UsageError) as caught:
        _options(pytester, env=env)
    assert message in str(caught.value)


def test_the_switch_takes_what_it_says_it_takes(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure(*plugins())
    try:
        for value in ("yes", "true", "ON", "1"):
            assert resolve_options(config, {"DATACAT_ENABLE": value}) is not None
        for value in ("no", "false", "off", "0", ""):
            assert resolve_options(config, {"DATACAT_ENABLE": value}) is None
    finally:
        config._ensure_unconfigure()


def test_a_bad_value_is_a_usage_error_before_any_test_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): open('ran', 'w').close()")
    result = pytester.runpytest_subprocess(*plugins(), "--datacat", "--datacat-hang-timeout=soon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--datacat-hang-timeout must be a positive number of seconds" in result.stderr.str()
    assert not (pytester.path / "ran").exists()


def test_bad_values_are_ignored_while_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess(*plugins(), "--datacat-hang-timeout=-3")
    result.assert_outcomes(passed=1)


@pytest.mark.slow  # auto-loads every installed plugin: 3 s a run here
def test_no_datacat_removes_the_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    pytester.makepyfile("def test_a(): pass")
    assert pytester.runpytest_subprocess("-p", "no:datacat").ret == 0
    result = pytester.runpytest_subprocess("-p", "no:datacat", "--datacat")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unrecognized arguments: --datacat" in result.stderr.str()


def test_help_lists_every_option(pytester: pytest.Pytester) -> None:
    out = pytester.runpytest_subprocess(*plugins(), "--help").stdout.str()
    for option in (
        "--datacat ",
        "--datacat-url",
        "--datacat-token",
        "--datacat-project",
        "--datacat-label",
        "--datacat-hang-timeout",
        "--datacat-flush-timeout",
        "--datacat-capture",
    ):
        assert option in out
    for ini in ("datacat_url", "datacat_project", "datacat_labels", "datacat_hang_timeout"):
        assert ini in out
