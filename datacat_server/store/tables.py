"""The stored tables, each described once.

A `Table` lists its columns: name, DuckDB type, nullability, where the value comes from
(`Source`) and, for text a client sends, which limit applies to it (`Limit`). The
description drives:

- the DDL of new migrations (`Column.ddl`, `Table.ddl`; `migrations.py`);
- the Arrow table the writer inserts (`Table.arrow`), typed exactly as the column so
  that DuckDB copies instead of converting, and inserted by column name (`insert`);
- the limits checked on every record (`datacat_server.limits` reads `Column.limit`);
- the rows queries read back by name (`datacat_server.queries._common.rows`).

A test builds a database from the migrations and compares it, column by column, with
these descriptions (`tests/server/test_schema.py`). ARCHITECTURE.md has the recipe for
adding a field or a record kind.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping
from typing import Any

import duckdb
import pyarrow as pa

__all__ = [
    "DERIVED",
    "DURATION_BUCKETS",
    "EVENT_LOG",
    "METRIC_LOG",
    "QUARANTINE",
    "QUARANTINE_LOG",
    "QUARANTINE_POLICY",
    "QUARANTINE_TABLES",
    "RESULTS",
    "RESULT_DETAILS",
    "ROLLUP_STATE",
    "RUNS",
    "SESSIONS",
    "STATE_UPDATES",
    "TABLES",
    "TESTS",
    "TEST_ROLLUPS",
    "Column",
    "Limit",
    "Source",
    "Table",
    "insert",
    "run_over",
]


class Source(enum.Enum):
    """Where a column's values come from."""

    #: The record's field of the same name (or `Column.field`), as the client sent it.
    WIRE = "wire"
    #: Assigned by the writer: keys (``sid``, ``test_id``), sequence numbers, the time
    #: a row was stored.
    WRITER = "writer"
    #: Computed from the record by its kind (e.g. a result's total duration).
    DERIVED = "derived"
    #: Changed in place by the writer as records arrive (a session's state, a run's end).
    UPDATED = "updated"


class Limit(enum.Enum):
    """How text from a client is bounded (`datacat_server.limits`)."""

    #: A name (of a session, event, metric, label, tag, branch, ...): refused past
    #: ``max_name_length``, because cutting a name would merge different things.
    NAME = "name"
    #: A test's node id or a part of it, a URL: refused past ``max_nodeid_length``.
    NODEID = "nodeid"
    #: Free text (messages, tracebacks, output): cut past ``max_text_length``, marked.
    TEXT = "text"


