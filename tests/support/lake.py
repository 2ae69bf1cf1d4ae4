"""Real PostgreSQL, S3 (moto's server) and HAProxy for the lake tests and benchmarks.

Each component is a class that starts a real process on 127.0.0.1 (bounded in time)
and always stops it; the pytest fixtures below wrap them. A component that is not
installed or does not start makes its tests skip with the reason, unless
``DATACAT_REQUIRE_LAKE=1`` (as ``.ci/run`` sets it for the lake suite): then it fails.

- `PostgresServer`: Debian's PostgreSQL (``apt-get install postgresql``), a fresh
  cluster in a temporary directory, on a free port, its socket in that directory.
  PostgreSQL refuses to run as root: as root, it runs as the ``postgres`` user.
- `S3Server`: moto's S3 server (PyPI ``moto[server]``, in the ``lake`` extra), data in
  memory; `S3Server.create_bucket` and `S3Server.objects` go through boto3, which moto
  pulls in.
- `HAProxy`: Debian's HAProxy (``apt-get install haproxy``) with a generated config:
  round robin over the given servers, health checks on ``/health``, each answer naming
  its server in ``X-Datacat-Server``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from tests.support.server import free_port

__all__ = [
    "HAProxy",
    "LakeSpec",
    "PostgresServer",
    "S3Server",
    "Unavailable",
    "haproxy_available",
    "lake_spec",
    "postgres",
    "require_lake_extensions",
    "s3",
    "unavailable",
]

REQUIRE = "DATACAT_REQUIRE_LAKE"
BUCKET = "datacat-lake"


class Unavailable(Exception):
    """A component cannot be installed or started here (the message says why)."""


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it with ``DATACAT_REQUIRE_LAKE=1``."""
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{reason}, and {REQUIRE}=1 requires it", pytrace=False)
    pytest.skip(f"{reason}; set {REQUIRE}=1 to fail instead")


def _wait(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} after {timeout}s")


