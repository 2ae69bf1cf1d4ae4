"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path for a fresh DuckDB file."""
    return tmp_path / "datacat.duckdb"


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real ``datacat serve`` subprocess on a free port of 127.0.0.1."""
    server = ServerProcess(tmp_path / "live.duckdb")
    server.start()
    try:
        yield server
    finally:
        server.stop()
