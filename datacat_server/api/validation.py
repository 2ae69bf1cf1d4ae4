"""Checks on decoded input that the wire types cannot express cheaply."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datacat_client import wire
from datacat_server.errors import InvalidInputError
from datacat_server.queries._common import parse_session_id

__all__ = ["normalize_session_ids"]


def normalize_session_ids(records: Sequence[wire.Record], blocks: Sequence[Any] = ()) -> None:
    """Rewrite every record's (and results block's) session id to its canonical UUID
    form, in place.

    Each distinct id is parsed once, so a batch of one session costs one parse.
    """
    canonical: dict[str, str] = {}
    for name, items in (("records", records), ("results", blocks)):
        for index, item in enumerate(items):
            raw = item.session_id
            fixed = canonical.get(raw)
            if fixed is None:
                parsed = parse_session_id(raw)
                if parsed is None:
                    raise InvalidInputError(
                        f"{name}[{index}].session_id is not a UUID: {raw[:40]!r}"
                    )
                fixed = canonical[raw] = parsed
            if fixed is not raw:
                item.session_id = fixed
