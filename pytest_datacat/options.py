"""The plugin's options: command line over environment over ini file over default."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pytest_datacat.metadata import default_project

__all__ = ["CAPTURE_MODES", "Options", "add_options", "resolve_options"]

CAPTURE_MODES = ("failed", "all", "none")
_DEFAULT_URL = "http://127.0.0.1:8080"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


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
        help=f"DataCat server (env DATACAT_URL, ini datacat_url; default {_DEFAULT_URL}).",
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
    parser.addini("datacat", "record runs in DataCat (true/false)", type="bool", default=False)
    parser.addini("datacat_url", "DataCat server URL", default="")
    parser.addini("datacat_token", "DataCat API token", default="")
    parser.addini("datacat_project", "DataCat project name", default="")
    parser.addini("datacat_labels", "DataCat labels, key=value, one per line", type="linelist")
    parser.addini("datacat_hang_timeout", "seconds before a test is reported hung", default="")
    parser.addini("datacat_flush_timeout", "seconds to wait for results at exit", default="")
    parser.addini("datacat_capture", "captured output to keep: failed, all, none", default="")


def _pick(cli: object, env: Mapping[str, str], env_key: str, ini: object) -> str | None:
    if cli is not None:
        return str(cli)
    if env.get(env_key):
        return env[env_key]
    if ini not in (None, "", []):
        return str(ini)
    return None


def _seconds(name: str, raw: str | None, default: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(f"--{name} must be a number of seconds, got {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise pytest.UsageError(f"--{name} must be a positive number of seconds, got {raw!r}")
    return value


def _url(raw: str | None) -> str:
    url = (raw or _DEFAULT_URL).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise pytest.UsageError(
            f"--datacat-url must be an http:// or https:// URL with a host, got {raw!r}"
            " (for example http://127.0.0.1:8080)"
        )
    return url


def _labels(cli: list[str] | None, env: Mapping[str, str], ini: list[str]) -> dict[str, str]:
    if cli:
        items = cli
    elif env.get("DATACAT_LABELS"):
        items = [part for part in env["DATACAT_LABELS"].split(",") if part.strip()]
    else:
        items = [line for line in ini if line.strip()]
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise pytest.UsageError(f"--datacat-label must be KEY=VALUE, got {item!r}")
        labels[key.strip()] = value.strip()
    return labels


def _enabled(cli: object, env: Mapping[str, str], ini: object) -> bool:
    if cli:
        return True
    raw = env.get("DATACAT_ENABLE")
    if raw is not None:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise pytest.UsageError(f"DATACAT_ENABLE must be 1 or 0, got {raw!r}")
    return bool(ini)


def resolve_options(config: pytest.Config, env: Mapping[str, str] | None = None) -> Options | None:
    """The run's options, or None when DataCat is off.

    A bad value is a `pytest.UsageError`, which pytest reports before any test runs.
    Values are only checked when DataCat is on.
    """
    env = os.environ if env is None else env
    opt = config.option
    if not _enabled(opt.datacat, env, config.getini("datacat")):
        return None
    capture = _pick(opt.datacat_capture, env, "DATACAT_CAPTURE", config.getini("datacat_capture"))
    capture = (capture or "failed").lower()
    if capture not in CAPTURE_MODES:
        raise pytest.UsageError(
            f"--datacat-capture must be one of {', '.join(CAPTURE_MODES)}, got {capture!r}"
        )
    project = _pick(opt.datacat_project, env, "DATACAT_PROJECT", config.getini("datacat_project"))
    spool = env.get("DATACAT_SPOOL_DIR")
    return Options(
        url=_url(_pick(opt.datacat_url, env, "DATACAT_URL", config.getini("datacat_url"))),
        token=_pick(opt.datacat_token, env, "DATACAT_TOKEN", config.getini("datacat_token")),
        project=project or default_project(Path(str(config.rootpath))),
        labels=_labels(opt.datacat_label, env, config.getini("datacat_labels")),
        hang_timeout=_seconds(
            "datacat-hang-timeout",
            _pick(
                opt.datacat_hang_timeout,
                env,
                "DATACAT_HANG_TIMEOUT",
                config.getini("datacat_hang_timeout"),
            ),
            60.0,
        ),
        flush_timeout=_seconds(
            "datacat-flush-timeout",
            _pick(
                opt.datacat_flush_timeout,
                env,
                "DATACAT_FLUSH_TIMEOUT",
                config.getini("datacat_flush_timeout"),
            ),
            10.0,
        ),
        capture=capture,
        spool_dir=Path(spool) if spool else None,
        heartbeat_interval=_seconds(
            "DATACAT_HEARTBEAT_INTERVAL", env.get("DATACAT_HEARTBEAT_INTERVAL") or None, 15.0
        ),
    )
