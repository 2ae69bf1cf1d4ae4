"""Server settings: one immutable object, built from arguments or the environment."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from datacat_server.limits import Limits

if TYPE_CHECKING:
    from datacat_server.store.lake.connect import LakeSettings

__all__ = [
    "DEFAULT_HEAD_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS_PER_ADDRESS",
    "DEFAULT_MAX_HEAD_BYTES",
    "Settings",
    "parse_bytes",
]

# -- Connections (`datacat_server.http_head`, used by `datacat serve` and `datacat demo`) --
#: nginx allows 4 x 8 KB of headers by default, Node.js 16 KB: 64 KB is generous.
DEFAULT_MAX_HEAD_BYTES = 64 * 1024
#: Seconds a request line and its headers may take to arrive (nginx: 60, Apache: 20-40).
DEFAULT_HEAD_TIMEOUT = 10.0
#: Connections one client address may hold open at once (browsers open at most 6).
DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 256
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_bytes(text: str, name: str = "a size") -> int:
    """``"2GB"``, ``"512MiB"``, ``"1.5 GB"`` or a plain number of bytes, as bytes."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(f"{name} must be a size such as 2GB or 512MiB, got {text!r}")
    return int(float(match.group(1)) * _UNITS[unit])


#: Settings whose environment variable is not ``DATACAT_`` + the name in capitals.
_ENV_NAMES = {"db_path": "DATACAT_DB", "retention": "DATACAT_RETENTION_DAYS"}
#: Settings only code sets (tests).
_NOT_FROM_ENV = frozenset({"debug", "soft_flush_interval"})
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_name(setting: str) -> str:
    """The environment variable of a setting (``max_depth`` → ``DATACAT_MAX_DEPTH``)."""
    return _ENV_NAMES.get(setting, "DATACAT_" + setting.upper())


