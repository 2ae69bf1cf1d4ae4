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


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the tests of a module that do not interfere: each reads only
    the sessions it wrote (starting a server costs a second or more here)."""
    server = ServerProcess(tmp_path_factory.mktemp("module-server") / "live.duckdb")
    server.start()
    try:
        yield server
    finally:
        server.stop()
