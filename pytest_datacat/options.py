"""The plugin's options: command line over environment over ini file over default."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from datacat_client._config import DEFAULT_BASE_URL
from pytest_datacat.metadata import default_project

__all__ = ["CAPTURE_MODES", "Options", "add_options", "resolve_options"]

CAPTURE_MODES = ("failed", "all", "none")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}  # the error message in _enabled lists both


@dataclasses.dataclass(frozen=True)
class Options:
    """Resolved settings of one test run that DataCat records."""

    url: str
    token: str | None
    project: str
    labels: dict[str, str]
    hang_timeout: float
    flush_timeout: float
    capture: str
    spool_dir: Path | None
    #: Seconds between liveness heartbeats (env DATACAT_HEARTBEAT_INTERVAL, default 15):
    #: a run killed without a word shows as crashed after 3 of them.
    heartbeat_interval: float = 15.0
    #: The branch this run's failures are compared with (a pull request's target);
    #: None: the CI's own (GitHub, GitLab), else the previous run of this branch.
    base: str | None = None
    #: Whether failures of quarantined tests leave the exit status alone.
    quarantine: bool = False


def add_options(parser: pytest.Parser) -> None:
    """Register ``--datacat*`` options and their ini keys."""
    group = parser.getgroup("datacat", "DataCat test telemetry")
    # Every command-line default is None, so that "not given" can fall back to the
    # environment and then to the ini file.
    group.addoption(
        "--datacat",
        action="store_true",
        default=None,
        help="record this run in DataCat (env DATACAT_ENABLE=1, ini datacat = true).",
    )
    group.addoption(
        "--datacat-url",
        default=None,
        metavar="URL",
        help=f"DataCat server (env DATACAT_URL, ini datacat_url; default {DEFAULT_BASE_URL}).",
    )
    group.addoption(
        "--datacat-token",
        default=None,
        metavar="TOKEN",
        help="API token with the ingest scope (env DATACAT_TOKEN, ini datacat_token).",
    )
    group.addoption(
        "--datacat-project",
        default=None,
        metavar="NAME",
        help="project the tests belong to (env DATACAT_PROJECT, ini datacat_project;"
        " default: the name in pyproject.toml or setup.cfg, else the git remote's"
        " repository, else the rootdir's name).",
    )
    group.addoption(
        "--datacat-label",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="label for this run; repeatable (env DATACAT_LABELS=k=v,k2=v2,"
        " ini datacat_labels, one per line).",
    )
    group.addoption(
        "--datacat-hang-timeout",
        default=None,
        metavar="SECONDS",
        help="report a test running longer than this as hung; it is not killed"
        " (env DATACAT_HANG_TIMEOUT, ini datacat_hang_timeout; default 60).",
    )
    group.addoption(
        "--datacat-flush-timeout",
        default=None,
        metavar="SECONDS",
        help="longest wait at the end of the run for results to reach the server;"
        " what is left goes to the spool (env DATACAT_FLUSH_TIMEOUT,"
        " ini datacat_flush_timeout; default 10).",
    )
    group.addoption(
        "--datacat-capture",
        default=None,
        metavar="MODE",
        help="captured output to keep: failed (default, truncated), all, none"
        " (env DATACAT_CAPTURE, ini datacat_capture).",
    )
    group.addoption(
        "--datacat-base",
        default=None,
        metavar="BRANCH",
        help="compare this run's failures with this branch's runs, as for a pull"
        " request into it (env DATACAT_BASE, ini datacat_base; default: the CI's pull"
        " request target, else the previous run of this branch).",
    )
    group.addoption(
        "--datacat-quarantine",
        action="store_true",
        default=None,
        help="fetch the project's quarantined tests first: they still run and are"
        " recorded, but their failures leave the exit status alone (env"
        " DATACAT_QUARANTINE=1, ini datacat_quarantine = true). Without an answer from"
        " the server in time, nothing is quarantined.",
    )
    parser.addini("datacat", "record runs in DataCat (true/false)", type="bool", default=False)
    parser.addini("datacat_base", "DataCat: the branch failures are compared with", default="")
    parser.addini("datacat_quarantine", "DataCat: apply quarantine (true/false)", default="")
    parser.addini("datacat_url", "DataCat server URL", default="")
    parser.addini("datacat_token", "DataCat API token", default="")
    parser.addini("datacat_project", "DataCat project name", default="")
    parser.addini("datacat_labels", "DataCat labels, key=value, one per line", type="linelist")
    parser.addini("datacat_hang_timeout", "seconds before a test is reported hung", default="")
    parser.addini("datacat_flush_timeout", "seconds to wait for results at exit", default="")
    parser.addini("datacat_capture", "captured output to keep: failed, all, none", default="")


@dataclasses.dataclass(frozen=True)
class _Setting:
    """A value as given, and where it came from, as a user would write it there."""

    value: str
    source: str

    def error(self, expected: str) -> pytest.UsageError:
        return pytest.UsageError(f"{self.source} must be {expected}; got {self.value!r}")


class _Sources:
    """One run's settings: command line over environment over ini file."""

    def __init__(self, config: pytest.Config, env: Mapping[str, str]) -> None:
        self._config = config
        self._env = env

    def get(self, name: str) -> _Setting | None:
        """Setting ``name`` (``hang_timeout``): from ``--datacat-hang-timeout``, else
        ``DATACAT_HANG_TIMEOUT``, else the ini key ``datacat_hang_timeout``."""
        cli = getattr(self._config.option, f"datacat_{name}")
        if cli is not None:
            return _Setting(str(cli), f"--datacat-{name.replace('_', '-')}")
        env = self.env(f"DATACAT_{name.upper()}")
        if env is not None:
            return env
        ini = self._config.getini(f"datacat_{name}")
        if ini not in (None, "", []):
            return _Setting(str(ini), self.ini_source(f"datacat_{name}"))
        return None

    def env(self, key: str) -> _Setting | None:
        value = self._env.get(key)
        return _Setting(value, key) if value else None

    def ini_lines(self, key: str) -> list[str]:
        lines: list[str] = self._config.getini(key)
        return lines

    def ini_source(self, key: str) -> str:
        inipath = self._config.inipath
        return f"{key} in {inipath.name if inipath is not None else 'the ini file'}"


