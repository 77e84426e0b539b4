"""The console's reads: the catalogue of resources and an approver's queue, as policy
says them (rego/datavisa/console). Every action the console takes is an existing /v1 call."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ...lifecycle.queue import (
    CURSOR_PATTERN,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    approval_queue,
    parse_cursor,
)
from ...policy.opa import OpaUnavailable
from ..deps import V1, Allowed, Served, origin
from ..errors import JsonRoute
from ..schemas import Country, RequestOut
from ..tokens import Principal
from ..wire import to_wire

router = APIRouter(route_class=JsonRoute)

CATALOGUE = "datavisa/console/catalogue"


class CatalogueEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    jurisdiction: str
    tier: str
    actions: list[str]
    max_duration_s: int
    duration_presets_s: list[int]
    approvals: list[dict[str, Any]]
    cross_border_approvals: list[dict[str, Any]]
    evidence: list[str]


class Catalogue(BaseModel):
    resources: list[CatalogueEntry]


class QueueEntry(BaseModel):
    request: RequestOut  # type: ignore[valid-type]
    decision: dict[str, Any] = Field(
        description="datavisa.console's answer for this approver: allow, reasons, step_up, "
        "groups, quorum_met, still_needed, residency"
    )
    origin: dict[str, Any] | None = Field(
        description="Where the request's decision placed the requester, and how it knew"
    )
    recent_grants: list[RequestOut] = Field(  # type: ignore[valid-type]
        description="The requester's grants on the same resource of the last 90 days, "
        "newest first (5 at most)"
    )


class Queue(BaseModel):
    requests: list[QueueEntry] = Field(description="This page, oldest first")
    total: int = Field(description="How many pending requests this person may act on, in all")
    next_cursor: str | None = Field(
        description="The cursor of the next page; null on the last page"
    )


@router.get("/v1/catalogue", response_model=Catalogue, tags=["console"], **V1)
def catalogue(service: Served, actor: Annotated[Principal, Allowed("catalogue.read")]) -> Any:
    """Every resource with its jurisdiction, tier and what a request for it will need
    (approvers, safeguards and evidence kinds, the longest duration), from policy data."""
    opa = service.engine.opa
    if opa is None:
        raise OpaUnavailable("no OPA configured")
    found = opa.query(CATALOGUE, {}).result
    if not isinstance(found, dict):
        raise OpaUnavailable(f"malformed catalogue from {CATALOGUE}: {found!r}"[:300])
    return {"resources": [{"id": key, **found[key]} for key in sorted(found)]}


@router.get("/v1/queue", response_model=Queue, tags=["console"], **V1)
def queue(
    service: Served,
    actor: Annotated[Principal, Allowed("queue.read")],
    request: Request,
    location: Annotated[Country | None, Query(description="Where the approver is now")] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="How many requests the page shows at most")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(
            pattern=CURSOR_PATTERN,
            description="Where the page starts: next_cursor of the page before",
        ),
    ] = None,
) -> Any:
    """A page of the pending requests policy lets the token's subject approve, oldest
    first, each with the approval decision, the residency explanation, where the requester
    was and who else must approve (`step_up`: once signed in again), with how many there
    are in all and the cursor of the next page."""
    where = origin(service, request.scope, actor, location)
    after = parse_cursor(cursor) if cursor is not None else None
    page = approval_queue(
        service.engine, actor.subject, where.country, actor.identity, where, limit, after
    )
    body = {
        "requests": [
            {
                "request": to_wire(q.request),
                "decision": q.decision,
                "origin": q.origin,
                "recent_grants": [to_wire(g) for g in q.recent_grants],
            }
            for q in page.entries
        ],
        "total": page.total,
        "next_cursor": page.next_cursor,
    }
    # Built once and sent as it is: the Queue model documents it (OpenAPI), and checking
    # every entry of a page against it again would cost more than policy's answer.
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")