#: DuckDB type → the Arrow type a column is built as. JSON, UUID and ENUM columns take
#: text, which the INSERT casts (cheaply); everything else is copied as is.
_ARROW: dict[str, pa.DataType] = {
    "BOOLEAN": pa.bool_(),
    "SMALLINT": pa.int16(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "VARCHAR": pa.string(),
    "TIMESTAMP": pa.timestamp("us"),
    "JSON": pa.string(),
    "UUID": pa.string(),
    "outcome": pa.string(),
    "VARCHAR[]": pa.list_(pa.string()),
    "INTEGER[]": pa.list_(pa.int32()),
    "MAP(VARCHAR, VARCHAR)": pa.map_(pa.string(), pa.string()),
}

#: How DuckDB names each type in ``information_schema.columns.data_type``.
_INFO_TYPE = {"outcome": "ENUM('passed', 'failed', 'skipped', 'xfailed', 'xpassed', 'error')"}


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of a stored table."""

    name: str
    type: str
    nullable: bool = True
    source: Source = Source.WIRE
    #: The wire field feeding a `Source.WIRE` column, when it is named differently.
    field: str | None = None
    #: For text (or lists of text) a client sends: how it is bounded.
    limit: Limit | None = None
    #: A constant default for rows written before the column existed (migrations).
    default: str | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.type not in _ARROW:
            raise ValueError(f"column {self.name}: unknown type {self.type}")

    @property
    def arrow(self) -> pa.DataType:
        return _ARROW[self.type]

    @property
    def wire_field(self) -> str:
        """The record field this column is read from."""
        return self.field or self.name

    @property
    def info_type(self) -> str:
        """The type as ``information_schema.columns`` spells it."""
        return _INFO_TYPE.get(self.type, self.type)

    def ddl(self, *, constraints: bool = True) -> str:
        """The column's definition in a CREATE (or, without constraints, ALTER) TABLE."""
        quoted = f'"{self.name}"'
        default = f" DEFAULT {self.default}" if self.default is not None else ""
        not_null = " NOT NULL" if constraints and not self.nullable else ""
        return f"{quoted} {self.type}{default}{not_null}"


@dataclasses.dataclass(frozen=True)
class Table:
    """A stored table: its name, its columns in order, and what one row is."""

    name: str
    columns: tuple[Column, ...]
    doc: str = ""

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: a column is described twice")

    def __iter__(self) -> Iterator[Column]:
        return iter(self.columns)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} has no column {name}")

    def wire_columns(self) -> list[Column]:
        """The columns a record fills field by field."""
        return [c for c in self.columns if c.source is Source.WIRE]

    def ddl(self) -> str:
        """CREATE TABLE for this description (new tables in new migrations)."""
        body = ",\n    ".join(c.ddl() for c in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n    {body}\n)"

    def add_columns(self, *names: str) -> list[str]:
        """ALTER TABLE statements adding these (described) columns to an older table.

        Idempotent, so that a migration written today still runs on a database that a
        later description already created with the column. A NOT NULL column needs a
        default for the rows already there.
        """
        statements = []
        for name in names:
            column = self.column(name)
            if not column.nullable and column.default is None:
                raise ValueError(
                    f"{self.name}.{name}: a NOT NULL column added later needs a default"
                )
            statements.append(
                f"ALTER TABLE {self.name} ADD COLUMN IF NOT EXISTS {column.ddl(constraints=False)}"
            )
            if not column.nullable:
                statements.append(f'ALTER TABLE {self.name} ALTER COLUMN "{name}" SET NOT NULL')
        return statements

    def arrow(self, values: Mapping[str, Any], length: int) -> pa.Table:
        """An Arrow table of ``length`` rows typed as this table's columns.

        ``values`` maps column names to Python lists or Arrow arrays; a nullable column
        left out is all NULL. Columns come out in the described order.
        """
        arrays = []
        for column in self.columns:
            value = values.get(column.name)
            if value is None:
                if not column.nullable:
                    raise ValueError(f"{self.name}.{column.name} needs a value")
                arrays.append(pa.nulls(length, column.arrow))
            elif isinstance(value, pa.Array | pa.ChunkedArray):
                arrays.append(value if value.type == column.arrow else value.cast(column.arrow))
            else:
                arrays.append(pa.array(value, column.arrow))
        return pa.Table.from_arrays(arrays, names=self.names)


def insert(cur: duckdb.DuckDBPyConnection, table: Table, batch: pa.Table) -> None:
    """Append an Arrow table to ``table``, matching columns by name.

    The batch is a relation over the Arrow table: registering it as a view would cost a
    catalog change per statement, and a replacement scan (a Python variable found by
    name) is not allowed once the store has disabled external access.
    """
    run_over(cur, batch, f"INSERT INTO {table.name} BY NAME SELECT * FROM batch")


def run_over(cur: duckdb.DuckDBPyConnection, batch: pa.Table, sql: str) -> None:
    """Run ``sql``, which reads the Arrow table ``batch`` under that name, to its end
    (DuckDB 2.0: a result left unfetched blocks the cursor's next relation call)."""
    relation = cur.from_arrow(batch).query("batch", sql)
    if relation is not None:
        relation.fetchall()


# -- the tables --------------------------------------------------------------------------

_W, _K, _D, _U = Source.WIRE, Source.WRITER, Source.DERIVED, Source.UPDATED
_NAME, _NODEID, _TEXT = Limit.NAME, Limit.NODEID, Limit.TEXT


def _sid(doc: str = "The session's serial number (`sessions.sid`).") -> Column:
    return Column("sid", "INTEGER", nullable=False, source=_K, doc=doc)


def _seq() -> Column:
    return Column(
        "seq",
        "BIGINT",
        source=_K,
        doc="The record's sequence number in its session; NULL for the seed's"
        " one-record endpoints, which have none.",
    )


def _ts() -> Column:
    return Column(
        "ts", "TIMESTAMP", nullable=False, field="timestamp", doc="When the client logged it."
    )


