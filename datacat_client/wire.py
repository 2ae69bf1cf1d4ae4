"""The wire format: one set of msgspec Structs shared by the client and the server.

A client sends records in batches (`Batch`) to ``POST /api/ingest``. Every record names
its session and carries a sequence number; the server stores each ``(session_id, seq)``
once, so a batch may be retried (or uploaded again from a spool) without double counting.

Sequence numbers only have to be unique and increasing within one session. The client
starts each `Session` at its creation time in microseconds, so that a second writer
attached to the same session id cannot collide with the first one.

Timestamps are Unix seconds (float, UTC) taken on the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeAlias

import msgspec

__all__ = [
    "OUTCOMES",
    "VERDICTS",
    "Batch",
    "BatchAck",
    "Event",
    "FiniteFloat",
    "Heartbeat",
    "Metric",
    "Record",
    "RunFinish",
    "RunStart",
    "SessionEnd",
    "SessionStart",
    "StateUpdate",
    "TestResult",
    "TestStart",
    "batch_decoder",
    "cut_text",
    "encode",
    "record_decoder",
]

#: Any finite float. NaN fails both bounds, and so do the infinities.
FiniteFloat: TypeAlias = Annotated[
    float, msgspec.Meta(ge=-1.7976931348623157e308, le=1.7976931348623157e308)
]
NonNegativeFloat: TypeAlias = Annotated[float, msgspec.Meta(ge=0.0, le=1e12)]
# The server checks that a session id is a UUID once per distinct id in a batch; a
# pattern here would run a regular expression on every record (measured: +30 % decode).
SessionId: TypeAlias = Annotated[
    str, msgspec.Meta(min_length=32, max_length=36, description="A UUID, chosen by the client.")
]
Seq: TypeAlias = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
#: Integers as the store keeps them: past these a value could not be stored (a 400
#: now, rather than a failed commit the client would retry for ever).
Int32: TypeAlias = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
Int64: TypeAlias = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Timestamp: TypeAlias = Annotated[
    float, msgspec.Meta(ge=0.0, le=32503680000.0, description="Unix seconds, UTC.")
]
Name: TypeAlias = Annotated[str, msgspec.Meta(min_length=1)]

#: Outcomes of a test, as the pytest plugin reports them.
OUTCOMES: tuple[str, ...] = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")
Outcome: TypeAlias = Literal["passed", "failed", "skipped", "xfailed", "xpassed", "error"]
MetricKind: TypeAlias = Literal["gauge", "counter"]

#: How a run's failures are classified against its base (``GET
#: /api/runs/{id}/classification``): each category, and how people name one and many
#: of it, most actionable first. ``fixed`` counts tests that failed in the base and
#: pass now; the others are failures.
VERDICTS: tuple[tuple[str, str, str], ...] = (
    ("new", "new failure", "new failures"),
    ("new_test", "new test failing", "new tests failing"),
    ("known_flaky", "known flaky", "known flaky"),
    ("already_failing", "already failing", "already failing"),
    ("fixed", "fixed", "fixed"),
)


# gc=False: records hold no references back to themselves, so the garbage collector
# need not track them; tracking thousands of queued or decoded records made every
# collection slower (measured: about half of the extra GC time of a recorded run).
class _Record(msgspec.Struct, tag_field="kind", kw_only=True, omit_defaults=True, gc=False):
    session_id: SessionId
    seq: Seq
    timestamp: Timestamp


class SessionStart(_Record, tag="session_start"):
    """Opens a session. Repeating it for an existing session changes nothing."""

    name: str = ""
    product: str = ""
    version: str = ""
    labels: dict[str, str] = {}
    state: dict[str, Any] = {}
    #: Seconds between liveness heartbeats the client promises to send. A session
    #: silent for longer than this times the server's grace factor is ``crashed``.
    heartbeat_interval: NonNegativeFloat | None = None


class StateUpdate(_Record, tag="state"):
    """A partial state, deep-merged into the session's state."""

    state: dict[str, Any]


class Event(_Record, tag="event"):
    name: Name
    data: Any = None


class Metric(_Record, tag="metric"):
    name: Name
    value: FiniteFloat
    tags: list[str] = []
    #: What the value counts (``ms``, ``bytes``, ``requests``); empty when not said.
    unit: str = ""
    #: ``gauge``: a level at a moment (memory in use). ``counter``: a running total
    #: (requests served), which charts show as a rate. On the wire ``metric_kind``
    #: (``kind`` names the record's own type).
    kind: MetricKind = msgspec.field(default="gauge", name="metric_kind")


