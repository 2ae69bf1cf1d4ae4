"""Chromium driven by Playwright, for the dashboard's browser tests.

Chromium is found the way `.ci/run` installs it: Debian's (``chromium`` on the PATH,
``/usr/bin/chromium``), else Playwright's own build (``python -m playwright install
chromium``, what `.ci/run` does where there is no Debian package to install, as on
GitHub's runners).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import (
        BrowserContext,
        BrowserType,
        ConsoleMessage,
        Dialog,
        Page,
        Response,
    )

__all__ = ["Watched", "chromium_executable", "open_chromium"]

_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable(browser_type: BrowserType) -> Path | None:
    """Debian's chromium if it is on the PATH, else Playwright's own build if it is
    installed, else None."""
    found = shutil.which("chromium")
    if found:
        return Path(found)
    own = Path(browser_type.executable_path)
    return own if own.exists() else None


@contextlib.contextmanager
def open_chromium(profile: Path, **options: Any) -> Iterator[BrowserContext]:
    """A headless chromium with its own profile; ``options`` go to Playwright's
    ``launch_persistent_context``. A missing chromium or Playwright fails the test
    (`.ci/run` installs both): a browser test that skips proves nothing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the dev extra installs it
        pytest.fail("playwright is missing: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        executable = chromium_executable(playwright.chromium)
        if executable is None:
            pytest.fail(
                "no chromium for the browser tests: install Debian's (apt-get install"
                " chromium) or Playwright's own (python -m playwright install chromium);"
                " .ci/run does one or the other"
            )
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(executable),
            headless=True,
            args=_ARGS,
            viewport={"width": 1280, "height": 900},
            **options,
        )
        try:
            yield context
        finally:
            context.close()


class Watched:
    """A page, and everything that went wrong on it: console errors, failed requests,
    error answers other than ``expected_status``, dialogs."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        #: An error page under test answers with this status on purpose.
        self.expected_status = 200
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        page.on("response", self._response)
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        if self.expected_status >= 400 and message.text.startswith("Failed to load resource"):
            return  # chromium's line for the error page's own status
        self.problems.append(f"console error: {message.text}")

    def _response(self, response: Response) -> None:
        if response.status >= 400 and response.status != self.expected_status:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, path: str) -> None:
        self.page.goto(self.base + path, wait_until="load")

    def wait_until(self, expression: str, arg: Any = None, timeout: float = 10.0) -> None:
        """Poll a JavaScript predicate from here. Playwright's own ``wait_for_function``
        polls with ``new Function``, which the pages' CSP (no ``unsafe-eval``) refuses;
        ``evaluate`` goes through the DevTools protocol and is not subject to it."""
        deadline = time.monotonic() + timeout
        while not self.page.evaluate(expression, arg):
            assert time.monotonic() < deadline, f"timed out waiting for: {expression}"
            self.page.wait_for_timeout(50)
