"""What a run is: its project, code version (from CI variables, else git), CI job,
platform, pytest."""

from __future__ import annotations

import configparser
import dataclasses
import os
import platform
import re
import socket
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = [
    "CodeVersion",
    "RunEnvironment",
    "ci_info",
    "collect_environment",
    "default_project",
    "git_info",
]


@dataclasses.dataclass(frozen=True)
class CodeVersion:
    commit: str = ""
    branch: str = ""
    dirty: bool | None = None


@dataclasses.dataclass(frozen=True)
class CiInfo:
    provider: str = ""
    url: str = ""
    commit: str = ""
    branch: str = ""


@dataclasses.dataclass(frozen=True)
class RunEnvironment:
    """Everything `RunStart` carries besides the project and the pytest details."""

    commit: str
    branch: str
    dirty: bool | None
    ci_provider: str
    ci_url: str
    python_version: str
    python_implementation: str
    platform: str
    hostname: str
    #: A pull/merge request's target branch and the merge base with it ("" if none).
    base_branch: str = ""
    base_commit: str = ""


def _strip_ref(ref: str) -> str:
    for prefix in ("refs/heads/", "refs/tags/", "origin/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


def _github(env: Mapping[str, str]) -> CiInfo:
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    repo, run = env.get("GITHUB_REPOSITORY", ""), env.get("GITHUB_RUN_ID", "")
    url = f"{server}/{repo}/actions/runs/{run}" if repo and run else ""
    if url and env.get("GITHUB_RUN_ATTEMPT"):
        url += f"/attempts/{env['GITHUB_RUN_ATTEMPT']}"
    branch = env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME", "")
    return CiInfo("github-actions", url, env.get("GITHUB_SHA", ""), branch)


def _gitlab(env: Mapping[str, str]) -> CiInfo:
    branch = env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or env.get("CI_COMMIT_REF_NAME", "")
    return CiInfo("gitlab-ci", env.get("CI_JOB_URL", ""), env.get("CI_COMMIT_SHA", ""), branch)


def _circleci(env: Mapping[str, str]) -> CiInfo:
    return CiInfo(
        "circleci",
        env.get("CIRCLE_BUILD_URL", ""),
        env.get("CIRCLE_SHA1", ""),
        env.get("CIRCLE_BRANCH", ""),
    )


def _buildkite(env: Mapping[str, str]) -> CiInfo:
    url = env.get("BUILDKITE_BUILD_URL", "")
    if url and env.get("BUILDKITE_JOB_ID"):
        url += f"#{env['BUILDKITE_JOB_ID']}"
    return CiInfo(
        "buildkite", url, env.get("BUILDKITE_COMMIT", ""), env.get("BUILDKITE_BRANCH", "")
    )


def _azure(env: Mapping[str, str]) -> CiInfo:
    collection, project = env.get("SYSTEM_COLLECTIONURI", ""), env.get("SYSTEM_TEAMPROJECT", "")
    build = env.get("BUILD_BUILDID", "")
    url = f"{collection}{project}/_build/results?buildId={build}" if collection and build else ""
    branch = env.get("SYSTEM_PULLREQUEST_SOURCEBRANCH") or env.get("BUILD_SOURCEBRANCH", "")
    return CiInfo("azure-pipelines", url, env.get("BUILD_SOURCEVERSION", ""), _strip_ref(branch))


def _jenkins(env: Mapping[str, str]) -> CiInfo:
    branch = env.get("BRANCH_NAME") or env.get("GIT_BRANCH", "")
    return CiInfo(
        "jenkins", env.get("BUILD_URL", ""), env.get("GIT_COMMIT", ""), _strip_ref(branch)
    )


#: Each provider: how to recognise it from its environment, and how to read it.
_PROVIDERS: tuple[
    tuple[Callable[[Mapping[str, str]], bool], Callable[[Mapping[str, str]], CiInfo]], ...
] = (
    (lambda env: env.get("GITHUB_ACTIONS") == "true", _github),
    (lambda env: bool(env.get("GITLAB_CI")), _gitlab),
    (lambda env: env.get("CIRCLECI") == "true", _circleci),
    (lambda env: env.get("BUILDKITE") == "true", _buildkite),
    (lambda env: env.get("TF_BUILD", "").lower() == "true", _azure),
    (lambda env: bool(env.get("JENKINS_URL")), _jenkins),
)


def ci_info(env: Mapping[str, str]) -> CiInfo:
    """The CI provider, a link to the job, and the commit and branch it builds."""
    for detect, read in _PROVIDERS:
        if detect(env):
            return read(env)
    return CiInfo()


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(root: Path) -> CodeVersion:
    """Commit, branch and dirty flag of the repository at ``root``; empty without one."""
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return CodeVersion()
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD") or ""
    if branch == "HEAD":  # detached
        branch = ""
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return CodeVersion(commit, branch, None if status is None else bool(status))


def base_of(root: Path, env: Mapping[str, str], base: str | None = None) -> tuple[str, str]:
    """The branch a pull/merge request targets and the merge base with it: ``base``
    (``--datacat-base``), else GitHub's ``GITHUB_BASE_REF`` or GitLab's merge request
    target (with its ``CI_MERGE_REQUEST_DIFF_BASE_SHA``); the merge base from git when
    the CI does not say it (``origin/BRANCH``, then ``BRANCH``; "" if git cannot tell,
    e.g. a shallow clone)."""
    branch = (
        base or env.get("GITHUB_BASE_REF") or env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "")
    )
    if not branch:
        return "", ""
    commit = "" if base else env.get("CI_MERGE_REQUEST_DIFF_BASE_SHA", "")
    for ref in (f"origin/{branch}", branch):
        if commit:
            break
        commit = _git(root, "merge-base", "HEAD", ref) or ""
    return branch, commit


