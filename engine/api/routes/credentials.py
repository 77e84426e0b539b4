"""Credentials: the connection details of a grant provisioned in a database, handed to
its holder once (again only when rotated), as an access decision from where they are."""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from ...lifecycle.provisioned import credentials
from ..deps import V1, Allowed, Served
from ..errors import JsonRoute
from ..schemas import COUNTRY_PATTERN, RequestId
from ..tokens import Principal

router = APIRouter(route_class=JsonRoute)


@router.get("/v1/grants/{request_id}/credentials", tags=["grants"], **V1)
async def grant_credentials(
    service: Served,
    request_id: RequestId,
    actor: Annotated[Principal, Allowed("grants.credentials")],
    location: Annotated[
        str, Query(pattern=COUNTRY_PATTERN, description="Where the holder is now (ISO 3166-1)")
    ],
    rotate: Annotated[bool, Query(description="Issue a new password, ending the old one")] = False,
) -> Any:
    """The holder's connection details for an active grant: a `postgresql://` URL and the
    same as `PG*` variables. Issued once; `rotate=true` issues a new password. Judged as
    an access check of the grant from `location` (logged); the password is never stored.
    """
    return await run_in_threadpool(
        credentials, service.engine, request_id, actor.subject, location, rotate
    )
