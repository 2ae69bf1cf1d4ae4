"""Fixtures for the server's in-process tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from datacat_server.app import create_app
from datacat_server.settings import Settings
from datacat_server.store import Store


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return Settings(db_path=db_path, soft_flush_interval=0.05)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:  # type: ignore[type-arg]
    """The app through Litestar's test client, with its own store on a temp file."""
    with TestClient(app=create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    opened = Store(db_path, soft_flush_interval=0.05)
    try:
        yield opened
    finally:
        opened.close()
