"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from datacat_server.store import Store, StoreBase
from tests.support.lake import lake_spec, postgres, require_lake_extensions, s3
from tests.support.server import ServerProcess

# The lake's fixtures (PostgreSQL, moto S3), for the lake suite and the suites that run
# on both stores (`any_store`).
__all__ = ["lake_spec", "postgres", "s3"]


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


@pytest.fixture(params=["file", pytest.param("lake", marks=[pytest.mark.lake, pytest.mark.slow])])
def any_store(request: pytest.FixtureRequest, db_path: Path) -> Iterator[StoreBase]:
    """The embedded file store, then the lake store (PostgreSQL 15 catalog, moto S3):
    a suite that takes this runs on both. The lake variant runs in the lake
    environment and skips elsewhere, saying so (`tests/support/lake.py`)."""
    opened: StoreBase
    if request.param == "file":
        opened = Store(db_path, soft_flush_interval=0.05)
    else:
        require_lake_extensions()
        from datacat_server.store.lake import LakeSettings
        from datacat_server.store.lake.store import LakeStore

        spec = request.getfixturevalue("lake_spec")
        opened = LakeStore(LakeSettings.from_env(spec.env()), soft_flush_interval=0.05)
    try:
        yield opened
    finally:
        opened.close()
