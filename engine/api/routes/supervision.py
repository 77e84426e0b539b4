"""Supervised grants: a supervisor joins (and renews its lease with each heartbeat),
leaves, and from the watch ends one session of the grant; the grant's supervisors.
Revoking from the watch is `POST /v1/grants/{id}/revoke` (the lifecycle policy lets a
supervisor present revoke). Ending a session goes through the grant outbox: 202 while
the data system has not taken it, and `session-ends/{end}` says how it went."""

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from ...model.records import SESSION_PENDING
from ...supervision import Supervision
from ..deps import V1, Allowed, Served, origin
from ..errors import JsonRoute
from ..schemas import Body, Country, RequestId, RequestOut
from ..tokens import Principal
from ..wire import rfc3339, to_wire

router = APIRouter(route_class=JsonRoute)


class Join(Body):
    location: Country = Field(
        default="unknown", description="Where the supervisor is now (ISO 3166-1 alpha-2)"
    )


class Supervising(Body):
    grant_id: str
    supervisor: str
    joined: bool = Field(description="True for a join, false for a heartbeat renewing a lease")
    decided: bool = Field(
        description="Whether policy was asked (logged): at a join, and at a heartbeat once "
        "policy's redecide_every heartbeats passed or the policy revision or the "
        "supervisor's location changed; false for a renewal on the standing decision"
    )
    held_until: str = Field(description="When the lease runs out unless renewed (RFC 3339)")
    lease_s: float
    heartbeat_s: float = Field(description="Renew the lease this often (policy's)")
    grace_s: float = Field(description="How long sessions run on once no supervisor is present")
    decision_id: str | None


class Lease(Body):
    grant_id: str
    supervisor: str
    joined_at: str = Field(description="When the supervisor joined (RFC 3339)")
    held_until: str = Field(description="When the lease runs out unless renewed (RFC 3339)")
    decision_id: str | None = Field(description="The supervision decision that let them join")
    alive: bool = Field(description="Whether the lease is alive now")
    revision: str | None = Field(description="The policy revision the lease was decided on")
    location: str | None = Field(description="The country the supervisor was judged in")
    renewals: int = Field(description="Heartbeats renewed on that decision since it was taken")
    redecide_every: int = Field(
        description="How many heartbeats policy lets pass before it decides again"
    )
    lease_s: float | None = Field(description="The lease's length, policy's")


class SupervisionOut(Body):
    grant_id: str
    supervised: bool
    state: str | None = Field(description="present, absent or ended; null when not supervised")
    supervisors: list[Lease]


@router.post(
    "/v1/grants/{request_id}/supervision", response_model=Supervising, tags=["grants"], **V1
)
async def join(
    service: Served,
    request_id: RequestId,
    actor: Annotated[Principal, Allowed("grants.supervise")],
    request: Request,
    body: Join | None = None,
) -> Any:
    """Join a supervised grant as its supervisor, or renew the lease (a heartbeat): the
    grant works only while a supervisor's lease is alive. Whether the caller may
    supervise is policy's (datavisa.supervision, logged): never the holder, only the
    supervisor groups, from where the tier allows. Renew every `heartbeat_s`."""
    location = (body or Join()).location
    where = origin(service, request.scope, actor, location)
    joined = await run_in_threadpool(
        Supervision(service.engine).join, request_id, actor.subject, location, where,
        actor.identity,
    )  # fmt: skip
    return {**joined, "held_until": rfc3339(joined["held_until"])}


@router.delete(
    "/v1/grants/{request_id}/supervision", response_model=RequestOut, tags=["grants"], **V1
)
def leave(
    service: Served,
    request_id: RequestId,
    actor: Annotated[Principal, Allowed("grants.supervise")],
) -> Any:
    """Leave a grant you supervise: with no other supervisor present, its login is
    refused at once and its open sessions end after the grace."""
    return to_wire(Supervision(service.engine).leave(request_id, actor.subject))


