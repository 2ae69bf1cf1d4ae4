"""Batched ingest: what the DataCat client and the pytest plugin send."""

from __future__ import annotations

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from datacat_client import wire
from datacat_server.api.requests import BatchRequest
from datacat_server.api.validation import normalize_session_ids
from datacat_server.errors import InvalidInputError
from datacat_server.limits import check_records
from datacat_server.settings import Settings
from datacat_server.store import Store

__all__ = ["IngestController"]


class IngestController(Controller):
    path = "/api/ingest"
    tags = ("ingest",)

    @post(
        "/",
        status_code=200,
        request_class=BatchRequest,
        summary="Store a batch of records",
        description=(
            "Records of one or more sessions, each with the session id and a per-session "
            "sequence number. Each (session, seq) is stored once: a retried batch reports "
            "its records as duplicates. The answer comes after the batch is committed."
        ),
    )
    async def ingest(
        self,
        store: NamedDependency[Store],
        settings: NamedDependency[Settings],
        data: JSONBody[wire.Batch],
    ) -> wire.BatchAck:
        if len(data.records) > settings.max_batch_records:
            raise InvalidInputError(
                f"a batch may hold at most {settings.max_batch_records} records,"
                f" this one has {len(data.records)}; send smaller batches"
            )
        normalize_session_ids(data.records)
        check_records(data.records, settings.limits)
        result = await store.write(data.records)
        return wire.BatchAck(accepted=result.accepted, duplicates=result.duplicates)