def _seconds(setting: _Setting | None, default: float) -> float:
    if setting is None:
        return default
    try:
        value = float(setting.value)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise setting.error("a positive number of seconds, such as 60 or 2.5")
    return value


def _url(setting: _Setting | None) -> str:
    if setting is None:
        return DEFAULT_BASE_URL
    url = setting.value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise setting.error(f"an http:// or https:// URL with a host, such as {DEFAULT_BASE_URL}")
    return url


def _capture(setting: _Setting | None) -> str:
    if setting is None:
        return "failed"
    capture = setting.value.lower()
    if capture not in CAPTURE_MODES:
        raise setting.error(f"one of {', '.join(CAPTURE_MODES)}")
    return capture


def _labels(cli: list[str] | None, sources: _Sources) -> dict[str, str]:
    if cli:
        items = [_Setting(item, "--datacat-label") for item in cli]
    elif (env := sources.env("DATACAT_LABELS")) is not None:
        items = [_Setting(part, env.source) for part in env.value.split(",") if part.strip()]
    else:
        lines = sources.ini_lines("datacat_labels")
        source = sources.ini_source("datacat_labels")
        items = [_Setting(line, source) for line in lines if line.strip()]
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.value.partition("=")
        if not sep or not key.strip():
            raise item.error("KEY=VALUE labels, such as team=payments")
        labels[key.strip()] = value.strip()
    return labels


def _enabled(config: pytest.Config, sources: _Sources, env: Mapping[str, str]) -> bool:
    if config.option.datacat:
        return True
    raw = env.get("DATACAT_ENABLE")
    if raw is not None:
        lowered = raw.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise _Setting(raw, "DATACAT_ENABLE").error(
            "1, true, yes or on (record the run), or 0, false, no, off or empty (do not)"
        )
    try:
        return bool(config.getini("datacat"))
    except (ValueError, pytest.UsageError):  # pytest's message names neither key nor values
        raise pytest.UsageError(
            f"{sources.ini_source('datacat')} must be true or false (or yes/no, on/off, 1/0)"
        ) from None


def resolve_options(config: pytest.Config, env: Mapping[str, str] | None = None) -> Options | None:
    """The run's options, or None when DataCat is off.

    A bad value is a `pytest.UsageError` naming where it came from (the option, the
    environment variable or the ini key) and what is accepted; pytest reports it before
    any test runs. Values are only checked when DataCat is on.
    """
    env = os.environ if env is None else env
    sources = _Sources(config, env)
    if not _enabled(config, sources, env):
        return None
    project = sources.get("project")
    token = sources.get("token")
    spool = env.get("DATACAT_SPOOL_DIR")
    return Options(
        url=_url(sources.get("url")),
        token=token.value if token is not None else None,
        project=project.value
        if project is not None
        else default_project(Path(str(config.rootpath))),
        labels=_labels(config.option.datacat_label, sources),
        hang_timeout=_seconds(sources.get("hang_timeout"), 60.0),
        flush_timeout=_seconds(sources.get("flush_timeout"), 10.0),
        capture=_capture(sources.get("capture")),
        spool_dir=Path(spool) if spool else None,
        heartbeat_interval=_seconds(sources.env("DATACAT_HEARTBEAT_INTERVAL"), 15.0),
        base=base.value.strip() if (base := sources.get("base")) is not None else None,
        quarantine=_flag(sources.get("quarantine")),
    )


def _flag(setting: _Setting | None) -> bool:
    if setting is None:
        return False
    lowered = setting.value.strip().lower()
    if lowered in _TRUE or lowered == "true":
        return True
    if lowered in _FALSE:
        return False
    raise setting.error("1, true, yes or on, or 0, false, no or off")
