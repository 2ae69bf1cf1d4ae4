"""SECURITY.md promises "never a 5xx" for bad input: every endpoint is walked with
numbers no column can hold (a 5,000-digit integer, negative and zero counts) in each
query parameter and in each field of its body, as the OpenAPI schema lists them."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from datacat_client import wire
from tests.server.records import RecordMaker, batch

Client = TestClient  # type: ignore[type-arg]

HUGE = "1" * 5000
VALUES = (HUGE, "-" + HUGE, "-2", "0", "1e999")


def _operations(client: Client) -> list[tuple[str, str, dict[str, Any]]]:
    schema = client.get("/schema/openapi.json").json()
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "delete", "patch")
    ]


#: A harmless value of each JSON type, for the fields not under test.
_SAMPLES = {"string": '"select 1"', "integer": "1", "number": "1.5", "boolean": "true"}


def _fields(schema: dict[str, Any], operation: dict[str, Any]) -> dict[str, str]:
    """The body's fields, each with a harmless value of its type."""
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = body.get("schema", {})
    while "$ref" in ref:
        ref = schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[-1]]
    fields = {}
    for name, spec in ref.get("properties", {}).items():
        kinds = [spec.get("type")] + [one.get("type") for one in spec.get("oneOf", [])]
        fields[name] = next((_SAMPLES[k] for k in kinds if k in _SAMPLES), "{}")
    return fields


def _body(fields: dict[str, str], name: str, value: str) -> str:
    return "{" + ", ".join(f'"{k}": {value if k == name else v}' for k, v in fields.items()) + "}"


@pytest.mark.slow
def test_no_endpoint_answers_a_huge_number_with_a_5xx(client: Client) -> None:
    maker = RecordMaker()
    started = batch(maker.start(product="p"), maker.make(wire.RunStart, project="p"))
    client.post("/api/ingest", content=started, headers={"content-type": "application/json"})
    schema = client.get("/schema/openapi.json").json()
    failures = []
    for method, template, operation in _operations(client):
        path = template.replace("{session_id}", maker.session_id).replace(
            "{run_id}", maker.session_id
        )
        path = path.replace("{", "").replace("}", "")  # any other path parameter: its name
        params = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
        fields = _fields(schema, operation)
        for value in VALUES:
            tries: list[dict[str, Any]] = [{"params": {name: value}} for name in params]
            if method != "GET":
                tries.append({"content": value})
                tries += [{"content": _body(fields, name, value)} for name in fields]
                tries.append(
                    {
                        "content": '{"records": [{"kind": "metric", "session_id": "'
                        + maker.session_id
                        + f'", "seq": 1, "timestamp": 1, "name": "m", "value": {value}}}]}}'
                    }
                )
            for kwargs in tries:
                kwargs.setdefault("headers", {"content-type": "application/json"})
                answer = client.request(method, path, **kwargs)
                if answer.status_code >= 500:
                    failures.append((method, path, str(kwargs)[:120], answer.status_code))
    assert failures == []