def _stop_process(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended in ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# -- PostgreSQL ---------------------------------------------------------------------------


def _pg_bin() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian's layout)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not found:
        raise Unavailable("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    return Path(found[-1]).parent


class PostgresServer:
    """A throwaway PostgreSQL cluster: ``trust`` authentication, user ``postgres``,
    listening on 127.0.0.1 only, its socket and data in a temporary directory."""

    def __init__(self, port: int | None = None, *, max_connections: int = 200) -> None:
        self.bin = _pg_bin()
        self.port = port or free_port()
        self.max_connections = max_connections
        self.root: Path | None = None
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable(
                    "running as root, and there is no 'postgres' user to run PostgreSQL as"
                    " (PostgreSQL refuses root)"
                ) from None
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        self._names = itertools.count()

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def start(self, timeout: float = 60.0) -> PostgresServer:
        # Not under pytest's tmp dir: that is root's, mode 0700, closed to `postgres`.
        self.root = Path(tempfile.mkdtemp(prefix="datacat-pg-"))
        try:
            if self._as_postgres:
                shutil.chown(self.root, "postgres", "postgres")
            self._run(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                timeout,
            )
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
                f" -c max_connections={self.max_connections} -c fsync=off"
            )
            self._run(
                [
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.root / "postgres.log"),
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "start",
                ],
                timeout + 5,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self, command: list[str], timeout: float) -> str:
        try:
            done = subprocess.run(
                [*self._as_postgres, *command],
                check=False,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=self.root,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"PostgreSQL did not start: {exc}") from None
        if done.returncode != 0:
            raise Unavailable(
                f"PostgreSQL did not start: {' '.join(command[:1])} exited with"
                f" {done.returncode}: {done.stderr.strip()[-2000:]}\n{self.log()}"
            )
        return done.stdout

    def log(self) -> str:
        if self.root is None:
            return ""
        try:
            return (self.root / "postgres.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string (what DuckDB's postgres extension takes)."""
        return f"dbname={dbname} host=127.0.0.1 port={self.port} user=postgres"

    def psql(self, sql: str, dbname: str = "postgres", timeout: float = 30.0) -> str:
        """Run SQL with Debian's ``psql``; returns the unaligned, tuples-only output."""
        psql = self.bin / "psql"
        done = subprocess.run(
            [
                str(psql),
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                dbname,
                "-c",
                sql,
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout.strip()

    def create_database(self, prefix: str = "lake") -> str:
        """A new, empty database; returns its name."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the cluster (fast shutdown) and delete its files."""
        if self.root is None:
            return
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.TimeoutExpired):
                subprocess.run(
                    [
                        *self._as_postgres,
                        str(self.bin / "pg_ctl"),
                        "-D",
                        str(self.data),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        str(int(timeout)),
                        "stop",
                    ],
                    check=False,
                    capture_output=True,
                    timeout=timeout + 5,
                    cwd=self.root,
                )
            self._kill_postmaster()
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def _kill_postmaster(self) -> None:
        """If pg_ctl could not stop it, SIGKILL the postmaster this object started."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# -- S3 (moto) ------------------------------------------------------------------------------


class S3Server:
    """moto's S3 server on a free port of 127.0.0.1, data in memory."""

    key_id = "datacat-test"
    secret = "datacat-test-secret"
    region = "us-east-1"

    def __init__(self, port: int | None = None) -> None:
        try:
            import boto3  # noqa: F401  (moto's own dependency)
            import moto.server  # noqa: F401
        except ImportError:
            raise Unavailable(
                "moto's S3 server is not installed (pip install -e '.[dev,lake]')"
            ) from None
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def endpoint(self) -> str:
        """``host:port``, as DuckDB's S3 secret takes it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def start(self, timeout: float = 120.0) -> S3Server:
        fd, name = tempfile.mkstemp(prefix="datacat-moto-", suffix=".log")
        self._log = Path(name)
        with os.fdopen(fd, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "AWS_ACCESS_KEY_ID": self.key_id},
            )
        try:
            _wait(self._answers, timeout, "moto's S3 server did not answer")
        except BaseException as exc:
            self.stop()
            raise Unavailable(f"moto's S3 server did not start: {exc}") from None
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise Unavailable(f"moto's S3 server exited with {self.proc.returncode}")
        try:
            httpx.get(f"{self.url}/moto-api/", timeout=1.0)
        except httpx.HTTPError:
            return False
        return True

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
            region_name=self.region,
        )

    def create_bucket(self, name: str = BUCKET) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str = BUCKET, prefix: str = "") -> dict[str, int]:
        """Every object under ``prefix``: key → size in bytes."""
        found: dict[str, int] = {}
        pages = self.client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = int(item["Size"])
        return found

    def stop(self, timeout: float = 15.0) -> None:
        _stop_process(self.proc, timeout)
        if self._log is not None:
            self._log.unlink(missing_ok=True)


# -- HAProxy --------------------------------------------------------------------------------


def haproxy_available() -> str:
    """The ``haproxy`` command, or `Unavailable`."""
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None
    )
    if found is None:
        raise Unavailable("HAProxy is not installed (Debian: apt-get install haproxy)")
    return found


class HAProxy:
    """Debian's HAProxy in front of ``servers`` (name → port on 127.0.0.1).

    Round robin; ``/health`` checked every ``check_interval`` seconds, a server is down
    after ``fall`` failed checks and up again after ``rise`` good ones. A request whose
    connection is refused is retried on another server (``option redispatch``). The
    runtime API (a UNIX socket) tells each server's state.
    """

    def __init__(
        self,
        servers: dict[str, int],
        *,
        port: int | None = None,
        check_interval: float = 0.2,
        fall: int = 2,
        rise: int = 1,
        directory: Path | None = None,
    ) -> None:
        self.command = haproxy_available()
        self.servers = dict(servers)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._own_dir = directory is None
        self.dir = directory or Path(tempfile.mkdtemp(prefix="datacat-haproxy-"))
        self.config_path = self.dir / "haproxy.cfg"
        self.socket_path = self.dir / "haproxy.sock"
        self.check_ms = max(10, round(check_interval * 1000))
        self.fall = fall
        self.rise = rise
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        lines = [
            "global",
            f"    stats socket {self.socket_path} mode 600 level admin",
            "    maxconn 2000",
            "defaults",
            "    mode http",
            "    timeout connect 2s",
            "    timeout client 60s",
            "    timeout server 60s",
            "    timeout check 2s",
            "    retries 3",
            "    option redispatch 1",
            "frontend datacat",
            f"    bind 127.0.0.1:{self.port}",
            "    default_backend datacat_servers",
            "backend datacat_servers",
            "    balance roundrobin",
            "    option httpchk GET /health",
            "    http-check expect status 200",
            "    http-response set-header X-Datacat-Server %[srv_name]",
            f"    default-server inter {self.check_ms}ms fall {self.fall} rise {self.rise}",
        ]
        lines += [
            f"    server {name} 127.0.0.1:{port} check" for name, port in self.servers.items()
        ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 30.0) -> HAProxy:
        self.config_path.write_text(self.config())
        checked = subprocess.run(
            [self.command, "-c", "-q", "-f", str(self.config_path)],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if checked.returncode != 0:
            raise RuntimeError(f"haproxy refused its config: {checked.stderr}\n{self.config()}")
        log = (self.dir / "haproxy.log").open("wb")
        self.proc = subprocess.Popen(
            [self.command, "-db", "-f", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        try:
            _wait(self._listening, timeout, "haproxy did not listen")
        except BaseException:
            self.stop()
            raise
        return self

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"haproxy exited with {self.proc.returncode}:\n{self.log()}")
        if not self.socket_path.exists():
            return False
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def log(self) -> str:
        try:
            return (self.dir / "haproxy.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def admin(self, command: str) -> str:
        """A command to HAProxy's runtime API; returns its answer."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> dict[str, dict[str, str]]:
        """Each server's line of ``show stat``: field name → value (``status``: ``UP``,
        ``DOWN``, ...; ``wredis``: requests redispatched away from it; ``wretr``:
        connection retries)."""
        lines = self.admin("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        found = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "datacat_servers" and row.get("svname") in self.servers:
                found[row["svname"]] = row
        return found

    def states(self) -> dict[str, str]:
        """Each server's status as HAProxy sees it (``UP``, ``DOWN``, ...)."""
        return {name: row["status"].split()[0] for name, row in self.stats().items()}

    def wait_states(self, wanted: dict[str, str], timeout: float = 30.0) -> None:
        """Wait until the servers named in ``wanted`` have those states."""
        _wait(
            lambda: all(self.states().get(k) == v for k, v in wanted.items()),
            timeout,
            f"haproxy did not see {wanted} (it sees {self.states()})",
        )

    def stop(self, timeout: float = 15.0) -> None:
        _stop_process(self.proc, timeout)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def require_lake_extensions() -> None:
    """Skip (fail under ``DATACAT_REQUIRE_LAKE=1``) unless this DuckDB has the
    DuckLake extension wheels: the lake environment (``pip install -e '.[dev,lake]'``)."""
    import duckdb

    from datacat_server.store.lake.connect import (
        EXTENSION_PACKAGES,
        LakeUnavailableError,
        extension_file,
    )

    try:
        for name in EXTENSION_PACKAGES:
            extension_file(name)
    except LakeUnavailableError:
        unavailable(
            f"the DuckLake extensions are not installed for duckdb {duckdb.__version__}:"
            " lake tests run in the lake environment (pip install -e '.[dev,lake]',"
            " as .ci/run does in .venv-lake)"
        )


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole run (each test makes its own database)."""
    try:
        server = PostgresServer().start()
    except Unavailable as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """One moto S3 server for the whole run, with the bucket `BUCKET` (each test
    writes under its own prefix)."""
    try:
        server = S3Server().start()
    except Unavailable as exc:
        unavailable(str(exc))
    try:
        server.create_bucket(BUCKET)
        yield server
    finally:
        server.stop()


@dataclasses.dataclass(frozen=True)
class LakeSpec:
    """Where one test's lake lives: a fresh catalog database and a fresh S3 prefix."""

    postgres: PostgresServer
    s3: S3Server
    database: str
    bucket: str
    prefix: str

    @property
    def catalog(self) -> str:
        return self.postgres.dsn(self.database)

    @property
    def data_path(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def env(self) -> dict[str, str]:
        """The environment a ``datacat`` process reads this lake's settings from."""
        return {
            "DATACAT_LAKE_CATALOG": self.catalog,
            "DATACAT_LAKE_DATA_PATH": self.data_path,
            "DATACAT_S3_ENDPOINT": self.s3.endpoint,
            "DATACAT_S3_KEY_ID": self.s3.key_id,
            "DATACAT_S3_SECRET": self.s3.secret,
            "DATACAT_S3_REGION": self.s3.region,
            "DATACAT_S3_URL_STYLE": "path",
            "DATACAT_S3_USE_SSL": "false",
        }

    def objects(self) -> dict[str, int]:
        """The objects under this lake's prefix: key → size."""
        return self.s3.objects(self.bucket, self.prefix)


_prefixes = itertools.count()


@pytest.fixture
def lake_spec(postgres: PostgresServer, s3: S3Server) -> LakeSpec:
    """A lake of this test's own: a new catalog database and S3 prefix."""
    database = postgres.create_database()
    return LakeSpec(postgres, s3, database, BUCKET, f"{database}/")
