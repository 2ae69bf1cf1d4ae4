"""How request bodies are read: refuse what no handler should see, before decoding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

from datacat_client import wire
from datacat_server.limits import check_json_body

__all__ = ["BatchRequest", "ColumnarBatchRequest", "SafeJsonRequest"]


def _decode_error(exc: Exception, path: str) -> ValidationException:
    if isinstance(exc, RecursionError):
        return ValidationException("the JSON is nested too deeply")
    if isinstance(exc, UnicodeDecodeError):
        return ValidationException(f"the body is not valid UTF-8 (byte {exc.start})")
    if isinstance(exc, msgspec.ValidationError):
        return ValidationException(f"Validation failed for POST {path}: {exc}")
    return ValidationException(f"JSON is malformed: {exc}")


#: Bodies from this size on are checked and decoded on a worker thread, so that the
#: event loop goes on answering other requests meanwhile (a 50 MB body takes seconds).
#: A usual batch (~0.5 MB) stays on the loop: a thread hop costs more than it saves.
OFF_LOOP_BYTES = 4_000_000


async def _parse(body: bytes, parse: Callable[[bytes], Any], path: str) -> Any:
    try:
        if len(body) < OFF_LOOP_BYTES:
            return parse(body)
        return await anyio.to_thread.run_sync(parse, body)
    except (RecursionError, UnicodeDecodeError, msgspec.DecodeError) as exc:
        raise _decode_error(exc, path) from None


def _parse_json(body: bytes) -> Any:
    check_json_body(body)
    return msgspec.json.decode(body)


def _parse_batch(body: bytes) -> wire.Batch:
    check_json_body(body)
    return wire.batch_decoder.decode(body)


def _parse_columnar(body: bytes) -> Any:
    check_json_body(body)
    return wire.columnar_decoder.decode(body)


class SafeJsonRequest(Request[Any, Any, Any]):
    """Every endpoint's request: UTF-8, no duplicate keys, bounded nesting (400 else)."""

    async def json(self) -> Any:
        body = await self.body()
        if not body:
            return await super().json()
        return await _parse(body, _parse_json, self.url.path)


class BatchRequest(Request[Any, Any, Any]):
    """Decodes the body straight into `wire.Batch` (once `check_json_body` passed it).

    Litestar would decode JSON into dicts and lists, then convert those into the Struct;
    decoding typed is about twice as fast on this hot path, and msgspec's errors then
    name the exact field (``$.records[3].value``). The handler still declares
    ``data: JSONBody[wire.Batch]``, so the OpenAPI schema documents the body, and
    converting an already-typed Batch is free.
    """

    async def json(self) -> Any:
        return await _parse(await self.body(), _parse_batch, self.url.path)


class ColumnarBatchRequest(Request[Any, Any, Any]):
    """Decodes the body straight into `wire.ColumnarBatch` (see `BatchRequest`)."""

    async def json(self) -> Any:
        return await _parse(await self.body(), _parse_columnar, self.url.path)
