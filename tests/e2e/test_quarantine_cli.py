"""``datacat quarantine`` against a real server: add, list, remove, the log; and a
token without the quarantine scope refused with the server's reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

TRIAGE = "triage-token-0123456789abcdef"
READ = "read-token-0123456789abcdef00"


def _datacat(server: ServerProcess, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATACAT_URL": server.url, "DATACAT_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "datacat_server", "quarantine", *args, "--project", "shop"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.e2e
def test_quarantine_from_the_command_line(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"quarantine {TRIAGE} ana\nread {READ} board\n")
    with ServerProcess(tmp_path / "q.duckdb", env={"DATACAT_TOKENS_FILE": str(tokens)}) as server:
        refused = _datacat(server, READ, "add", "t.py::a", "--reason", "flaky")
        assert refused.returncode == 1
        assert "lacks the quarantine scope" in refused.stderr
        added = _datacat(server, TRIAGE, "add", "t.py::a", "--reason", "flaky on CI")
        assert (added.returncode, added.stdout) == (0, "t.py::a: in quarantine\n")
        again = _datacat(server, TRIAGE, "add", "t.py::a")
        assert again.stdout == "t.py::a: already in quarantine\n"
        listed = _datacat(server, READ, "list")
        assert listed.returncode == 0
        assert listed.stdout.startswith("t.py::a  (manual since ")
        assert "by ana: flaky on CI" in listed.stdout
        removed = _datacat(server, TRIAGE, "remove", "t.py::a", "--reason", "fixed")
        assert removed.stdout == "t.py::a: out of quarantine\n"
        assert _datacat(server, READ, "list").stdout == ""
        log = _datacat(server, READ, "list", "--log").stdout.splitlines()
        assert [line.split()[1] for line in log] == ["remove", "add"]
