"""The test suite's own server helper: a port taken meanwhile is not a failed test."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e


def test_a_port_taken_before_the_server_binds_it_is_replaced(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "moved.duckdb")
    taken = server.port
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", taken))
        other_program.listen()
        with server:
            assert server.port != taken
            assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200


def test_a_port_asked_for_is_never_replaced(tmp_path: Path) -> None:
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", 0))
        other_program.listen()
        port = other_program.getsockname()[1]
        with pytest.raises(RuntimeError, match="is in use by another program"):
            ServerProcess(tmp_path / "asked.duckdb", port=port).start()
