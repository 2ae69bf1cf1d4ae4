"""The browser tests find chromium the way `.ci/run` installs it."""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.support.browser import chromium_executable


def _browser_type(executable: Path) -> Any:
    return SimpleNamespace(executable_path=str(executable))


def test_debian_s_chromium_on_the_path_comes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    debian = tmp_path / "bin" / "chromium"
    debian.parent.mkdir()
    debian.write_text("#!/bin/sh\n")
    debian.chmod(debian.stat().st_mode | stat.S_IXUSR)
    own = tmp_path / "ms-playwright" / "chrome"
    own.parent.mkdir()
    own.write_text("")
    monkeypatch.setenv("PATH", str(debian.parent))
    assert chromium_executable(_browser_type(own)) == debian


def test_without_it_playwright_s_own_build_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium here
    own = tmp_path / "ms-playwright" / "chrome"
    assert chromium_executable(_browser_type(own)) is None  # not installed either
    own.parent.mkdir()
    own.write_text("")
    assert chromium_executable(_browser_type(own)) == own
