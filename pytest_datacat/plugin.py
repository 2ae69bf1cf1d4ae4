"""``pytest --datacat``: the hooks pytest loads through the ``pytest11`` entry point.

Only the options are registered unconditionally. When DataCat is on, `pytest_configure`
registers the objects that do the work: a `Recorder` where every report arrives (the
only process, or the xdist controller), a `Probe` where tests run, and on xdist workers
a `WorkerWatch` for hangs. When it is off, nothing else is added.
"""

from __future__ import annotations

import pytest

from pytest_datacat.options import Options, add_options, resolve_options
from pytest_datacat.probe import Probe
from pytest_datacat.recorder import Recorder
from pytest_datacat.worker import WorkerWatch

__all__ = ["OPTIONS_KEY", "pytest_addoption", "pytest_configure"]

OPTIONS_KEY = pytest.StashKey[Options]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    options = resolve_options(config)
    if options is None:
        return
    config.stash[OPTIONS_KEY] = options
    config.pluginmanager.register(Probe(), "datacat-probe")
    if hasattr(config, "workerinput"):
        config.pluginmanager.register(WorkerWatch(config, options), "datacat-worker")
    else:
        config.pluginmanager.register(Recorder(config, options), "datacat-recorder")
