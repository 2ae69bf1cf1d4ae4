"""The lake suite: DuckLake on a real PostgreSQL catalog and S3 (moto), and a real
HAProxy in front of real ``datacat serve`` processes.

Tests marked ``lake`` need DuckDB's ducklake, postgres and httpfs extensions, which
exist offline only for ``duckdb==1.5.5``: they run in the lake environment
(``pip install -e '.[dev,lake]'``; ``.ci/run`` makes ``.venv-lake`` and runs
``pytest -m lake`` there with ``DATACAT_REQUIRE_LAKE=1``). Elsewhere they skip, saying
so. Unmarked tests here run in both environments.
"""

from __future__ import annotations

import pytest

from tests.support.lake import require_lake_extensions


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A ``lake`` test runs only where this DuckDB has the extension wheels (checked
    before its fixtures start PostgreSQL and S3)."""
    if item.get_closest_marker("lake") is not None:
        require_lake_extensions()