class Heartbeat(_Record, tag="heartbeat"):
    """Liveness: the client process is alive. Not stored as a row."""

    interval: NonNegativeFloat | None = None


class TestStart(_Record, tag="test_start"):
    """A test began; cleared by its result. Names the test a crashed run was in."""

    __test__ = False  # not a pytest test class

    nodeid: Name
    worker: str = ""


class TestResult(_Record, tag="test_result"):
    """The outcome of one test (or subtest, or one rerun attempt of a test)."""

    __test__ = False

    nodeid: Name
    outcome: Outcome
    #: File, class, function and parameter id may be left out when the node id
    #: says them (``file.py::Class::func[param]``): the server reads them off it.
    file: str = ""
    line: Int32 | None = None
    cls: str = ""
    func: str = ""
    param_id: str = ""
    markers: list[str] = []
    #: The phase that decided the outcome: setup, call, teardown, collect, or ``???``
    #: when an xdist worker crashed during the test.
    phase: str = "call"
    started_at: Timestamp | None = None
    stopped_at: Timestamp | None = None
    setup_duration: NonNegativeFloat = 0.0
    call_duration: NonNegativeFloat = 0.0
    teardown_duration: NonNegativeFloat = 0.0
    reason: str | None = None
    exc_type: str | None = None
    exc_message: str | None = None
    traceback: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    log: str | None = None
    worker: str = ""
    #: 0 for the first run of a test, 1 for its first rerun, and so on.
    attempt: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0
    #: False for an attempt that a rerun plugin replaced by a later one.
    final: bool = True
    #: Set for a subtest: its message and parameters, e.g. ``"i=3"``.
    subtest: str | None = None
    cpu_time: NonNegativeFloat | None = None
    rss_delta: Int64 | None = None


class RunStart(_Record, tag="run_start"):
    """Describes a test run (a pytest session): where, on what code, with what."""

    project: str = ""
    branch: str = ""
    commit: str = ""
    dirty: bool | None = None
    ci_provider: str = ""
    ci_url: str = ""
    python_version: str = ""
    python_implementation: str = ""
    platform: str = ""
    hostname: str = ""
    pytest_version: str = ""
    plugins: list[str] = []
    args: list[str] = []
    workers: Int32 = 0
    #: Only part of the suite was selected (``-k``, ``-m``, ``--lf``, named files): its
    #: pass rate and duration are not comparable with whole runs.
    partial: bool = False
    #: What its failures are compared with: for a pull/merge request the target branch
    #: and the merge base commit (its latest run on that commit or older is the base);
    #: empty: the previous run of the same branch.
    base_branch: str = ""
    base_commit: str = ""


class RunFinish(_Record, tag="run_finish"):
    """How a test run ended: pytest's exit status and its counts by outcome."""

    exit_status: Int32
    #: ``passed``, ``failed``, ``stopped`` (-x, --maxfail), ``interrupted`` (Ctrl-C),
    #: ``internal_error``, ``usage_error``, ``no_tests``.
    status: str
    #: Why pytest stopped early, as it said it (``stopping after 1 failures``).
    reason: str = ""
    counts: dict[str, int] = {}
    duration: NonNegativeFloat = 0.0


class SessionEnd(_Record, tag="end"):
    """Ends a session. Records that arrive later are stored; it stays ended."""


Record: TypeAlias = (
    SessionStart
    | StateUpdate
    | Event
    | Metric
    | Heartbeat
    | TestStart
    | TestResult
    | RunStart
    | RunFinish
    | SessionEnd
)


class Batch(msgspec.Struct, gc=False):
    """What ``POST /api/ingest`` takes: records of one or more sessions."""

    records: list[Record]


class BatchAck(msgspec.Struct, gc=False, omit_defaults=True):
    """The answer to a batch, sent after it is committed."""

    accepted: int
    duplicates: int
    #: Why records were ignored, one sentence each (counted under ``duplicates``).
    notes: list[str] = []


def _enc_hook(obj: object) -> object:
    # Telemetry must not raise on a value the application happens to log: anything
    # msgspec cannot encode is sent as its string form.
    return str(obj)


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)

#: Encode any wire object (or plain JSON-like value) to JSON bytes.
encode = _encoder.encode


