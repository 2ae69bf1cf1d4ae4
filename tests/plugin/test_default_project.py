"""The project a run belongs to when none is given: the package's name, not its directory's
(an unpacked ``attrs-26.1.0`` must not be a new project with every version)."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from pytest_datacat.metadata import default_project
from pytest_datacat.options import resolve_options
from tests.plugin.conftest import Api, plugins, run_id_of
from tests.support.server import ServerProcess


def _project(pytester: pytest.Pytester, *args: str, env: dict[str, str] | None = None) -> str:
    config = pytester.parseconfigure(*plugins(), "--datacat", *args)
    try:
        options = resolve_options(config, env or {})
        assert options is not None
        return options.project
    finally:
        config._ensure_unconfigure()


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, timeout=30)


def test_the_name_in_pyproject_toml(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject='[project]\nname = "attrs"\nversion = "26.1.0"\n')
    pytester.makefile(".cfg", setup="[metadata]\nname = not-this\n")
    assert _project(pytester) == "attrs"


def test_the_poetry_name_in_pyproject_toml(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".toml", pyproject='[tool.poetry]\nname = "poetic"\n\n[tool.pytest.ini_options]\n'
    )
    assert _project(pytester) == "poetic"


def test_the_name_in_setup_cfg(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject="[tool.black]\nline-length = 100\n")  # no name
    pytester.makefile(".cfg", setup="[metadata]\nname = configured\nversion = 1.0\n")
    assert _project(pytester) == "configured"


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/widgets.git",
        "git@github.com:acme/widgets.git",
        "ssh://git@gitlab.example/group/sub/widgets",
        "/srv/git/widgets.git/",
    ],
)
def test_the_git_remote_repository_name(pytester: pytest.Pytester, url: str) -> None:
    _git(pytester.path, "init", "-q")
    _git(pytester.path, "remote", "add", "origin", url)
    assert _project(pytester) == "widgets"


def test_the_rootdir_name_when_nothing_else_names_it(pytester: pytest.Pytester) -> None:
    _git(pytester.path, "init", "-q")  # a repository without a remote
    assert _project(pytester) == pytester.path.name


def test_a_broken_file_is_passed_over(tmp_path: Path) -> None:
    # (pytest itself refuses a broken pyproject.toml in the rootdir; a run never gets here
    # with one, but the plugin must not be the one that fails.)
    (tmp_path / "pyproject.toml").write_text("[project\nname = ")
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = fallback\n")
    assert default_project(tmp_path) == "fallback"
    (tmp_path / "setup.cfg").write_bytes(b"\xff\xfe[metadata")
    assert default_project(tmp_path) == tmp_path.name
    (tmp_path / "pyproject.toml").write_text('[project]\nname = ["not", "a", "string"]\n')
    assert default_project(tmp_path) == tmp_path.name


def test_an_explicit_project_still_wins(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject='[project]\nname = "attrs"\n')
    assert _project(pytester, "--datacat-project=chosen") == "chosen"
    assert _project(pytester, env={"DATACAT_PROJECT": "from-env"}) == "from-env"
    pytester.makeini("[pytest]\ndatacat_project = from-ini\n")
    assert _project(pytester) == "from-ini"


def test_an_unpacked_sdist_is_its_package_not_its_directory(tmp_path: Path) -> None:
    unpacked = tmp_path / "attrs-26.1.0"
    unpacked.mkdir()
    (unpacked / "pyproject.toml").write_text('[project]\nname = "attrs"\n')
    assert default_project(unpacked) == "attrs"


def test_a_recorded_run_carries_the_package_name(
    pytester: pytest.Pytester, server: ServerProcess, api: Api
) -> None:
    pytester.makefile(".toml", pyproject='[project]\nname = "named-by-pyproject"\n')
    pytester.makepyfile(
        textwrap.dedent(
            """
            def test_ok():
                pass
            """
        )
    )
    result = pytester.runpytest_subprocess(*plugins(), "--datacat", f"--datacat-url={server.url}")
    result.assert_outcomes(passed=1)
    run = api.run(run_id_of(result.stdout.str()))
    assert run["project"] == "named-by-pyproject"
