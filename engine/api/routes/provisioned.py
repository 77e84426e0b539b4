"""Grants in the data systems they were provisioned in: the holder's credentials (once,
again only when rotated, as an access decision from where they are), where each system
stands with the grant and what its role ran there, and an admin abandoning a removal a
system never confirmed (`revoke --force`)."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from ...lifecycle.provisioned import abandon_removal, credentials, standing
from ..deps import V1, Allowed, Served, origin
from ..errors import JsonRoute
from ..schemas import CURSOR_MAX, Body, Country, RequestId, Text
from ..tokens import Principal

router = APIRouter(route_class=JsonRoute)


class Abandon(Body):
    reason: Text = Field(min_length=1, description="Why the removal is given up (audited)")


@router.get("/v1/grants/{request_id}/credentials", tags=["grants"], **V1)
async def grant_credentials(
    service: Served,
    request_id: RequestId,
    actor: Annotated[Principal, Allowed("grants.credentials")],
    request: Request,
    location: Annotated[Country, Query(description="Where the holder is now (ISO 3166-1)")],
    rotate: Annotated[bool, Query(description="Issue a new password, ending the old one")] = False,
) -> Any:
    """The holder's connection details for an active grant: a `postgresql://` URL and the
    same as `PG*` variables (MariaDB: a `mysql://` URL and `MYSQL_*`). Issued once;
    `rotate=true` issues a new password. Judged as an access check of the grant from
    `location` (logged); the password is never stored.
    """
    where = origin(service, request.scope, actor, location)
    return await run_in_threadpool(
        credentials, service.engine, request_id, actor.subject, location, rotate, where,
        actor.identity,
    )  # fmt: skip


@router.get("/v1/grants/{request_id}/activity", tags=["grants"], **V1)
def grant_activity(
    service: Served,
    request_id: RequestId,
    actor: Annotated[Principal, Allowed("activity.read")],
    after: Annotated[int, Query(ge=0, le=CURSOR_MAX, description="Only rows after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> Any:
    """Where each data system stands with the grant, and the statements its role ran
    there (masked), oldest first."""
    service.engine.get(request_id)  # 404 for an unknown grant
    return {
        "provisioning": standing(service.engine, request_id),
        "activity": service.engine.store.activity(request_id, after, limit),
    }


@router.post("/v1/grants/{request_id}/abandon-removal", tags=["grants"], **V1)
def abandon(
    service: Served,
    request_id: RequestId,
    body: Abandon,
    actor: Annotated[Principal, Allowed("grants.abandon_removal")],
) -> Any:
    """Give up removing an ended grant from the systems that never confirmed it (admin
    only, with a reason; audited, and raised as a critical alert)."""
    sinks = abandon_removal(service.engine, request_id, actor.subject, body.reason, actor.role)
    return {"grant_id": request_id, "abandoned": sinks}