def cut_text(text: str, limit: int, note: str) -> str:
    """``text`` if it has at most ``limit`` characters, else its head and tail around a
    line that says the cut: ``note`` with ``{n}`` replaced by the characters left out.

    The plugin cuts long output before sending it, the server what is over its limits;
    the note says which did (losing the middle of a traceback beats losing the failure).
    """
    if len(text) <= limit:
        return text
    keep = max(0, limit - 100)  # room for the note
    head, tail = keep // 2, keep - keep // 2
    marked = note.format(n=len(text) - keep)
    return f"{text[:head]}\n... [{marked}] ...\n{text[len(text) - tail :]}"


batch_decoder: msgspec.json.Decoder[Batch] = msgspec.json.Decoder(Batch)
record_decoder: msgspec.json.Decoder[Record] = msgspec.json.Decoder(Record)  # type: ignore[arg-type, unused-ignore]


# -- the columnar batch (format 2) -------------------------------------------------------


def _columns_of(record: type[msgspec.Struct], name: str, doc: str) -> type[msgspec.Struct]:
    """A struct holding records of one session as one list per field.

    Generated from the record struct, so a field added there is carried in columns too.
    A column left out (None) holds the field's default for every record.
    """
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [("session_id", SessionId)]
    for info in msgspec.structs.fields(record):
        if info.name == "session_id":
            continue
        if info.required:
            fields.append((info.name, list[info.type]))  # type: ignore[name-defined]
        else:
            fields.append((info.name, list[info.type] | None, None))  # type: ignore[name-defined]
    struct = msgspec.defstruct(
        name, fields, kw_only=True, omit_defaults=True, gc=False, module=__name__
    )
    struct.__doc__ = doc
    return struct


#: Test results of one session, one list per `TestResult` field, all of one length.
ResultColumns = _columns_of(
    TestResult,
    "ResultColumns",
    "Test results of one session as columns: one list per field of `TestResult`,"
    " all the same length; a field left out holds its default for every result.",
)

#: The names of `TestResult`'s fields, in order, and their defaults.
RESULT_DEFAULTS: dict[str, Any] = {
    info.name: (info.default_factory() if info.default is msgspec.NODEFAULT else info.default)
    for info in msgspec.structs.fields(TestResult)
    if not info.required
}

ColumnarBatch = msgspec.defstruct(
    "ColumnarBatch",
    [
        ("results", list[ResultColumns], []),  # type: ignore[valid-type]
        ("records", list[Record], []),
    ],
    kw_only=True,
    omit_defaults=True,
    gc=False,
    module=__name__,
)
ColumnarBatch.__doc__ = (
    "What ``POST /api/ingest/v2`` takes: test results as columns (the bulk of a pytest"
    " run, decoded and stored without a Python step per result), any other record as a"
    " row. Results are applied after the records of the same batch."
)

columnar_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(ColumnarBatch)


def _result_block(session_id: str, results: list[TestResult]) -> Any:
    columns: dict[str, Any] = {}
    for name in ("seq", "timestamp", "nodeid", "outcome"):
        columns[name] = [getattr(r, name) for r in results]
    for name, default in RESULT_DEFAULTS.items():
        values = [getattr(r, name) for r in results]
        if values.count(default) != len(values):
            columns[name] = values
    return ResultColumns(session_id=session_id, **columns)


def encode_columnar(records: Sequence[Record]) -> bytes:
    """Encode records as a `ColumnarBatch`: test results grouped by session as columns."""
    by_session: dict[str, list[TestResult]] = {}
    rows: list[Record] = []
    for record in records:
        if type(record) is TestResult:
            by_session.setdefault(record.session_id, []).append(record)
        else:
            rows.append(record)
    blocks = [_result_block(sid, results) for sid, results in by_session.items()]
    return _encoder.encode(ColumnarBatch(results=blocks, records=rows))


def records_of_columns(batch: Any) -> list[Record]:
    """A decoded `ColumnarBatch` as records: its rows, then each result (the inverse of
    `encode_columnar`, for servers of one's own and tests)."""
    records: list[Record] = list(batch.records)
    for block in batch.results:
        given = {
            name: values
            for name in ResultColumns.__struct_fields__
            if name != "session_id" and (values := getattr(block, name)) is not None
        }
        for i in range(len(block.seq)):
            fields = {name: values[i] for name, values in given.items()}
            records.append(TestResult(session_id=block.session_id, **fields))
    return records
