"""Building wire records in tests."""

from __future__ import annotations

import time
import uuid
from typing import Any

from datacat_client import wire


class RecordMaker:
    """Numbers records of one session the way a client does."""

    def __init__(self, session_id: str | None = None, start: int = 0) -> None:
        self.session_id = session_id or str(uuid.uuid4())
        self.seq = start

    def make(self, cls: type[Any], **fields: Any) -> Any:
        fields.setdefault("timestamp", time.time())
        record = cls(session_id=self.session_id, seq=self.seq, **fields)
        self.seq += 1
        return record

    def start(self, **fields: Any) -> wire.SessionStart:
        record: wire.SessionStart = self.make(wire.SessionStart, **fields)
        return record

    def event(self, name: str, data: Any = None, **fields: Any) -> wire.Event:
        record: wire.Event = self.make(wire.Event, name=name, data=data, **fields)
        return record

    def result(self, nodeid: str, outcome: str = "passed", **fields: Any) -> wire.TestResult:
        record: wire.TestResult = self.make(
            wire.TestResult, nodeid=nodeid, outcome=outcome, **fields
        )
        return record


def batch(*records: Any) -> bytes:
    return wire.encode(wire.Batch(list(records)))