def _parse(kind: object, key: str, raw: str) -> object:
    kind = str(kind).removesuffix(" | None")  # an optional setting: parsed as its type
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{key} must be an integer, got {raw!r}") from None
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{key} must be a number, got {raw!r}") from None
    if kind == "bool":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError(f"{key} must be one of {', '.join(_TRUE + _FALSE)}, got {raw!r}")
    if kind == "Path":
        return Path(raw)
    return raw


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the app factory needs. Nothing reads the environment at import."""

    db_path: Path = Path("datacat.duckdb")
    #: Where the data lives, when not ``db_path``: a ``.duckdb`` file, or ``lake`` for a
    #: DuckLake shared by many servers (its catalog and data path come from
    #: ``DATACAT_LAKE_CATALOG`` and ``DATACAT_LAKE_DATA_PATH``, S3 from ``DATACAT_S3_*``:
    #: `datacat_server.store.lake.LakeSettings.from_env`), or ``ducklake:<catalog>`` with
    #: the catalog's PostgreSQL connection string given here.
    store: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    #: A session that declared a heartbeat interval and stays silent for longer than
    #: interval x grace, without ending, is shown as ``crashed``.
    heartbeat_grace: float = 3.0
    #: How often the writer persists fields that change with every batch but need
    #: not be durable at once (last seen, tests in progress).
    soft_flush_interval: float = 0.5
    #: Largest request body, in bytes (413 beyond it).
    max_body_size: int = 50_000_000
    #: Connections (`datacat serve`): the largest request line plus headers, in bytes
    #: (431 beyond it); the seconds they may take to arrive, from the connection's
    #: start or the end of the previous answer (then the connection is closed, with a
    #: 408 if part of a head came); the connections one address may hold open (more are
    #: closed at once; 0: no limit).
    max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    max_connections_per_address: int = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
    #: Records per ingest batch.
    max_batch_records: int = 20_000
    #: Per record (see `datacat_server.api.limits`): names and node ids are refused past
    #: their length, free text is cut; JSON data is refused past the depth and size.
    max_name_length: int = Limits.max_name_length
    max_nodeid_length: int = Limits.max_nodeid_length
    max_text_length: int = Limits.max_text_length
    max_depth: int = Limits.max_depth
    max_data_bytes: int = Limits.max_data_bytes
    max_tags: int = Limits.max_tags
    max_labels: int = Limits.max_labels
    #: DuckDB's memory limit for the whole store (queries beyond it fail cleanly).
    memory_limit: str = "2GB"
    #: Read-only SQL: most rows returned, and seconds before a query is stopped.
    sql_max_rows: int = 10_000
    sql_timeout: float = 10.0
    #: People's SQL runs in worker processes over a read-only snapshot of the data
    #: (`datacat_server.sqlpool`): how many workers, how many queries may wait for one
    #: (503 beyond), the address space and CPU seconds of a query's worker, the bytes an
    #: answer may carry, how often at most the snapshot is refreshed when data changed
    #: (seconds; more rarely when copying is costly), and where snapshots live
    #: (default: ``<db>.snapshots``).
    sql_workers: int = 2
    sql_queue: int = 8
    sql_worker_memory: str = "3GB"
    sql_cpu_seconds: float = 10.0
    sql_max_bytes: int = 10_000_000
    sql_snapshot_interval: float = 1.0
    sql_snapshot_dir: Path | None = None
    #: Keep data for this many days, overall and per project: "30", "30,demo=7".
    #: Empty: keep everything. Applied every ``retention_interval`` seconds.
    retention: str = ""
    retention_interval: float = 3600.0
    #: Seconds between rounds of the automatic quarantine (projects that turned it on).
    quarantine_interval: float = 60.0
    #: Requests a second per token (per address without one), and the burst allowed;
    #: 0 turns rate limiting off.
    rate_limit: float = 1000.0
    rate_burst: float = 10_000.0
    #: Bind addresses other than loopback without any token configured.
    allow_anonymous: bool = False
    #: Show tracebacks in error answers. Tests only.
    debug: bool = False

    def __post_init__(self) -> None:
        for name in (
            "max_body_size",
            "max_head_bytes",
            "max_batch_records",
            "max_name_length",
            "max_nodeid_length",
            "max_text_length",
            "max_depth",
            "max_data_bytes",
            "max_tags",
            "max_labels",
            "sql_max_rows",
            "sql_workers",
            "sql_max_bytes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"DATACAT_{name.upper()} must be at least 1")
        if self.max_head_bytes < 4096:
            raise ValueError("DATACAT_MAX_HEAD_BYTES must be at least 4096: browsers send more")
        if not 0 < self.head_timeout < math.inf:
            raise ValueError("DATACAT_HEAD_TIMEOUT must be a positive number of seconds")
        if self.max_connections_per_address < 0:
            raise ValueError("DATACAT_MAX_CONNECTIONS_PER_ADDRESS must be 0 (no limit) or more")
        if self.sql_queue < 0:
            raise ValueError("DATACAT_SQL_QUEUE must be 0 or more")
        if self.sql_timeout <= 0 or self.sql_cpu_seconds <= 0:
            raise ValueError("DATACAT_SQL_TIMEOUT and DATACAT_SQL_CPU_SECONDS must be positive")
        if self.sql_snapshot_interval < 0:
            raise ValueError("DATACAT_SQL_SNAPSHOT_INTERVAL must be 0 or more")
        if parse_bytes(self.sql_worker_memory, "DATACAT_SQL_WORKER_MEMORY") < 256 * 2**20:
            raise ValueError("DATACAT_SQL_WORKER_MEMORY must be at least 256MB")
        if self.rate_limit < 0:
            raise ValueError("DATACAT_RATE_LIMIT must be 0 (off) or a positive number")
        if self.rate_limit > 0 and self.rate_burst < 1:
            raise ValueError(
                "DATACAT_RATE_BURST must be at least 1: a smaller burst refuses every request"
            )

    @property
    def lake(self) -> LakeSettings | None:
        """The lake `store` names (from the environment, read when asked), or None for a
        file."""
        from datacat_server.store.lake.connect import LakeSettings

        value = self.store.strip()
        if not value or not (value == "lake" or value.startswith("ducklake:")):
            return None
        env = dict(os.environ)
        if value.startswith("ducklake:"):
            env["DATACAT_LAKE_CATALOG"] = value.removeprefix("ducklake:").removeprefix("postgres:")
        return LakeSettings.from_env(env)

    @property
    def limits(self) -> Limits:
        """The per-record limits, as the API checks them."""
        return Limits(
            max_name_length=self.max_name_length,
            max_nodeid_length=self.max_nodeid_length,
            max_text_length=self.max_text_length,
            max_depth=self.max_depth,
            max_data_bytes=self.max_data_bytes,
            max_tags=self.max_tags,
            max_labels=self.max_labels,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``DATACAT_*`` variables (`env_name`), then explicit overrides
        (None ignored); a setting without either keeps its default."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            if field.name in _NOT_FROM_ENV:
                continue
            key = env_name(field.name)
            raw = env.get(key)
            if raw:
                values[field.name] = _parse(field.type, key, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "db_path" in values:
            values["db_path"] = Path(str(values["db_path"]))
        store = str(values.get("store") or "").strip()
        if store and store != "lake" and not store.startswith("ducklake:"):
            # A file given as the store is the database path (`--db` keeps working).
            values["db_path"], values["store"] = Path(store), ""
        if values.get("sql_snapshot_dir") is not None:
            values["sql_snapshot_dir"] = Path(str(values["sql_snapshot_dir"]))
        return cls(**values)  # type: ignore[arg-type]
