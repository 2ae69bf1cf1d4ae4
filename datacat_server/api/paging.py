"""The paging parameter every list endpoint shares."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

__all__ = ["MAX_OFFSET", "Offset"]

#: Past any real table, and inside DuckDB's BIGINT (an OFFSET of 2**63 fails mid-stream).
MAX_OFFSET = 2**53

Offset = Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET, description="Rows to skip.")]