def collect_environment(
    root: Path, env: Mapping[str, str] | None = None, *, base: str | None = None
) -> RunEnvironment:
    """CI variables win over git for commit and branch (CI checkouts are often detached)."""
    env = os.environ if env is None else env
    ci = ci_info(env)
    code = git_info(root)
    base_branch, base_commit = base_of(root, env, base)
    return RunEnvironment(
        commit=ci.commit or code.commit,
        branch=ci.branch or code.branch,
        dirty=code.dirty,
        ci_provider=ci.provider,
        ci_url=ci.url,
        python_version=platform.python_version(),
        python_implementation=platform.python_implementation(),
        # platform.platform() reads the interpreter's binary to find the libc (~20 ms).
        platform=f"{platform.system()}-{platform.release()}-{platform.machine()}",
        hostname=socket.gethostname(),
        base_branch=base_branch,
        base_commit=base_commit,
    )


def _pyproject_name(root: Path) -> str:
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return ""
    for table in (data.get("project"), data.get("tool", {}).get("poetry")):
        if isinstance(table, dict) and isinstance(table.get("name"), str):
            name: str = table["name"].strip()
            if name:
                return name
    return ""


def _setup_cfg_name(root: Path) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(root / "setup.cfg", encoding="utf-8")
        return parser.get("metadata", "name", fallback="").strip()
    except (configparser.Error, UnicodeDecodeError):
        return ""


def _remote_name(root: Path) -> str:
    """The repository's name in ``origin``'s URL: ``git@host:org/shop.git`` is ``shop``."""
    url = _git(root, "remote", "get-url", "origin") or ""
    last = re.split(r"[/:\\]", url.rstrip("/"))[-1]
    return last.removesuffix(".git")


def default_project(root: Path) -> str:
    """The project a run belongs to when none is given: the name in ``pyproject.toml``
    (``[project]``, else ``[tool.poetry]``), else in ``setup.cfg`` (``[metadata]``),
    else the name of the git remote ``origin``'s repository, else ``root``'s name.

    A directory's name is the last resort: an unpacked ``attrs-26.1.0`` or a checkout
    in ``build-1234`` would make a new project of every version or job."""
    return _pyproject_name(root) or _setup_cfg_name(root) or _remote_name(root) or root.name
