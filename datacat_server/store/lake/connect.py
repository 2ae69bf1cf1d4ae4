"""Connecting to a DuckLake: the extensions, the S3 secret, the ATTACH.

A lake is a catalog in PostgreSQL plus a data path (``s3://bucket/prefix/`` on any
S3-compatible store, or a directory every server shares). DuckDB reaches it through
three extensions: ``ducklake``, ``postgres`` (the catalog) and ``httpfs`` (S3).

Offline, those extensions exist only as PyPI wheels built for one DuckDB release
(``duckdb-extension-{ducklake,postgres,httpfs}``, each pinning ``duckdb==1.5.5``; the
``lake`` extra installs them). DuckDB refuses a file built for another version, so
with any other DuckDB (1.5.6, 2.0.x) the loader stops and says what to do, unless
``DATACAT_DUCKDB_EXTENSIONS_FROM_NETWORK=1`` lets DuckDB download the extensions for
its own version itself (from its extension repository: needs the network).

The connection never installs or loads anything on its own: autoinstall and autoload
are off, and extensions go into DataCat's own ``extension_directory`` (not the user's
``~/.duckdb``). ``INSTALL '<wheel file>'`` copies each file there (about 1 ms when it
is there already; several processes installing at once is safe), and renames the
postgres file to ``postgres_scanner``, the name its entry point needs (a plain
``LOAD`` of the wheel's ``postgres.duckdb_extension`` fails).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import importlib.util
import os
import re
from collections.abc import Mapping
from pathlib import Path

import duckdb

from datacat_server.errors import StoreError

__all__ = [
    "EXTENSION_PACKAGES",
    "LakeSettings",
    "LakeUnavailableError",
    "attach",
    "connect",
    "cursor",
    "extension_file",
    "load_extensions",
    "redact",
]

#: Extension name → the PyPI wheel's import name that ships it.
EXTENSION_PACKAGES: dict[str, str] = {
    "ducklake": "duckdb_extension_ducklake",
    "postgres": "duckdb_extension_postgres",
    "httpfs": "duckdb_extension_httpfs",
}

#: The DuckDB release the extension wheels exist for (what the ``lake`` extra pins).
WHEEL_VERSION = "1.5.5"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class LakeUnavailableError(StoreError):
    """The DuckLake extensions cannot be loaded with this DuckDB (the message says
    what to install or set)."""


def _flag(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{key} must be true or false, got {raw!r}")


def _first(env: Mapping[str, str], *keys: str) -> str | None:
    for key in keys:
        value = env.get(key)
        if value:
            return value
    return None


def _literal(text: str) -> str:
    """A SQL string literal (DuckDB's ATTACH and CREATE SECRET take no parameters)."""
    return "'" + text.replace("'", "''") + "'"


_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s\"]+)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` without passwords: DuckDB's errors quote the catalog's connection string
    whole (``password=...`` or ``postgresql://user:password@...``)."""
    text = _PASSWORD.sub(r"\1***", text)
    text = _URL_PASSWORD.sub(r"\1***@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def default_extension_directory() -> Path:
    """DataCat's own extension directory: ``$XDG_CACHE_HOME/datacat/duckdb-extensions``
    (``~/.cache/...``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "datacat" / "duckdb-extensions"


@dataclasses.dataclass(frozen=True, kw_only=True)
class LakeSettings:
    """Where a lake is and how to reach it.

    ``catalog`` is a libpq connection string of the PostgreSQL database holding the
    catalog (``dbname=datacat host=pg.internal user=datacat``; a password can come
    from ``PGPASSWORD`` or ``~/.pgpass``, as libpq reads them). ``data_path`` is
    ``s3://bucket/prefix/`` or a directory all servers share.
    """

    catalog: str
    data_path: str
    #: The S3 endpoint as ``host[:port]``; None for AWS itself.
    s3_endpoint: str | None = None
    s3_key_id: str | None = None
    s3_secret: str | None = None
    s3_session_token: str | None = None
    s3_region: str = "us-east-1"
    #: ``vhost`` (AWS) or ``path`` (MinIO, moto, most self-hosted stores).
    s3_url_style: str = "vhost"
    s3_use_ssl: bool = True
    #: Where DuckDB keeps the installed extensions (`default_extension_directory`).
    extension_directory: Path | None = None
    #: Let DuckDB download the extensions for its own version (needs the network);
    #: off: only the wheels of the ``lake`` extra are used.
    extensions_from_network: bool = False
    #: The name the lake is attached as.
    alias: str = "lake"

    def __post_init__(self) -> None:
        if not self.catalog.strip():
            raise ValueError("the lake's catalog (a PostgreSQL connection string) is empty")
        if not self.data_path.strip():
            raise ValueError("the lake's data path is empty")
        if self.s3_url_style not in ("vhost", "path"):
            raise ValueError(f"S3 URL style must be vhost or path, got {self.s3_url_style!r}")
        if not self.alias.isidentifier():
            raise ValueError(f"the lake's alias must be an identifier, got {self.alias!r}")

    @property
    def on_s3(self) -> bool:
        return self.data_path.startswith("s3://")

    @property
    def bucket_scope(self) -> str:
        """``s3://bucket/``: the secret applies to this bucket only."""
        bucket = self.data_path.removeprefix("s3://").split("/", 1)[0]
        return f"s3://{bucket}/"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LakeSettings:
        """Settings from the environment (``os.environ`` if not given).

        ``DATACAT_LAKE_CATALOG`` and ``DATACAT_LAKE_DATA_PATH`` are required. S3:
        ``DATACAT_S3_ENDPOINT``, ``DATACAT_S3_KEY_ID`` (else ``AWS_ACCESS_KEY_ID``),
        ``DATACAT_S3_SECRET`` (else ``AWS_SECRET_ACCESS_KEY``),
        ``DATACAT_S3_SESSION_TOKEN`` (else ``AWS_SESSION_TOKEN``), ``DATACAT_S3_REGION``
        (else ``AWS_REGION``, ``AWS_DEFAULT_REGION``, ``us-east-1``),
        ``DATACAT_S3_URL_STYLE`` (``vhost``; ``path`` for MinIO and the like),
        ``DATACAT_S3_USE_SSL`` (true). Extensions: ``DATACAT_DUCKDB_EXTENSION_DIR``,
        ``DATACAT_DUCKDB_EXTENSIONS_FROM_NETWORK`` (false).
        """
        env = os.environ if env is None else env
        catalog = env.get("DATACAT_LAKE_CATALOG", "")
        data_path = env.get("DATACAT_LAKE_DATA_PATH", "")
        missing = [
            key
            for key, value in (
                ("DATACAT_LAKE_CATALOG", catalog),
                ("DATACAT_LAKE_DATA_PATH", data_path),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"a lake needs {' and '.join(missing)}")
        directory = env.get("DATACAT_DUCKDB_EXTENSION_DIR")
        return cls(
            catalog=catalog,
            data_path=data_path,
            s3_endpoint=env.get("DATACAT_S3_ENDPOINT") or None,
            s3_key_id=_first(env, "DATACAT_S3_KEY_ID", "AWS_ACCESS_KEY_ID"),
            s3_secret=_first(env, "DATACAT_S3_SECRET", "AWS_SECRET_ACCESS_KEY"),
            s3_session_token=_first(env, "DATACAT_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"),
            s3_region=_first(env, "DATACAT_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
            or "us-east-1",
            s3_url_style=(env.get("DATACAT_S3_URL_STYLE") or "vhost").lower(),
            s3_use_ssl=_flag(env, "DATACAT_S3_USE_SSL", True),
            extension_directory=Path(directory) if directory else None,
            extensions_from_network=_flag(env, "DATACAT_DUCKDB_EXTENSIONS_FROM_NETWORK", False),
        )

    def secret_sql(self) -> str:
        """CREATE SECRET for the data path's bucket (temporary: never written to disk)."""
        options = [
            "TYPE s3",
            f"SCOPE {_literal(self.bucket_scope)}",
            f"REGION {_literal(self.s3_region)}",
            f"URL_STYLE {_literal(self.s3_url_style)}",
            f"USE_SSL {'true' if self.s3_use_ssl else 'false'}",
        ]
        if self.s3_endpoint:
            options.append(f"ENDPOINT {_literal(self.s3_endpoint)}")
        if self.s3_key_id is not None:
            options.append(f"KEY_ID {_literal(self.s3_key_id)}")
        if self.s3_secret is not None:
            options.append(f"SECRET {_literal(self.s3_secret)}")
        if self.s3_session_token is not None:
            options.append(f"SESSION_TOKEN {_literal(self.s3_session_token)}")
        return f"CREATE OR REPLACE TEMPORARY SECRET datacat_{self.alias}_s3 ({', '.join(options)})"

    def attach_sql(self) -> str:
        return (
            f"ATTACH {_literal('ducklake:postgres:' + self.catalog)} AS {self.alias}"
            f" (DATA_PATH {_literal(self.data_path)})"
        )


def _needed(settings: LakeSettings) -> tuple[str, ...]:
    return ("ducklake", "postgres", "httpfs") if settings.on_s3 else ("ducklake", "postgres")


def _advice(version: str) -> str:
    return (
        f"DataCat's lake needs DuckDB's ducklake, postgres and httpfs extensions for this"
        f" DuckDB ({version}). Without a network they come only as wheels for"
        f" duckdb=={WHEEL_VERSION}: install them with `pip install 'pytest-datacat[lake]'`"
        f" (which pins duckdb=={WHEEL_VERSION}). Where this machine can reach DuckDB's"
        " extension repository, set DATACAT_DUCKDB_EXTENSIONS_FROM_NETWORK=1 instead and"
        " DuckDB downloads the extensions for its own version."
    )


def extension_file(name: str, version: str | None = None) -> Path:
    """The extension file a wheel ships for this DuckDB version, or
    `LakeUnavailableError` saying what to install."""
    version = version or duckdb.__version__
    package = EXTENSION_PACKAGES[name]
    if importlib.util.find_spec(package) is None:
        raise LakeUnavailableError(f"{_advice(version)} (missing: the {package} package)")
    root = importlib.resources.files(package) / "extensions"
    path = Path(str(root / f"v{version}" / f"{name}.duckdb_extension"))
    if not path.is_file():
        shipped = sorted(p.name for p in Path(str(root)).iterdir()) if root.is_dir() else []
        raise LakeUnavailableError(
            f"{_advice(version)} (the installed {package} has no file for v{version},"
            f" only for {', '.join(shipped) or 'no version'})"
        )
    return path


def load_extensions(
    con: duckdb.DuckDBPyConnection,
    names: tuple[str, ...] = ("ducklake", "postgres", "httpfs"),
    *,
    from_network: bool = False,
) -> None:
    """Install (into the connection's extension directory) and load ``names``: from the
    wheels of the ``lake`` extra, or from DuckDB's repository if ``from_network``."""
    if from_network:
        for name in names:
            try:
                con.execute(f"INSTALL {name}")
                con.execute(f"LOAD {name}")
            except duckdb.Error as exc:
                raise LakeUnavailableError(
                    f"DuckDB could not install its {name} extension from the network"
                    f" (DATACAT_DUCKDB_EXTENSIONS_FROM_NETWORK=1): {exc}"
                ) from None
        return
    files = {name: extension_file(name) for name in names}
    for name, path in files.items():
        try:
            con.execute(f"INSTALL {_literal(str(path))}")
            con.execute(f"LOAD {name}")
        except duckdb.Error as exc:
            raise LakeUnavailableError(f"{_advice(duckdb.__version__)} ({name}: {exc})") from None


def connect(settings: LakeSettings, path: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the extensions loaded and the lake attached as
    ``settings.alias`` (and made the default database)."""
    directory = settings.extension_directory or default_extension_directory()
    directory.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(
        path,
        config={
            "extension_directory": str(directory),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        },
    )
    try:
        _quiet(con)
        load_extensions(con, _needed(settings), from_network=settings.extensions_from_network)
        attach(con, settings)
    except BaseException:
        con.close()
        raise
    return con


def _quiet(cur: duckdb.DuckDBPyConnection) -> None:
    # A query over 2 s would draw a progress bar on the server's stdout; the setting
    # is per connection and cursor (DuckDB refuses it as a global option).
    cur.execute("SET enable_progress_bar = false")


def cursor(con: duckdb.DuckDBPyConnection, alias: str = "lake") -> duckdb.DuckDBPyConnection:
    """A new cursor of ``con`` on the lake. A cursor starts in the connection's own
    (in-memory) database, whatever ``USE`` said on the connection, and with DuckDB's
    progress bar on: every cursor the lake store makes must come from here."""
    cur = con.cursor()
    _quiet(cur)
    cur.execute(f"USE {alias}")
    return cur


def attach(con: duckdb.DuckDBPyConnection, settings: LakeSettings) -> None:
    """Create the S3 secret (for an ``s3://`` data path) and attach the lake."""
    try:
        if settings.on_s3:
            con.execute(settings.secret_sql())
        con.execute(settings.attach_sql())
        con.execute(f"USE {settings.alias}")
    except duckdb.Error as exc:
        said = redact(str(exc), settings.s3_secret, settings.s3_session_token)
        raise StoreError(f"cannot attach the lake at {settings.data_path}: {said}") from None
