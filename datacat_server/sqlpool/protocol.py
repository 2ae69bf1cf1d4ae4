"""What the server and a SQL worker say to each other over the worker's pipes.

Each message is a 4-byte big-endian length, then that many bytes of msgpack: one of
the tagged Structs below. The server writes `Request`s to the worker's stdin and
reads `Reply`s from its stdout, one reply per request.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "Answer",
    "Failed",
    "Open",
    "Opened",
    "Query",
    "Ready",
    "Reply",
    "Request",
    "decode_reply",
    "decode_request",
    "frame",
    "parse_header",
]

HEADER = 4


class Open(msgspec.Struct, tag="open", frozen=True):
    """Open this view of the data (and close the one open before)."""

    #: What to open: for ``kind == "duckdb"``, a DuckDB file opened read-only.
    target: str
    kind: str = "duckdb"


class Query(msgspec.Struct, tag="query", frozen=True):
    sql: str
    fmt: str
    max_rows: int
    max_bytes: int
    #: The worker interrupts the query after this many seconds (the server kills the
    #: worker a little later if that did not stop it).
    timeout: float
    #: CPU seconds the query may use before the kernel stops the worker (SIGXCPU).
    cpu_seconds: float


Request = Open | Query


class Ready(msgspec.Struct, tag="ready", frozen=True):
    """Sent once, after the worker set its limits."""

    pid: int


class Opened(msgspec.Struct, tag="opened", frozen=True):
    pass


class Answer(msgspec.Struct, tag="answer", frozen=True):
    columns: list[str]
    types: list[str]
    body: bytes
    row_count: int
    truncated_by: str | None
    seconds: float
    #: The worker grew past half its memory and should be replaced after this answer.
    retire: bool = False


class Failed(msgspec.Struct, tag="failed", frozen=True):
    message: str
    #: ``refused`` (the statement or its run broke a rule) or ``error`` (the worker
    #: could not do what was asked, e.g. open the view).
    kind: str = "refused"
    #: The worker leaves after this answer and should be replaced.
    retire: bool = False


Reply = Ready | Opened | Answer | Failed

_encoder = msgspec.msgpack.Encoder()
_requests = msgspec.msgpack.Decoder(Request)
_replies = msgspec.msgpack.Decoder(Reply)


def frame(message: Request | Reply) -> bytes:
    """The message with its length in front."""
    payload = _encoder.encode(message)
    return len(payload).to_bytes(HEADER, "big") + payload


def parse_header(header: bytes) -> int:
    return int.from_bytes(header, "big")


def decode_request(payload: bytes) -> Request:
    return _requests.decode(payload)


def decode_reply(payload: bytes) -> Reply:
    return _replies.decode(payload)
