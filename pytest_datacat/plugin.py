"""``pytest --datacat``: the hooks pytest loads through the ``pytest11`` entry point.

Only the options are registered unconditionally, and this module imports nothing but
pytest and the options: with DataCat off, a run pays for neither the client library
nor any hook. When it is on, `pytest_configure` registers the objects that do the
work: a `Recorder` where every report arrives (the only process, or the xdist
controller), a `Probe` where tests run, and on xdist workers a `WorkerWatch` for hangs.
"""

from __future__ import annotations

import pytest

from pytest_datacat.options import Options, add_options, resolve_options

__all__ = ["OPTIONS_KEY", "pytest_addoption", "pytest_configure"]

OPTIONS_KEY = pytest.StashKey[Options]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    options = resolve_options(config)
    if options is None:
        return
    config.stash[OPTIONS_KEY] = options
    from pytest_datacat.measure import PhaseCpu

    config.pluginmanager.register(PhaseCpu(), "datacat-phase-cpu")
    if hasattr(config, "workerinput"):
        from pytest_datacat.probe import Probe
        from pytest_datacat.worker import WorkerWatch

        config.pluginmanager.register(Probe(), "datacat-probe")
        config.pluginmanager.register(WorkerWatch(config, options), "datacat-worker")
    else:
        from pytest_datacat.recorder import Recorder

        config.pluginmanager.register(Recorder(config, options), "datacat-recorder")
