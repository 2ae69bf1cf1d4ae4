"""An app over a store filled once per module (the pages only read)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from datacat_server.app import create_app
from datacat_server.settings import Settings
from datacat_server.store import Store
from tests.dashboard.data import Filled, fill


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Filled]]:
    path = tmp_path_factory.mktemp("dashboard") / "pages.duckdb"
    store = Store(path, soft_flush_interval=0.05)
    try:
        yield store, fill(store)
    finally:
        store.close()


@pytest.fixture(scope="module")
def filled(filled_store: tuple[Store, Filled]) -> Filled:
    return filled_store[1]


@pytest.fixture(scope="module")
def client(filled_store: tuple[Store, Filled]) -> Iterator[TestClient]:  # type: ignore[type-arg]
    store, _ = filled_store
    settings = Settings(db_path=store.db.path)
    with TestClient(app=create_app(settings, store=store)) as test_client:
        yield test_client