@router.get(
    "/v1/grants/{request_id}/supervision", response_model=SupervisionOut, tags=["grants"], **V1
)
def supervisors(
    service: Served,
    request_id: RequestId,
    actor: Annotated[Principal, Allowed("activity.read")],
) -> Any:
    """The grant's supervision: its state (present, absent, ended; null when it is not
    supervised) and each supervisor's lease."""
    grant = service.engine.get(request_id)  # 404 for an unknown grant
    leases = Supervision(service.engine).supervisors(request_id)
    return {
        "grant_id": request_id,
        "supervised": grant.supervised,
        "state": grant.supervision_state,
        "supervisors": [
            {
                **row,
                "joined_at": rfc3339(row["joined_at"]),
                "held_until": rfc3339(row["held_until"]),
            }
            for row in leases
        ],
    }


class SessionEnd(Body):
    grant_id: str
    session: str
    end: int = Field(description="The ask's number: GET /v1/grants/{id}/session-ends/{end}")
    state: str = Field(
        description="pending (a data system has not taken it yet: retried), ended, "
        "not_found, grant_ended (the grant ended first, its sessions with it) or failed"
    )
    sink: str | None = Field(description="The data system that acted on it")
    asked_by: str
    asked_at: str
    done_at: str | None
    decision_id: str | None
    pending_sinks: list[str] | None = Field(
        default=None, description="While pending: the data systems that have not taken it"
    )
    message: str | None = Field(default=None, description="While pending: what that means")


def _session_end(answer: dict[str, Any]) -> dict[str, Any]:
    return {
        **answer,
        "asked_at": rfc3339(answer["asked_at"]),
        "done_at": None if answer["done_at"] is None else rfc3339(answer["done_at"]),
    }


@router.post(
    "/v1/grants/{request_id}/sessions/{session}/end",
    response_model=SessionEnd,
    tags=["grants"],
    **(V1 | {"responses": V1["responses"] | {202: {
        "model": SessionEnd, "description": "Asked, not yet done: retried until it is"}}}),
)  # fmt: skip
async def end_session(
    service: Served,
    request_id: RequestId,
    session: Annotated[
        str, PathParam(pattern=r"^[0-9a-f.]{1,40}$", description="A session, as watch names it")
    ],
    actor: Annotated[Principal, Allowed("grants.supervise")],
) -> Any:
    """End one open session of a supervised grant (as `watch` names it): a supervisor
    present may (datavisa.lifecycle end_session, logged). The ask is recorded with its
    audit event and a grant-outbox row; the data system holding the grant ends it when
    it applies the outbox. 200 when it is done (`state`: ended); 202 while a data system
    has not taken it (`pending_sinks`; the outbox retries it), with `Location` to ask how
    it went; 404 when the grant's account has no such session."""
    answer = await run_in_threadpool(
        Supervision(service.engine).end_session, request_id, actor.subject, session
    )
    body = SessionEnd(**_session_end(answer)).model_dump()
    if answer["state"] != SESSION_PENDING:
        return body
    where = f"/v1/grants/{request_id}/session-ends/{answer['end']}"
    body["message"] = (  # as a revoke not yet in force everywhere says it (202)
        f"session {session} of grant {request_id} is asked to end, but not yet ended at "
        f"{', '.join(answer['pending_sinks'])}: the engine retries until it is ({where})"
    )
    return JSONResponse(body, status_code=202, headers={"Location": where})


@router.get(
    "/v1/grants/{request_id}/session-ends/{end}",
    response_model=SessionEnd,
    tags=["grants"],
    **V1,
)
def session_end(
    service: Served,
    request_id: RequestId,
    end: Annotated[
        int, PathParam(ge=1, le=2**63 - 1, description="The ask's number, as ending it answered")
    ],
    actor: Annotated[Principal, Allowed("activity.read")],
) -> Any:
    """How a session end asked of the grant went (pending, ended, not_found,
    grant_ended, failed)."""
    return _session_end(Supervision(service.engine).session_end(request_id, end))