SESSIONS = Table(
    "sessions",
    (
        _sid("Assigned by the writer when the session starts; what other tables key by."),
        Column("id", "UUID", nullable=False, field="session_id", doc="Chosen by the client."),
        Column("name", "VARCHAR", nullable=False, limit=_NAME),
        Column("product", "VARCHAR", nullable=False, limit=_NAME),
        Column("version", "VARCHAR", nullable=False, limit=_NAME),
        Column("labels", "MAP(VARCHAR, VARCHAR)", nullable=False, limit=_NAME),
        Column(
            "created_at",
            "TIMESTAMP",
            nullable=False,
            field="timestamp",
            doc="The client's clock when it started the session: shown, never trusted.",
        ),
        Column("updated_at", "TIMESTAMP", nullable=False, source=_U),
        Column("ended_at", "TIMESTAMP", source=_U),
        Column("state", "JSON", nullable=False, source=_U, doc="The deep-merged state."),
        Column("hung", "BOOLEAN", nullable=False, source=_U),
        Column("heartbeat_interval", "DOUBLE", source=_U),
        Column("last_seen", "TIMESTAMP", nullable=False, source=_U),
        Column("in_progress", "JSON", source=_U, doc="Tests started and not finished."),
        Column(
            "received_at",
            "TIMESTAMP",
            nullable=False,
            source=_K,
            default="TIMESTAMP '1970-01-01'",
            doc="The server's clock when the session arrived: retention and 'latest'"
            " go by it, so a client's wrong clock cannot hide or expire a session.",
        ),
    ),
    "One row per session; the only table besides `runs` changed in place.",
)

STATE_UPDATES = Table(
    "state_updates",
    (
        _sid(),
        _seq(),
        _ts(),
        Column("patch", "JSON", nullable=False, field="state", doc="The partial state sent."),
    ),
    "Every state patch, in order: the state history.",
)

EVENT_LOG = Table(
    "event_log",
    (
        _sid(),
        _seq(),
        _ts(),
        Column("name", "VARCHAR", nullable=False, limit=_NAME),
        Column("data", "JSON"),
    ),
    "Events logged by clients (test results and exceptions appear in the `events` view).",
)

METRIC_LOG = Table(
    "metric_log",
    (
        _sid(),
        _seq(),
        _ts(),
        Column("name", "VARCHAR", nullable=False, limit=_NAME),
        Column("value", "DOUBLE", nullable=False),
        Column("tags", "VARCHAR[]", nullable=False, limit=_NAME),
        Column(
            "unit",
            "VARCHAR",
            nullable=False,
            limit=_NAME,
            default="''",
            doc="What the value counts (``ms``, ``bytes``); empty when not said.",
        ),
        Column(
            "kind",
            "VARCHAR",
            nullable=False,
            limit=_NAME,
            default="'gauge'",
            doc="``gauge`` (a level) or ``counter`` (a running total, shown as a rate).",
        ),
    ),
    "Metric values logged by clients.",
)

TESTS = Table(
    "tests",
    (
        Column("test_id", "INTEGER", nullable=False, source=_K, doc="Assigned by the writer."),
        Column("project", "VARCHAR", nullable=False, source=_K, doc="The session's product."),
        Column("nodeid", "VARCHAR", nullable=False, limit=_NODEID),
        Column("file", "VARCHAR", source=_D, limit=_NODEID, doc="Sent, or read off the node id."),
        Column("line", "INTEGER"),
        Column("cls", "VARCHAR", source=_D, limit=_NODEID),
        Column("func", "VARCHAR", source=_D, limit=_NODEID),
        Column("param_id", "VARCHAR", source=_D, limit=_NODEID),
        Column("markers", "VARCHAR[]", limit=_NAME),
        Column("first_seen", "TIMESTAMP", nullable=False, source=_K),
    ),
    "A test's identity within its project, as first seen.",
)

RESULTS = Table(
    "results",
    (
        _sid(),
        Column("seq", "BIGINT", nullable=False, source=_K),
        Column("test_id", "INTEGER", nullable=False, source=_K),
        Column("subtest", "VARCHAR", limit=_NODEID),
        Column("outcome", "outcome", nullable=False),
        Column("phase", "VARCHAR", limit=_NAME),
        Column("started_at", "TIMESTAMP"),
        Column("stopped_at", "TIMESTAMP"),
        Column(
            "duration",
            "DOUBLE",
            nullable=False,
            source=_D,
            doc="setup + call + teardown, seconds.",
        ),
        Column("setup_duration", "DOUBLE", nullable=False),
        Column("call_duration", "DOUBLE", nullable=False),
        Column("teardown_duration", "DOUBLE", nullable=False),
        Column("worker", "VARCHAR", nullable=False, limit=_NAME),
        Column("attempt", "SMALLINT", nullable=False),
        Column("final", "BOOLEAN", nullable=False),
        Column("cpu_time", "DOUBLE"),
        Column("rss_delta", "BIGINT"),
        Column(
            "stored_at",
            "TIMESTAMP",
            nullable=False,
            source=_K,
            default="TIMESTAMP '1970-01-01'",
            doc="When the writer committed the row, strictly increasing by transaction:"
            " the order insights count flips in, and how far rollups have folded.",
        ),
    ),
    "Test results (and subtests, and rerun attempts): narrow and typed.",
)

