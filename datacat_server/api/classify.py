"""A run's failures classified: new, already failing, known flaky, new test; and fixed."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from datacat_server.queries.classify import RunClassification, classify_run
from datacat_server.store import StoreBase

__all__ = ["ClassificationController"]


class ClassificationController(Controller):
    path = "/api/runs"
    tags = ("runs",)

    @get(
        "/{run_id:str}/classification",
        sync_to_thread=True,
        summary="A run's failures: new, already failing, known flaky, new test; and fixed",
        description="Compared with the run's base: the previous full run of its branch, or"
        " for a pull request the latest run of the target branch on the merge base. The"
        " pytest plugin asks for this at the end of a run for its closing line.",
        raises=[NotFoundException],
    )
    def classification(
        self, store: NamedDependency[StoreBase], run_id: FromPath[str]
    ) -> RunClassification:
        found = classify_run(store.reader(), run_id)
        if found is None:
            raise NotFoundException(f"unknown run: {run_id}")
        return found
