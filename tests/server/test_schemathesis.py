"""Hostile input from the OpenAPI schema itself: no 5xx, answers conform to the schema."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS

from datacat_server.app import create_app
from datacat_server.settings import Settings

_DB = Path(tempfile.mkdtemp(prefix="datacat-schemathesis-")) / "fuzz.duckdb"
# Generous limits off: the fuzzer would otherwise spend its examples on 429s.
app = create_app(Settings(db_path=_DB, rate_limit=0, sql_timeout=2.0))
schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
_CHECKS = CHECKS.get_by_names(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_never_fails_and_answers_as_documented(case: Any) -> None:
    case.call_and_validate(checks=_CHECKS)
