"""Dependencies the handlers ask for by name."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import Provide

from datacat_server.settings import Settings
from datacat_server.store import StoreBase

__all__ = ["DEPENDENCIES"]


def _store(state: State) -> StoreBase:
    store: StoreBase = state.store
    return store


def _settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


DEPENDENCIES = {
    "store": Provide(_store, sync_to_thread=False),
    "settings": Provide(_settings, sync_to_thread=False),
}
