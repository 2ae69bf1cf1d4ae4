"""Configuration from arguments and the environment; the exception tree."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from datacat_client import APIError, DatacatError, NotFound, RateLimited, TransportError
from datacat_client._config import default_spool_dir, resolve_base_url, resolve_token


def test_base_url_argument_then_env_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_base_url() == "http://127.0.0.1:8080"
    monkeypatch.setenv("DATACAT_URL", "http://env.example:9000/")
    assert resolve_base_url() == "http://env.example:9000"
    assert resolve_base_url("http://arg.example/") == "http://arg.example"


def test_token_argument_then_env_then_none(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_token() is None
    monkeypatch.setenv("DATACAT_TOKEN", "from-env")
    assert resolve_token() == "from-env"
    assert resolve_token("from-arg") == "from-arg"


def test_spool_dir_env_then_xdg_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATACAT_SPOOL_DIR", str(tmp_path / "explicit"))
    assert default_spool_dir() == tmp_path / "explicit"
    monkeypatch.delenv("DATACAT_SPOOL_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_spool_dir() == tmp_path / "xdg" / "datacat" / "spool"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_spool_dir() == tmp_path / "home" / ".cache" / "datacat" / "spool"


def test_environment_is_read_at_call_time_not_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATACAT_URL", "http://first")
    assert resolve_base_url() == "http://first"
    monkeypatch.setenv("DATACAT_URL", "http://second")
    assert resolve_base_url() == "http://second"


def test_exception_tree() -> None:
    assert issubclass(TransportError, DatacatError)
    assert issubclass(APIError, DatacatError)
    assert issubclass(RateLimited, APIError)
    assert issubclass(NotFound, APIError)
    assert not issubclass(TransportError, APIError)


@pytest.mark.parametrize(
    ("error", "status", "detail"),
    [
        (APIError(503, "busy"), 503, "busy"),
        (RateLimited(2.5, "slow down"), 429, "slow down"),
        (NotFound("no session x"), 404, "no session x"),
    ],
)
def test_api_errors_carry_status_and_detail_and_pickle(
    error: APIError, status: int, detail: str
) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.status_code, copy.detail) == (status, detail)
    assert type(copy) is type(error)
    assert str(status) in str(error)
    assert detail in str(error)


def test_rate_limited_retry_after() -> None:
    assert RateLimited(3.0).retry_after == 3.0
    assert RateLimited().retry_after is None
    assert pickle.loads(pickle.dumps(RateLimited(1.5))).retry_after == 1.5


def test_transport_error_says_whether_the_server_was_unreachable_and_pickles() -> None:
    refused = pickle.loads(pickle.dumps(TransportError("refused", unreachable=True)))
    assert (str(refused), refused.unreachable) == ("refused", True)
    assert TransportError("timed out").unreachable is False


def test_api_error_carries_a_retry_after() -> None:
    busy = pickle.loads(pickle.dumps(APIError(503, "busy", retry_after=2.0)))
    assert (busy.status_code, busy.retry_after) == (503, 2.0)
    assert APIError(500).retry_after is None
