"""Quarantine: list (read or ingest scope: the pytest plugin reads it), change (the
``quarantine`` scope, which a read token does not have), and each project's policy."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from datacat_server.auth import identity_of
from datacat_server.store import StoreBase
from datacat_server.store import quarantine as q

__all__ = ["QuarantineController"]

Project = Annotated[str, QueryParameter(min_length=1, max_length=1_000, description="Project.")]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=4_000)]


class QuarantineChange(msgspec.Struct):
    project: Text
    nodeid: Text
    #: Why (kept in the quarantine's log).
    reason: Annotated[str, msgspec.Meta(max_length=2_000)] = ""


class ChangeResult(msgspec.Struct):
    #: False when there was nothing to do (already in, or not in, quarantine).
    changed: bool


class PolicyIn(msgspec.Struct):
    project: Text
    auto: bool = False
    release_after: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = q.DEFAULT_RELEASE_AFTER


def _who(request: Request[Any, Any, Any]) -> str:
    """The token's name (or that it was a token without one) for the log."""
    token = identity_of(request).token
    if token is None:
        return "anonymous (no tokens configured)"
    return token.name or "a token without a name"


class QuarantineController(Controller):
    path = "/api/quarantine"
    tags = ("quarantine",)

    @get(
        "/",
        sync_to_thread=True,
        summary="The project's quarantined tests",
        opt={"scope": "read", "also": ["ingest"]},
    )
    def index(self, store: NamedDependency[StoreBase], project: Project) -> list[q.QuarantineEntry]:
        return q.entries(store.reader(), project)

    @get(
        "/log",
        sync_to_thread=True,
        summary="Every change to the project's quarantine, newest first",
    )
    def log(
        self,
        store: NamedDependency[StoreBase],
        project: Project,
        nodeid: Annotated[str | None, QueryParameter(max_length=4_000)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 100,
    ) -> list[q.Change]:
        return q.history(store.reader(), project, nodeid, limit)

    @post(
        "/",
        status_code=200,
        summary="Put a test in quarantine",
        opt={"scope": "quarantine"},
    )
    async def add(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[StoreBase],
        data: JSONBody[QuarantineChange],
    ) -> ChangeResult:
        who = _who(request)
        changed = await store.maintain(
            lambda cur: q.add(cur, data.project, data.nodeid, data.reason, who)
        )
        return ChangeResult(bool(changed))

    @post(
        "/remove",
        status_code=200,
        summary="Take a test out of quarantine",
        opt={"scope": "quarantine"},
    )
    async def remove(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[StoreBase],
        data: JSONBody[QuarantineChange],
    ) -> ChangeResult:
        who = _who(request)
        changed = await store.maintain(
            lambda cur: q.remove(cur, data.project, data.nodeid, data.reason, who)
        )
        return ChangeResult(bool(changed))

    @get("/policy", sync_to_thread=True, summary="The project's automatic quarantine")
    def get_policy(self, store: NamedDependency[StoreBase], project: Project) -> q.Policy:
        return q.policy(store.reader(), project)

    @put(
        "/policy",
        summary="Turn the automatic quarantine of flaky tests on or off",
        opt={"scope": "quarantine"},
    )
    async def put_policy(
        self, store: NamedDependency[StoreBase], data: JSONBody[PolicyIn]
    ) -> q.Policy:
        new = q.Policy(data.project, data.auto, data.release_after)
        await store.maintain(lambda cur: q.set_policy(cur, new))
        return new
