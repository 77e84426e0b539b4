"""Requests: filing them, reading them, and the approvers' verdicts on them."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from ...model.records import STATES
from ..deps import V1, Allowed, Served, origin
from ..errors import JsonRoute
from ..schemas import (
    Approve,
    Empty,
    Name,
    NewRequest,
    RequestId,
    RequestList,
    RequestOut,
    WithReason,
)
from ..tokens import Principal
from ..wire import to_wire

router = APIRouter(route_class=JsonRoute)


@router.post("/v1/requests", status_code=201, response_model=RequestOut, tags=["requests"], **V1)
def create_request(
    service: Served,
    body: NewRequest,
    actor: Annotated[Principal, Allowed("requests.create")],
    request: Request,
) -> Any:
    """Ask for access; policy says how long, and who must approve.

    `location` is where the requester says they are; the server also places them by their
    address (docs/identity.md, "Location sources"), and policy judges both."""
    where = origin(service, request.scope, actor, body.location)
    start_at = body.start_at.timestamp() if body.start_at else None
    return to_wire(
        service.engine.request(
            actor.subject,
            body.resource,
            body.actions,
            body.duration,
            body.location,
            body.reason,
            start_at=start_at,
            evidence=body.evidence,
            origin=where,
        )
    )


@router.get("/v1/requests", response_model=RequestList, tags=["requests"], **V1)
def list_requests(
    service: Served,
    actor: Annotated[Principal, Allowed("requests.list")],
    state: Annotated[Literal[tuple(sorted(STATES))] | None, Query()] = None,  # type: ignore[valid-type]
    requester: Annotated[Name | None, Query()] = None,
    overdue: Annotated[bool, Query(description="Only break-glass overdue review")] = False,
) -> Any:
    """Requests and grants, oldest first, in the state the clock says they are in."""
    reqs = service.engine.list_requests(state=state, requester=requester, overdue=overdue)
    return {"requests": [to_wire(r) for r in reqs]}


@router.get("/v1/requests/{request_id}", response_model=RequestOut, tags=["requests"], **V1)
def show_request(
    service: Served, request_id: RequestId, actor: Annotated[Principal, Allowed("requests.read")]
) -> Any:
    """One request or grant."""
    return to_wire(service.engine.get(request_id))


@router.get("/v1/requests/{request_id}/approvals", tags=["requests"], **V1)
def list_approvals(
    service: Served,
    request_id: RequestId,
    actor: Annotated[Principal, Allowed("requests.approvals")],
) -> dict[str, Any]:
    """The approvals and denials recorded on a request."""
    service.engine.get(request_id)
    return {"approvals": [to_wire(a) for a in service.engine.approvals(request_id)]}


@router.post(
    "/v1/requests/{request_id}/approve", response_model=RequestOut, tags=["requests"], **V1
)
def approve(
    service: Served,
    request_id: RequestId,
    actor: Annotated[Principal, Allowed("requests.approve")],
    request: Request,
    body: Approve | None = None,
) -> Any:
    """Approve as the token's subject; the grant activates when the quorum is met."""
    body = body or Approve()
    where = origin(service, request.scope, actor, body.location)
    return to_wire(
        service.engine.approve(request_id, actor.subject, body.location, actor.identity, where)
    )


@router.post("/v1/requests/{request_id}/deny", response_model=RequestOut, tags=["requests"], **V1)
def deny(
    service: Served,
    request_id: RequestId,
    actor: Annotated[Principal, Allowed("requests.deny")],
    body: WithReason | None = None,
) -> Any:
    """Deny a pending request; one deny ends it."""
    reason = (body or WithReason()).reason
    return to_wire(service.engine.deny(request_id, actor.subject, reason, actor.identity))


@router.post("/v1/requests/{request_id}/cancel", response_model=RequestOut, tags=["requests"], **V1)
def cancel(
    service: Served,
    request_id: RequestId,
    actor: Annotated[Principal, Allowed("requests.cancel")],
    body: Empty | None = None,
) -> Any:
    """The requester withdraws a request that is not active yet."""
    return to_wire(service.engine.cancel(request_id, actor.subject))