RESULT_DETAILS = Table(
    "result_details",
    (
        _sid(),
        Column("seq", "BIGINT", nullable=False, source=_K),
        Column("reason", "VARCHAR", limit=_TEXT),
        Column("exc_type", "VARCHAR", limit=_TEXT),
        Column("exc_message", "VARCHAR", limit=_TEXT),
        Column("traceback", "VARCHAR", limit=_TEXT),
        Column("stdout", "VARCHAR", limit=_TEXT),
        Column("stderr", "VARCHAR", limit=_TEXT),
        Column("log", "VARCHAR", limit=_TEXT),
    ),
    "The text of the results that have any (a few percent of them).",
)

RUNS = Table(
    "runs",
    (
        _sid(),
        Column("project", "VARCHAR", nullable=False, limit=_NAME),
        Column("branch", "VARCHAR", nullable=False, limit=_NAME),
        Column("commit", "VARCHAR", nullable=False, limit=_NAME),
        Column("dirty", "BOOLEAN"),
        Column("ci_provider", "VARCHAR", nullable=False, limit=_NAME),
        Column("ci_url", "VARCHAR", nullable=False, limit=_NODEID),
        Column("python_version", "VARCHAR", nullable=False, limit=_NAME),
        Column("python_implementation", "VARCHAR", nullable=False, limit=_NAME),
        Column("platform", "VARCHAR", nullable=False, limit=_NAME),
        Column("hostname", "VARCHAR", nullable=False, limit=_NAME),
        Column("pytest_version", "VARCHAR", nullable=False, limit=_NAME),
        Column("plugins", "VARCHAR[]", nullable=False, limit=_NAME),
        Column("args", "VARCHAR[]", nullable=False, limit=_NODEID),
        Column("workers", "INTEGER", nullable=False),
        Column("started_at", "TIMESTAMP", nullable=False, field="timestamp"),
        Column("finished_at", "TIMESTAMP", source=_U),
        Column("exit_status", "INTEGER", source=_U),
        Column("status", "VARCHAR", source=_U, limit=_NAME),
        Column("reason", "VARCHAR", source=_U, limit=_TEXT),
        Column("counts", "JSON", source=_U, limit=_NAME),
        Column("duration", "DOUBLE", source=_U),
        Column(
            "received_at",
            "TIMESTAMP",
            nullable=False,
            source=_K,
            default="TIMESTAMP '1970-01-01'",
            doc="The server's clock when the run started: the order runs are listed in.",
        ),
        Column(
            "partial",
            "BOOLEAN",
            nullable=False,
            default="false",
            doc="Only some of the suite ran (-k, -m, --lf, named files): left out of trends.",
        ),
        Column(
            "base_branch",
            "VARCHAR",
            nullable=False,
            limit=_NAME,
            default="''",
            doc="A pull request's target branch: failures are compared with its runs.",
        ),
        Column(
            "base_commit",
            "VARCHAR",
            nullable=False,
            limit=_NAME,
            default="''",
            doc="The merge base with that branch.",
        ),
    ),
    "One row per test run (a pytest session); its finish fields are set once.",
)

#: Every base table, in the order a session's data hangs off them (retention).
TABLES: tuple[Table, ...] = (
    SESSIONS,
    STATE_UPDATES,
    EVENT_LOG,
    METRIC_LOG,
    TESTS,
    RESULTS,
    RESULT_DETAILS,
    RUNS,
)


# -- rollups: derived from `results` (store/rollups.py), never sent by a client ----------

_R = Source.DERIVED


def _counter(name: str, doc: str) -> Column:
    return Column(name, "BIGINT", nullable=False, source=_R, default="0", doc=doc)


