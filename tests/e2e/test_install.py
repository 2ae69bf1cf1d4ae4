"""The install lines people copy work, with a wheel built from this repository standing in
for PyPI: the README's (the server, in a fresh venv) and the GitHub Actions example's (a
project's tests recorded by the plugin, in another fresh venv).

`pip install datacat` installs an unrelated project; the package is ``pytest-datacat``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.server import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 900


def _env(extra: Mapping[str, str]) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATACAT_", "PYTEST_", "VIRTUAL_ENV", "GITHUB_"))
    }
    return {**base, **extra}


def _run(
    command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=INSTALL_TIMEOUT,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the wheel built from this repository, as an index would."""
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)])
    built = [p.name for p in dist.iterdir()]
    assert len(built) == 1
    assert re.fullmatch(r"pytest_datacat-[\d.]+-py3-none-any\.whl", built[0]), built
    return dist


def _pip_env(wheels: Path, **extra: str) -> dict[str, str]:
    """Our wheel offered beside PyPI (which serves the dependencies)."""
    links = f"{wheels} {os.environ.get('PIP_FIND_LINKS', '')}".strip()
    return _env({"PIP_FIND_LINKS": links, **extra})


def _readme_server_line() -> str:
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```sh\n(python3 -m venv .*?)\n```", readme)
    assert block, "the README's install-and-serve line is gone"
    return block.group(1)


def _distribution(venv: Path, name: str) -> str:
    code = (
        "import importlib.metadata as m, sys\n"
        "try:\n    print(m.distribution(sys.argv[1]).metadata['Name'])\n"
        "except m.PackageNotFoundError:\n    print('-')\n"
    )
    return _run([str(venv / "bin" / "python"), "-c", code, name]).stdout.strip()


@pytest.fixture(scope="module")
def served(wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The README's line, run as it is in an empty directory: a fresh venv, the package
    with its server extra, ``datacat serve`` (on a free port, given by DATACAT_PORT)."""
    home = tmp_path_factory.mktemp("readme")
    port = free_port()
    log = (home / "out.log").open("w")
    proc = subprocess.Popen(
        ["bash", "-c", _readme_server_line()],
        cwd=home,
        env=_pip_env(wheels, DATACAT_PORT=str(port)),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: bash, pip, then the server
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + INSTALL_TIMEOUT
        while True:
            assert proc.poll() is None, (home / "out.log").read_text()[-4000:]
            assert time.monotonic() < deadline, (home / "out.log").read_text()[-4000:]
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        yield home / ".venv", url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


def test_the_readme_line_installs_pytest_datacat_and_serves(served: tuple[Path, str]) -> None:
    venv, url = served
    assert _distribution(venv, "pytest-datacat") == "pytest-datacat"
    assert _distribution(venv, "datacat") == "-"  # not the unrelated project
    installed = _run(
        [str(venv / "bin" / "python"), "-c", "import datacat_server.cli as m; print(m.__file__)"]
    ).stdout.strip()
    assert Path(installed).read_bytes() == (REPO / "datacat_server" / "cli.py").read_bytes()
    help_text = _run([str(venv / "bin" / "datacat"), "--help"]).stdout
    for command in ("serve", "query", "upload", "demo"):
        assert command in help_text
    # The installed server has what its pages need, the API docs' files included.
    page = httpx.get(f"{url}/schema", timeout=30).text
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page):
        assert httpx.get(f"{url}{asset}", timeout=30).status_code == 200, asset


PROJECT_FILES = {
    "pyproject.toml": """
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [project]
        name = "shop"
        version = "1.0"
        [project.optional-dependencies]
        test = ["pytest"]

        [tool.hatch.build.targets.wheel]
        packages = ["shop"]
        """,
    "shop/__init__.py": "def total(prices):\n    return sum(prices)\n",
    "tests/test_shop.py": """
        import pytest

        from shop import total


        def test_total():
            assert total([1, 2]) == 3


        def test_empty():
            assert total([]) == 0


        @pytest.mark.skip(reason="not yet")
        def test_discounts():
            pass
        """,
}


def _expand(text: str, values: Mapping[str, str]) -> str:
    """GitHub's ``${{ name }}`` expressions, replaced by ``values``."""
    return re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", lambda m: values[m.group(1)], text)


def test_the_github_actions_example_records_a_project_s_tests(
    served: tuple[Path, str], wheels: Path, tmp_path: Path
) -> None:
    _, url = served
    project = tmp_path / "shop"
    for name, text in PROJECT_FILES.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(textwrap.dedent(text).lstrip())
    steps = yaml.safe_load((REPO / "examples" / "github-actions.yml").read_text())["jobs"]["test"][
        "steps"
    ]
    install = next(s["run"] for s in steps if str(s.get("run", "")).startswith("pip install"))
    test_step = next(s for s in steps if "pytest --datacat" in str(s.get("run", "")))
    assert "pytest-datacat" in install.split()

    # What actions/setup-python gives the job: a fresh Python whose bin is first on PATH.
    runner = tmp_path / "runner-venv"
    _run([sys.executable, "-m", "venv", str(runner)])
    path = f"{runner / 'bin'}{os.pathsep}{os.environ['PATH']}"
    _run(["bash", "-c", install], cwd=project, env=_pip_env(wheels, PATH=path))
    assert _distribution(runner, "pytest-datacat") == "pytest-datacat"
    assert _distribution(runner, "datacat") == "-"
    assert _distribution(runner, "duckdb") == "-"  # the plugin's install stays light

    values = {
        "matrix.python-version": "3.11",
        "runner.os": "Linux",
        "runner.temp": str(tmp_path / "runner-temp"),
        "secrets.DATACAT_URL": url,
        "secrets.DATACAT_TOKEN": "",
    }
    step_env = {k: _expand(str(v), values) for k, v in test_step["env"].items()}
    done = subprocess.run(
        ["bash", "-c", _expand(test_step["run"], values)],
        cwd=project,
        env=_env({"PATH": path, **step_env}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "datacat: run " in done.stdout, done.stdout[-3000:]

    runs = httpx.get(f"{url}/api/runs", params={"project": "shop"}, timeout=30).json()
    assert len(runs) == 1, runs
    run = runs[0]
    assert run["counts"] == {"passed": 2, "skipped": 1}
    assert run["labels"] == {"python": "3.11", "os": "Linux"}

    # Without the server extra, `datacat serve` says what to install, by its right name.
    bare = subprocess.run(
        [str(runner / "bin" / "datacat"), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_env({}),
    )
    assert bare.returncode == 2
    assert "pip install 'pytest-datacat[server]'" in bare.stderr
