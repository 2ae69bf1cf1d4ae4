"""The public API is exactly what ``__all__`` lists (the httpx habit)."""

from __future__ import annotations

import inspect
import subprocess
import sys
import types

import pytest

import datacat_client


def test_all_lists_exactly_the_public_names() -> None:
    for name in datacat_client.__all__:
        getattr(datacat_client, name)  # loaded on first use
    public = sorted(name for name in vars(datacat_client) if not name.startswith("_"))
    assert sorted(datacat_client.__all__) == public
    assert sorted(dir(datacat_client)) == sorted(datacat_client.__all__)
    with pytest.raises(AttributeError):
        datacat_client.nothing_here  # noqa: B018


def test_importing_one_module_loads_no_sender() -> None:
    """The pytest plugin imports `_config` in every run; it must not load the rest."""
    code = (
        "import sys, datacat_client._config;"
        " print(sorted(m for m in sys.modules if m.startswith('datacat_client')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['datacat_client', 'datacat_client._config']"


def test_every_exported_name_resolves_and_says_where_it_lives() -> None:
    for name in datacat_client.__all__:
        member = getattr(datacat_client, name)
        if isinstance(member, types.ModuleType):
            assert member.__name__ == f"datacat_client.{name}"
        else:
            assert member.__module__ == "datacat_client", name


#: The seed's calls and their parameters (after ``self``), as its programs call them.
SEED_CALLS = {
    "DatacatClient.register_session": ["name", "product", "version", "labels", "state"],
    "DatacatClient.get_session": ["session_id"],
    "DatacatClient.update_state": ["session_id", "state"],
    "DatacatClient.log_event": ["session_id", "name", "data"],
    "DatacatClient.log_metric": ["session_id", "name", "value", "tags"],
    "DatacatClient.log_exception": ["session_id", "exc_info", "extra_data"],
    "DatacatClient.end_session": ["session_id"],
    "DatacatClient.get_all_sessions": ["limit", "offset"],
    "Session.update_state": ["state"],
    "Session.log_event": ["name", "data"],
    "Session.log_metric": ["name", "value", "tags"],
    "Session.log_exception": ["exc_info", "extra_data"],
    "Session.heartbeat": [],
    "Session.start_heartbeat_monitor": ["timeout", "check_interval"],
    "Session.stop_heartbeat_monitor": [],
    "Session.get_details": [],
    "Session.end": [],
}


@pytest.mark.parametrize(("call", "parameters"), SEED_CALLS.items())
def test_the_seed_calls_keep_their_parameters(call: str, parameters: list[str]) -> None:
    owner, method = call.split(".")
    signature = inspect.signature(getattr(getattr(datacat_client, owner), method))
    given = list(signature.parameters.values())[1:]
    assert [p.name for p in given if p.kind is not p.KEYWORD_ONLY] == parameters
    # DataCat's additions (``log_metric(..., unit=, kind=)``) are keyword-only and
    # optional, so every call of the seed's still means what it meant
    assert all(p.default is not p.empty for p in given if p.kind is p.KEYWORD_ONLY)


def test_the_seed_defaults_are_kept() -> None:
    assert next(iter(inspect.signature(datacat_client.create_session).parameters)) == "base_url"
    monitor = inspect.signature(datacat_client.HeartbeatMonitor).parameters
    assert (monitor["timeout"].default, monitor["check_interval"].default) == (60, 5)
    start = inspect.signature(datacat_client.Session.start_heartbeat_monitor).parameters
    assert (start["timeout"].default, start["check_interval"].default) == (60, 5)