TEST_ROLLUPS = Table(
    "test_rollups",
    (
        Column("test_id", "INTEGER", nullable=False, source=_R),
        Column("branch", "VARCHAR", nullable=False, source=_R, doc="'' for runs on no branch."),
        _counter("runs", "Final results that passed, failed or errored."),
        _counter("failures", "Of those, failed or errored."),
        _counter("flips", "Changes between consecutive results, in the order stored."),
        _counter("episodes", "Failures that follow a pass (or start the history)."),
        Column("first_bad", "BOOLEAN", nullable=False, source=_R, default="false"),
        Column("last_bad", "BOOLEAN", nullable=False, source=_R, default="false"),
        _counter("streak", "Failures since the last pass."),
        Column("streak_sid", "INTEGER", source=_R, doc="The run the streak started in."),
        _counter("flaky_in_run", "Runs in which it passed when rerun."),
        _counter("same_commit", "Commits on which it both passed and failed."),
        Column("last_failure_sid", "INTEGER", source=_R),
        Column("last_failure_at", "TIMESTAMP", source=_R),
        Column("last_at", "TIMESTAMP", source=_R, doc="When its newest result was stored."),
        Column(
            "failing_sids",
            "INTEGER[]",
            nullable=False,
            source=_R,
            default="[]",
            doc="The five newest runs it failed in.",
        ),
        _counter("timed", "Final results of any outcome: what durations are over."),
        Column("total", "DOUBLE", nullable=False, source=_R, default="0"),
        Column("longest", "DOUBLE", nullable=False, source=_R, default="0"),
    ),
    "Per test and branch, its results folded up to `rollup_state.folded_until`.",
)

DURATION_BUCKETS = Table(
    "duration_buckets",
    (
        Column("test_id", "INTEGER", nullable=False, source=_R),
        Column("branch", "VARCHAR", nullable=False, source=_R),
        Column("bucket", "SMALLINT", nullable=False, source=_R, doc="round(log_1.05(seconds))"),
        _counter("n", "Results whose duration falls in the bucket."),
    ),
    "Per test and branch, a histogram of durations (quantiles within 2.5 %).",
)

ROLLUP_STATE = Table(
    "rollup_state",
    (
        Column(
            "folded_until",
            "TIMESTAMP",
            nullable=False,
            source=_R,
            doc="Results stored at or before this are in the rollups; later ones are"
            " folded in when read.",
        ),
    ),
    "One row: how far the rollups have folded.",
)

#: Tables the writer derives from the base tables.
DERIVED: tuple[Table, ...] = (TEST_ROLLUPS, DURATION_BUCKETS, ROLLUP_STATE)


# -- quarantine: tests whose failures do not fail a build (store/quarantine.py) ----------

QUARANTINE = Table(
    "quarantine",
    (
        Column("project", "VARCHAR", nullable=False, source=_K),
        Column("nodeid", "VARCHAR", nullable=False, source=_K, limit=_NODEID),
        Column("mode", "VARCHAR", nullable=False, source=_K, doc="manual or auto."),
        Column("reason", "VARCHAR", nullable=False, source=_K, limit=_TEXT),
        Column("since", "TIMESTAMP", nullable=False, source=_K),
        Column("who", "VARCHAR", nullable=False, source=_K, doc="The token's name, or datacat."),
    ),
    "The tests in quarantine now: one row per project and test.",
)

QUARANTINE_LOG = Table(
    "quarantine_log",
    (
        Column("project", "VARCHAR", nullable=False, source=_K),
        Column("nodeid", "VARCHAR", nullable=False, source=_K),
        Column("action", "VARCHAR", nullable=False, source=_K, doc="add or remove."),
        Column("mode", "VARCHAR", nullable=False, source=_K),
        Column("reason", "VARCHAR", nullable=False, source=_K),
        Column("who", "VARCHAR", nullable=False, source=_K),
        Column("changed_at", "TIMESTAMP", nullable=False, source=_K),
    ),
    "Every change to the quarantine: who, why, when.",
)

QUARANTINE_POLICY = Table(
    "quarantine_policy",
    (
        Column("project", "VARCHAR", nullable=False, source=_K),
        Column("auto", "BOOLEAN", nullable=False, source=_K, doc="Quarantine flaky tests."),
        Column(
            "release_after",
            "INTEGER",
            nullable=False,
            source=_K,
            doc="An automatic quarantine ends after this many passes in a row.",
        ),
    ),
    "Per project: whether the flaky rule quarantines tests by itself.",
)

QUARANTINE_TABLES: tuple[Table, ...] = (QUARANTINE, QUARANTINE_LOG, QUARANTINE_POLICY)
