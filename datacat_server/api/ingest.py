"""Batched ingest: what the DataCat client and the pytest plugin send.

Two formats of one batch, both kept: format 1 (``POST /api/ingest``) lists records one
by one, as clients released before format 2 send them; format 2
(``POST /api/ingest/v2``) carries test results as columns, which the server stores
without a Python step per result. Both are stored the same way and answer the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from datacat_client import wire
from datacat_server.api.requests import BatchRequest, ColumnarBatchRequest
from datacat_server.api.validation import normalize_session_ids
from datacat_server.errors import InvalidInputError
from datacat_server.limits import check_records, check_result_columns
from datacat_server.settings import Settings
from datacat_server.store import StoreBase

__all__ = ["IngestController"]

_SEMANTICS = (
    "Each (session, seq) is stored once: a retried batch reports its records as"
    " duplicates. The answer comes after the batch is committed; `notes` says why a"
    " record was ignored (e.g. a run that had finished already)."
)


async def _store(
    store: StoreBase, settings: Settings, records: list[wire.Record], blocks: Sequence[Any] = ()
) -> wire.BatchAck:
    size = len(records) + sum(len(block.seq) for block in blocks)
    if size > settings.max_batch_records:
        raise InvalidInputError(
            f"a batch may hold at most {settings.max_batch_records} records,"
            f" this one has {size}; send smaller batches"
        )
    normalize_session_ids(records, blocks)
    check_records(records, settings.limits)
    check_result_columns(blocks, settings.limits)
    result = await store.write(records, result_columns=blocks)
    return wire.BatchAck(
        accepted=result.accepted, duplicates=result.duplicates, notes=list(result.notes)
    )


class IngestController(Controller):
    path = "/api/ingest"
    tags = ("ingest",)

    @post(
        "/",
        status_code=200,
        request_class=BatchRequest,
        summary="StoreBase a batch of records (format 1: one record at a time)",
        description="Records of one or more sessions, each with the session id and a"
        f" per-session sequence number. {_SEMANTICS}",
    )
    async def ingest(
        self,
        store: NamedDependency[StoreBase],
        settings: NamedDependency[Settings],
        data: JSONBody[wire.Batch],
    ) -> wire.BatchAck:
        return await _store(store, settings, data.records)

    @post(
        "/v2",
        status_code=200,
        request_class=ColumnarBatchRequest,
        summary="StoreBase a batch of records (format 2: test results as columns)",
        description="`results`: blocks of one session's test results, one list per field"
        " of a test result (all of one length; a field left out holds its default);"
        f" `records`: any other record, as in format 1, applied first. {_SEMANTICS}",
    )
    async def ingest_columns(
        self,
        store: NamedDependency[StoreBase],
        settings: NamedDependency[Settings],
        data: JSONBody[wire.ColumnarBatch],  # type: ignore[valid-type]
    ) -> wire.BatchAck:
        return await _store(store, settings, data.records, data.results)  # type: ignore[attr-defined]
