"""The public API is exactly what ``__all__`` lists (the httpx habit)."""

from __future__ import annotations

import types

import datacat_client


def test_all_lists_exactly_the_public_names() -> None:
    public = sorted(name for name in vars(datacat_client) if not name.startswith("_"))
    assert sorted(datacat_client.__all__) == public


def test_every_exported_name_resolves_and_says_where_it_lives() -> None:
    for name in datacat_client.__all__:
        member = getattr(datacat_client, name)
        if isinstance(member, types.ModuleType):
            assert member.__name__ == f"datacat_client.{name}"
        else:
            assert member.__module__ == "datacat_client", name


def test_seed_api_names_are_there() -> None:
    for name in ("DatacatClient", "Session", "HeartbeatMonitor", "create_session"):
        assert name in datacat_client.__all__
    for method in (
        "register_session",
        "get_session",
        "update_state",
        "log_event",
        "log_metric",
        "log_exception",
        "end_session",
        "get_all_sessions",
    ):
        assert callable(getattr(datacat_client.DatacatClient, method))
    for method in (
        "update_state",
        "log_event",
        "log_metric",
        "log_exception",
        "heartbeat",
        "start_heartbeat_monitor",
        "stop_heartbeat_monitor",
        "get_details",
        "end",
    ):
        assert callable(getattr(datacat_client.Session, method))
