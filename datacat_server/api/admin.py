"""Administration: applying retention (deleting old data). Needs the admin scope."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from datacat_server.errors import InvalidInputError
from datacat_server.settings import Settings
from datacat_server.store import StoreBase
from datacat_server.store.retention import RetentionPolicy, RetentionResult

__all__ = ["AdminController"]


class RetentionRequest(msgspec.Struct):
    """Days to keep, overall or for one project; without a body, the configured policy."""

    days: Annotated[float, msgspec.Meta(gt=0, le=36_500)] | None = None
    project: str | None = None


class AdminController(Controller):
    path = "/api/admin"
    tags = ("admin",)
    opt = {"scope": "admin"}  # noqa: RUF012 - Litestar reads it as a mapping

    @post(
        "/retention",
        status_code=200,
        sync_to_thread=True,
        summary="Delete sessions older than the retention policy",
        description="Without a body, applies DATACAT_RETENTION_DAYS; with `days` (and"
        " `project`), deletes sessions (of that project) created more than `days` ago.",
    )
    def retention(
        self,
        *,
        store: NamedDependency[StoreBase],
        settings: NamedDependency[Settings],
        data: JSONBody[RetentionRequest | None] = None,
    ) -> RetentionResult:
        if data is not None and data.days is not None:
            policy = (
                RetentionPolicy(projects={data.project: data.days})
                if data.project
                else RetentionPolicy(days=data.days)
            )
        else:
            policy = RetentionPolicy.parse(settings.retention)
            if not policy.active:
                raise InvalidInputError(
                    "no retention is configured (DATACAT_RETENTION_DAYS) and none was given"
                )
        return store.apply_retention(policy)
