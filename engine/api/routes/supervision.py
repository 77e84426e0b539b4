"""Supervised grants: a supervisor joins (and renews its lease with each heartbeat),
leaves, and from the watch ends one session of the grant; the grant's supervisors.
Revoking from the watch is `POST /v1/grants/{id}/revoke` (the lifecycle policy lets a
supervisor present revoke)."""

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from pydantic import Field
from starlette.concurrency import run_in_threadpool

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


class SupervisionOut(Body):
    grant_id: str
    supervised: bool
    state: str | None = Field(description="present, absent or ended; null when not supervised")
    supervisors: list[Lease]


class SessionEnded(Body):
    grant_id: str
    session: str
    sink: str = Field(description="The data system whose session it was")
    decision_id: str | None


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


@router.post(
    "/v1/grants/{request_id}/sessions/{session}/end",
    response_model=SessionEnded,
    tags=["grants"],
    **V1,
)
def end_session(
    service: Served,
    request_id: RequestId,
    session: Annotated[
        str, PathParam(pattern=r"^[0-9a-f.]{1,40}$", description="A session, as watch names it")
    ],
    actor: Annotated[Principal, Allowed("grants.supervise")],
) -> Any:
    """End one open session of a supervised grant (as `watch` names it): a supervisor
    present may (datavisa.lifecycle end_session, logged; audited)."""
    return Supervision(service.engine).end_session(request_id, actor.subject, session)
