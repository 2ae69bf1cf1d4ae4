"""Server settings: one immutable object, built from arguments or the environment."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path

from datacat_server.limits import Limits

__all__ = [
    "DEFAULT_HEAD_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS_PER_ADDRESS",
    "DEFAULT_MAX_HEAD_BYTES",
    "Settings",
]

# -- Connections (`datacat_server.http_head`, used by `datacat serve` and `datacat demo`) --
#: nginx allows 4 x 8 KB of headers by default, Node.js 16 KB: 64 KB is generous.
DEFAULT_MAX_HEAD_BYTES = 64 * 1024
#: Seconds a request line and its headers may take to arrive (nginx: 60, Apache: 20-40).
DEFAULT_HEAD_TIMEOUT = 10.0
#: Connections one client address may hold open at once (browsers open at most 6).
DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 256


#: Settings whose environment variable is not ``DATACAT_`` + the name in capitals.
_ENV_NAMES = {"db_path": "DATACAT_DB", "retention": "DATACAT_RETENTION_DAYS"}
#: Settings only code sets (tests).
_NOT_FROM_ENV = frozenset({"debug", "soft_flush_interval"})
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_name(setting: str) -> str:
    """The environment variable of a setting (``max_depth`` → ``DATACAT_MAX_DEPTH``)."""
    return _ENV_NAMES.get(setting, "DATACAT_" + setting.upper())


def _parse(kind: object, key: str, raw: str) -> object:
    if kind in (int, "int"):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{key} must be an integer, got {raw!r}") from None
    if kind in (float, "float"):
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{key} must be a number, got {raw!r}") from None
    if kind in (bool, "bool"):
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError(f"{key} must be one of {', '.join(_TRUE + _FALSE)}, got {raw!r}")
    if kind in (Path, "Path"):
        return Path(raw)
    return raw


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the app factory needs. Nothing reads the environment at import."""

    db_path: Path = Path("datacat.duckdb")
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
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"DATACAT_{name.upper()} must be at least 1")
        if self.max_head_bytes < 4096:
            raise ValueError("DATACAT_MAX_HEAD_BYTES must be at least 4096: browsers send more")
        if not 0 < self.head_timeout < math.inf:
            raise ValueError("DATACAT_HEAD_TIMEOUT must be a positive number of seconds")
        if self.max_connections_per_address < 0:
            raise ValueError("DATACAT_MAX_CONNECTIONS_PER_ADDRESS must be 0 (no limit) or more")
        if self.rate_limit < 0:
            raise ValueError("DATACAT_RATE_LIMIT must be 0 (off) or a positive number")
        if self.rate_limit > 0 and self.rate_burst < 1:
            raise ValueError(
                "DATACAT_RATE_BURST must be at least 1: a smaller burst refuses every request"
            )

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
        return cls(**values)  # type: ignore[arg-type]
