"""Prometheus scrapes a real ``datacat serve`` as its scrape config says: a bearer token
on ``/api/prometheus``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from datacat_client import wire
from datacat_server.api.prometheus import PATH
from tests.server.records import RecordMaker, batch
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

INGEST = "ingest-token-0123456789abcdef"
READ = "read-token-0123456789abcdef00"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_real_server_is_scraped_with_a_read_token(tmp_path: Path) -> None:
    env = {"DATACAT_TOKENS": f"ingest:{INGEST},read:{READ}"}
    with ServerProcess(tmp_path / "scraped.duckdb", env=env) as server:
        url = server.url + PATH
        assert httpx.get(url, timeout=10).status_code == 401

        maker = RecordMaker()
        records: list[Any] = [
            maker.start(product="shop", name="pytest"),
            maker.make(wire.RunStart, project="shop", branch="main", commit="c1"),
            *(maker.result(f"t.py::test_{i}", "failed" if i < 3 else "passed") for i in range(40)),
            maker.make(
                wire.RunFinish,
                exit_status=1,
                status="failed",
                counts={"passed": 37, "failed": 3},
                duration=4.5,
            ),
        ]
        answer = httpx.post(
            f"{server.url}/api/ingest",
            content=batch(*records),
            headers={"Authorization": f"Bearer {INGEST}", "content-type": "application/json"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text

        scraped = httpx.get(url, headers={"Authorization": f"Bearer {READ}"}, timeout=10)
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
        samples = _samples(scraped.text)

    shop = (("branch", "main"), ("project", "shop"))
    assert samples[("datacat_results_ingested_total", ())] == 40
    assert samples[("datacat_project_failures", shop)] == 3
    assert samples[("datacat_project_pass_ratio", shop)] == pytest.approx(37 / 40)
    assert samples[("datacat_project_duration_seconds", shop)] == 4.5
    assert samples[("datacat_project_flaky_tests", (("project", "shop"),))] == 0
    ingested = (("method", "POST"), ("route", "/api/ingest"), ("status", "200"))
    assert samples[("datacat_http_requests_total", ingested)] == 1
    assert samples[("datacat_http_rejected_total", (("reason", "unauthorized"),))] == 1
    assert samples[("datacat_writer_commit_seconds_count", ())] >= 1
    assert samples[("datacat_database_bytes", (("file", "database"),))] > 0
