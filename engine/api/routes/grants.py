"""Grants: break-glass, activation, revocation, relinquishing, extension, review, and the
sweep that writes down what time decided."""

from typing import Annotated, Any

from fastapi import APIRouter, Request

from ..deps import V1, Allowed, Served, origin
from ..errors import JsonRoute
from ..schemas import (
    BreakGlass,
    Empty,
    Extend,
    RequestId,
    RequestOut,
    Review,
    SweepOut,
    WithReason,
)
from ..tokens import Principal
from ..wire import to_wire

router = APIRouter(route_class=JsonRoute)


@router.post("/v1/break-glass", status_code=201, response_model=RequestOut, tags=["grants"], **V1)
def break_glass(
    service: Served,
    body: BreakGlass,
    actor: Annotated[Principal, Allowed("grants.break_glass")],
    request: Request,
) -> Any:
    """Self-activate an emergency grant at once; a review is due afterwards."""
    return to_wire(
        service.engine.break_glass(
            actor.subject,
            body.resource,
            body.actions,
            body.duration,
            body.location,
            body.reason,
            authentication=actor.identity,
            origin=origin(service, request.scope, actor, body.location),
        )
    )


@router.post("/v1/grants/{request_id}/activate", response_model=RequestOut, tags=["grants"], **V1)
def activate(
    service: Served,
    request_id: RequestId,
    actor: Annotated[Principal, Allowed("grants.activate")],
    body: Empty | None = None,
) -> Any:
    """Start an approved grant that was scheduled to start later."""
    return to_wire(service.engine.activate(request_id, actor.subject))


@router.post("/v1/grants/{request_id}/revoke", response_model=RequestOut, tags=["grants"], **V1)
def revoke(
    service: Served,
    request_id: RequestId,
    actor: Annotated[Principal, Allowed("grants.revoke")],
    body: WithReason | None = None,
) -> Any:
    """End a grant now; when this answers, access checks already deny it.

    The requester's approvers may revoke it, and an admin token anyone's (the lifecycle
    policy decides, told the token's role).
    """
    return to_wire(
        service.engine.revoke(
            request_id,
            actor.subject,
            (body or WithReason()).reason,
            actor_role=actor.role,
            authentication=actor.identity,
        )
    )


@router.post("/v1/grants/{request_id}/relinquish", response_model=RequestOut, tags=["grants"], **V1)
def relinquish(
    service: Served,
    request_id: RequestId,
    actor: Annotated[Principal, Allowed("grants.relinquish")],
    body: WithReason | None = None,
) -> Any:
    """The requester gives a grant back early (the reason goes to the audit trail)."""
    reason = (body or WithReason()).reason
    return to_wire(service.engine.relinquish(request_id, actor.subject, reason))


@router.post("/v1/grants/{request_id}/extend", response_model=RequestOut, tags=["grants"], **V1)
def extend(
    service: Served,
    request_id: RequestId,
    body: Extend,
    actor: Annotated[Principal, Allowed("grants.extend")],
) -> Any:
    """Ask for more time; answers the extension request (applied at once when policy
    needs no approval)."""
    return to_wire(service.engine.extend(request_id, actor.subject, body.duration, body.reason))


@router.post("/v1/grants/{request_id}/review", response_model=RequestOut, tags=["grants"], **V1)
def review(
    service: Served,
    request_id: RequestId,
    body: Review,
    actor: Annotated[Principal, Allowed("grants.review")],
) -> Any:
    """Record the post-hoc review of a break-glass grant."""
    return to_wire(
        service.engine.review(
            request_id, actor.subject, body.outcome, body.notes, authentication=actor.identity
        )
    )


@router.post("/v1/sweep", response_model=SweepOut, tags=["grants"], **V1)
def sweep(service: Served, actor: Annotated[Principal, Allowed("sweep.run")]) -> Any:
    """Write down the expiries and lapses time has decided (the server also does
    this on its own, every `sweep_every`)."""
    return {"counts": service.engine.sweep()}
