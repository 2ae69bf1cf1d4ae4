"""The lake's settings and extension loader (`datacat_server.store.lake.connect`).

Unmarked tests run in both environments (the latest DuckDB and the lake's 1.5.5);
those marked ``lake`` load the real extensions, with no network.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import pytest

from datacat_server.errors import StoreError
from datacat_server.store.lake import LakeSettings, LakeUnavailableError, connect
from datacat_server.store.lake.connect import (
    WHEEL_VERSION,
    extension_file,
    load_extensions,
    redact,
)
from tests.support.lake import PostgresServer

BASE = {
    "DATACAT_LAKE_CATALOG": "dbname=lake host=pg.internal user=datacat",
    "DATACAT_LAKE_DATA_PATH": "s3://telemetry/datacat/",
}


def test_settings_come_from_the_environment() -> None:
    settings = LakeSettings.from_env(
        {
            **BASE,
            "DATACAT_S3_ENDPOINT": "minio.internal:9000",
            "AWS_ACCESS_KEY_ID": "from-aws",
            "DATACAT_S3_KEY_ID": "from-datacat",
            "AWS_SECRET_ACCESS_KEY": "s3cr3t",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "DATACAT_S3_URL_STYLE": "PATH",
            "DATACAT_S3_USE_SSL": "false",
            "DATACAT_DUCKDB_EXTENSION_DIR": "/var/cache/datacat/ext",
        }
    )
    assert settings.catalog == BASE["DATACAT_LAKE_CATALOG"]
    assert settings.data_path == BASE["DATACAT_LAKE_DATA_PATH"]
    assert settings.s3_endpoint == "minio.internal:9000"
    assert settings.s3_key_id == "from-datacat"  # ours first, then AWS's
    assert settings.s3_secret == "s3cr3t"
    assert settings.s3_region == "eu-west-1"
    assert settings.s3_url_style == "path"
    assert settings.s3_use_ssl is False
    assert settings.extension_directory == Path("/var/cache/datacat/ext")
    assert settings.extensions_from_network is False
    assert settings.bucket_scope == "s3://telemetry/"


def test_defaults_are_aws_and_offline() -> None:
    settings = LakeSettings.from_env(BASE)
    assert (settings.s3_endpoint, settings.s3_region, settings.s3_url_style) == (
        None,
        "us-east-1",
        "vhost",
    )
    assert settings.s3_use_ssl is True
    assert settings.extensions_from_network is False
    network = LakeSettings.from_env({**BASE, "DATACAT_DUCKDB_EXTENSIONS_FROM_NETWORK": "1"})
    assert network.extensions_from_network is True


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "a lake needs DATACAT_LAKE_CATALOG and DATACAT_LAKE_DATA_PATH"),
        ({"DATACAT_LAKE_CATALOG": "dbname=x"}, "a lake needs DATACAT_LAKE_DATA_PATH"),
        ({**BASE, "DATACAT_S3_URL_STYLE": "virtual"}, "URL style must be vhost or path"),
        ({**BASE, "DATACAT_S3_USE_SSL": "maybe"}, "DATACAT_S3_USE_SSL must be true or false"),
    ],
)
def test_bad_settings_are_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LakeSettings.from_env(env)


def test_quotes_in_settings_stay_inside_their_literals() -> None:
    settings = LakeSettings(
        catalog="dbname=lake password='x'",
        data_path="s3://b/p/",
        s3_key_id="k'); DROP TABLE t; --",
        s3_secret="it's",
    )
    secret = settings.secret_sql()
    assert "KEY_ID 'k''); DROP TABLE t; --'" in secret
    assert "SECRET 'it''s'" in secret
    assert "SCOPE 's3://b/'" in secret
    assert settings.attach_sql() == (
        "ATTACH 'ducklake:postgres:dbname=lake password=''x''' AS lake (DATA_PATH 's3://b/p/')"
    )
    # DuckDB parses both as one statement each.
    for sql in (secret, settings.attach_sql()):
        assert len(duckdb.extract_statements(sql)) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'at "dbname=x host=h password=s3cr3t user=u": refused',
            'at "dbname=x host=h password=*** user=u": refused',
        ),
        ("dbname=x password = 'it\\'s a \\\\ pass' user=u", "dbname=x password = *** user=u"),
        (
            "postgresql://datacat:s3cr3t@pg:5432/lake failed",
            "postgresql://datacat:***@pg:5432/lake failed",
        ),
        ("secret 'AKIA/xyz' was refused", "secret '***' was refused"),
    ],
)
def test_passwords_are_kept_out_of_messages(text: str, expected: str) -> None:
    assert redact(text, "AKIA/xyz") == expected


def test_a_duckdb_without_wheels_is_told_what_to_install_or_set() -> None:
    with pytest.raises(LakeUnavailableError) as raised:
        extension_file("ducklake", version="9.9.9")
    message = str(raised.value)
    assert "(9.9.9)" in message
    assert f"pip install 'pytest-datacat[lake]'` (which pins duckdb=={WHEEL_VERSION})" in message
    assert "DATACAT_DUCKDB_EXTENSIONS_FROM_NETWORK=1" in message


@pytest.mark.skipif(
    duckdb.__version__ == WHEEL_VERSION, reason="this DuckDB has the extension wheels"
)
def test_connecting_with_another_duckdb_fails_before_touching_anything(tmp_path: Path) -> None:
    settings = LakeSettings(
        catalog="dbname=nowhere host=127.0.0.1 port=1",
        data_path=str(tmp_path / "data"),
        extension_directory=tmp_path / "ext",
    )
    with pytest.raises(LakeUnavailableError, match=f"for duckdb=={WHEEL_VERSION}"):
        connect(settings)
    assert not (tmp_path / "data").exists()


# -- with the real extensions (the lake environment) ----------------------------------------


@pytest.mark.lake
def test_the_wheels_load_without_a_network_into_our_own_directory(tmp_path: Path) -> None:
    directory = tmp_path / "ext"
    con = duckdb.connect(
        config={
            "extension_directory": str(directory),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
    )
    load_extensions(con)
    loaded = {
        name: (Path(path), source)
        for name, path, source in con.execute(
            "SELECT extension_name, install_path, installed_from FROM duckdb_extensions()"
            " WHERE loaded AND install_path <> '(BUILT-IN)'"
        ).fetchall()
    }
    # INSTALL renamed the postgres file to the name its entry point needs.
    assert set(loaded) == {"ducklake", "postgres_scanner", "httpfs"}
    for path, source in loaded.values():
        assert path.is_relative_to(directory), loaded
        assert "duckdb_extension_" in source  # from the wheel, not a download
    assert (directory / f"v{WHEEL_VERSION}").is_dir()
    # Loading again (another server start) is cheap and changes nothing.
    again = duckdb.connect(config={"extension_directory": str(directory)})
    load_extensions(again)
    # And with DATACAT_DUCKDB_EXTENSIONS_FROM_NETWORK=1, installed extensions are not
    # downloaded again.
    from_network = duckdb.connect(
        config={"extension_directory": str(directory), "autoinstall_known_extensions": False}
    )
    load_extensions(from_network, from_network=True)


@pytest.mark.lake
def test_a_catalog_that_cannot_be_reached_is_named_without_its_password(tmp_path: Path) -> None:
    settings = LakeSettings(
        catalog="dbname=lake host=127.0.0.1 port=1 user=datacat password=hunter2",
        data_path=f"{tmp_path}/data/",
        extension_directory=tmp_path / "ext",
    )
    with pytest.raises(StoreError) as raised:
        connect(settings)
    message = str(raised.value)
    assert "hunter2" not in message
    assert "password=***" in message
    assert "port=1" in message


@pytest.mark.lake
@pytest.mark.slow
def test_a_shared_directory_serves_as_the_data_path(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """Without S3: the data path is a directory (every server mounts the same one);
    two processes write to the lake and each sees the other's rows."""
    data = tmp_path / "shared"
    data.mkdir()
    env = {
        "DATACAT_LAKE_CATALOG": postgres.dsn(postgres.create_database()),
        "DATACAT_LAKE_DATA_PATH": f"{data}/",
        "DATACAT_DUCKDB_EXTENSION_DIR": str(tmp_path / "ext"),
    }
    script = (
        "import sys; from datacat_server.store.lake import LakeSettings, connect, cursor;"
        "con = connect(LakeSettings.from_env());"
        "assert not con.execute(\"SELECT current_setting('enable_progress_bar')\").fetchall()[0][0];"
        "con = cursor(con);"
        "assert not con.execute(\"SELECT current_setting('enable_progress_bar')\").fetchall()[0][0];"
        "con.execute('CREATE TABLE IF NOT EXISTS t (writer VARCHAR, n INTEGER)');"
        "con.execute('INSERT INTO t SELECT ?, range FROM range(100)', [sys.argv[1]]);"
        "print(con.execute('SELECT count(DISTINCT writer) FROM t').fetchall()[0][0])"
    )
    for writer, seen in (("a", "1"), ("b", "2")):
        done = subprocess.run(
            [sys.executable, "-c", script, writer],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == seen
    assert list(data.glob("main/t/*.parquet"))
    # A lake remembers its data path: another one is refused, naming both.
    with pytest.raises(Exception, match="does not match existing data path"):
        connect(
            LakeSettings.from_env(
                {**env, "DATACAT_LAKE_DATA_PATH": f"{tmp_path}/elsewhere-{uuid.uuid4()}/"}
            )
        )
