"""The bundle service for a fleet of sidecar OPAs, in OPA's own protocols.

GET /v1/bundles/policy and GET /v1/bundles/grants answer OPA's bundle plugin: an `ETag`
on every bundle, `If-None-Match` naming it → 304, long polling (`Prefer: ...;wait=N`: the
answer waits until the grants change, or N seconds), and, for the grants, a delta bundle
(JSON-patch upserts of the subjects changed) when `fleet.deltas` is on, the OPA asks
`modes=...delta` and holds a revision the outbox still reaches back to; with
`?resources=a,b`, only the grants on those resources (`opa-config --resources`, for a
sidecar that guards a few). POST /v1/status
takes OPA's status reports: each OPA's active bundle revisions, by which the fleet
confirms grant changes. GET /v1/fleet shows every OPA heard of. `datavisa opa-config`
prints a sidecar's configuration. Each OPA calls with a service token of its own; its
subject names it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import StringConstraints
from starlette.concurrency import run_in_threadpool

from ...lifecycle.fleet import CONTENT_TYPE, MemberView, revision_of
from ...model import bounded
from ...model.durations import rfc3339
from ..deps import V1, Allowed, Served
from ..errors import ApiError, JsonRoute
from ..tokens import Principal
from ..wire import resource_scope

router = APIRouter(route_class=JsonRoute)

MAX_WAIT_S = 300  # the longest a long poll is held, whatever the OPA asks
MAX_SCOPE_CHARS = 4096  # the resources a grants bundle is asked for, comma-separated
_WAIT = re.compile(r"(?:^|[;,\s])wait=(\d{1,6})")
_MODES = re.compile(r"(?:^|[;\s])modes=([a-z,]+)")


def _current_etag(request: Request) -> str | None:
    """The ETag the OPA holds: the first one If-None-Match names (OPA lists superseded
    ones after it)."""
    given = request.headers.get("if-none-match", "").split(",")[0].strip()
    return given or None


def _prefer(request: Request) -> tuple[int, set[str]]:
    """The long-poll wait (0: none) and the bundle modes the OPA accepts."""
    prefer = request.headers.get("prefer", "")
    wait = _WAIT.search(prefer)
    modes = _MODES.search(prefer)
    return (
        min(int(wait.group(1)), MAX_WAIT_S) if wait else 0,
        set(modes.group(1).split(",")) if modes else {"snapshot"},
    )


def _scope(resources: str | None) -> tuple[str, ...]:
    """The resources a grants bundle is asked for, sorted; () for every one."""
    try:
        return resource_scope(resources) if resources is not None else ()
    except ValueError as e:
        raise ApiError(422, "invalid", str(e), field="resources") from e


def _bundle(body: bytes | None, etag: str) -> Response:
    headers = {"ETag": f'"{etag}"'}
    if body is None:
        return Response(status_code=304, headers=headers, media_type=CONTENT_TYPE)
    return Response(body, headers=headers, media_type=CONTENT_TYPE)


@router.get("/v1/bundles/policy", tags=["fleet"], response_class=Response, **V1)
async def policy_bundle(
    service: Served, request: Request, actor: Annotated[Principal, Allowed("bundles.read")]
) -> Response:
    """The policy bundle `datavisa serve` runs (roots `datavisa`, `system/log`), ETag its
    revision; 404 when serve asks an external OPA and so builds none."""
    fleet = service.fleet
    fleet.contact(actor.subject)
    body = await run_in_threadpool(fleet.policy)
    if body is None:
        raise ApiError(
            404, "not_found", "this server asks an external OPA: serve its bundle from there"
        )
    etag = fleet.policy_revision
    wait_s, _ = _prefer(request)
    if _current_etag(request) == f'"{etag}"':
        if wait_s:
            await fleet.wait_policy(wait_s, service.closing)
        return _bundle(None, etag)
    return _bundle(body, etag)


@router.get("/v1/bundles/grants", tags=["fleet"], response_class=Response, **V1)
async def grants_bundle(
    service: Served,
    request: Request,
    actor: Annotated[Principal, Allowed("bundles.read")],
    resources: Annotated[
        str | None,
        Query(
            max_length=MAX_SCOPE_CHARS,
            description="Comma-separated resource names: only the grants on them",
        ),
    ] = None,
) -> Response:
    """The live grants as a data bundle (root `grants`: data.grants, keyed by subject, then
    grant id), its revision the grant outbox's head. With `If-None-Match` naming the
    revision now and `Prefer: wait=N`, the answer waits until a grant changes (or N
    seconds: 304). A delta bundle when the OPA accepts one and the outbox has every change
    since the revision it holds. With `resources`, only the grants on those resources (a
    sidecar that guards a few parses only theirs); the revision is the same."""
    scope = _scope(resources)
    fleet = service.fleet
    fleet.contact(actor.subject)
    wait_s, modes = _prefer(request)
    held = _current_etag(request)
    since = revision_of(held) if held else None
    head = await run_in_threadpool(fleet.head)
    if since is not None and since == head and wait_s:
        head = await fleet.wait_change(head, wait_s, service.closing)
        if await request.is_disconnected():  # gone while it waited: nothing is served
            return _bundle(None, str(since))
    if since is not None and since == head:
        fleet.contact(actor.subject)
        return _bundle(None, str(head))
    deltas = "delta" in modes and fleet.config.deltas
    revision, body, _ = await run_in_threadpool(fleet.grants_bundle, since, deltas, scope)
    await run_in_threadpool(fleet.served, actor.subject, revision)
    fleet.contact(actor.subject)
    return _bundle(body, str(revision))


# OPA's status report: an object whose parts DataVisa reads where it knows them.
_REPORT = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post("/v1/status", status_code=204, tags=["fleet"], openapi_extra=_REPORT, **V1)
@router.post("/v1/status/{partition}", status_code=204, tags=["fleet"], openapi_extra=_REPORT, **V1)
async def status_report(
    service: Served,
    request: Request,
    actor: Annotated[Principal, Allowed("fleet.report")],
    partition: Annotated[str, StringConstraints(max_length=256)] = "",
) -> Response:
    """Take an OPA's status report (OPA's status plugin, `status.service`). The OPA is the
    token's subject; only one named in `fleet.opas` is trusted to confirm grant changes,
    any other is recorded and shown."""
    try:
        body = bounded.loads(await request.body())
    except ValueError as e:  # TooDeep is a ValueError too
        message = "the body is not a JSON status report"
        raise ApiError(400, "bad_request", message, field="body") from e
    if not isinstance(body, dict):
        raise ApiError(422, "invalid", "a status report is a JSON object", field="body")
    await run_in_threadpool(service.fleet.report, actor.subject, body)
    return Response(status_code=204)


def member_dict(member: MemberView) -> dict[str, Any]:
    def when(at: float | None) -> str | None:
        return rfc3339(at) if at is not None else None

    return {
        "name": member.name,
        "trusted": member.trusted,
        "grants_revision": member.confirmed,
        "lag": member.lag,
        "behind_s": round(member.behind_s, 3),
        "stale": member.stale,
        "last_contact": when(member.last_contact),
        "last_report": when(member.last_report),
        "policy_revision": member.policy_revision,
        "errors": list(member.errors),
    }


def fleet_dict(service: Any) -> dict[str, Any]:
    """The fleet as /v1/fleet and /health show it."""
    fleet = service.fleet
    return {
        "grants_revision": fleet.head(),
        "policy_revision": fleet.policy_revision or None,
        "stale_after_s": fleet.config.stale_after_s,
        "opas": [member_dict(m) for m in fleet.view()],
    }


@router.get("/v1/fleet", tags=["fleet"], **V1)
def fleet_state(service: Served, actor: Annotated[Principal, Allowed("fleet.read")]) -> Any:
    """Every OPA of the fleet, trusted or merely heard from: the grants revision its
    reports confirm, its lag behind the outbox and whether it is stale."""
    return fleet_dict(service)
