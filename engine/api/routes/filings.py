"""Filing deadlines: the filings a law wants within a time of an exporter's first transfer
(Vietnam's transfer impact dossier), listed, and recorded once made."""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ...model.durations import rfc3339
from ..deps import V1, Allowed, Served
from ..errors import JsonRoute
from ..schemas import Body, Name
from ..tokens import Principal

router = APIRouter(route_class=JsonRoute)

_TIMES = ("first_transfer_at", "due_at", "filed_at")


class FilingOut(BaseModel):
    filing: str
    exporter: str
    first_transfer_id: str
    first_transfer_at: str = Field(description="RFC 3339 UTC")
    due_at: str = Field(description="RFC 3339 UTC: policy's time to file after the first")
    decision_id: str | None = None
    filed_at: str | None = None
    filed_by: str | None = None


class FilingList(BaseModel):
    filings: list[FilingOut]


class FilingRecord(Body):
    filing: Name = Field(description="The filing's id in policy data, e.g. vn_tia_dossier")
    exporter: Name = Field(description="The legal entity that filed it (entities)")


def _wire(deadline: dict[str, Any]) -> dict[str, Any]:
    return {k: rfc3339(v) if k in _TIMES and v is not None else v for k, v in deadline.items()}


@router.get("/v1/filings", response_model=FilingList, tags=["transfers"], **V1)
def list_filings(
    service: Served,
    actor: Annotated[Principal, Allowed("filings.list")],
    overdue: Annotated[bool, Query(description="Only those past due, not recorded")] = False,
) -> Any:
    """Filing deadlines by due time: each started by an exporter's first transfer that
    policy said starts one; once overdue, that exporter's next such transfers are refused
    until the filing is recorded."""
    return {"filings": [_wire(d) for d in service.engine.filings.list(overdue)]}


@router.post("/v1/filings", response_model=FilingOut, tags=["transfers"], **V1)
def record_filing(
    service: Served, body: FilingRecord, actor: Annotated[Principal, Allowed("filings.record")]
) -> Any:
    """Record a filing made (a data protection officer or an admin, as policy says): its
    deadline ends, audited on the first transfer's trail."""
    found = service.engine.filings.record(
        body.filing, body.exporter, actor.subject, actor_role=actor.role
    )
    return _wire(found)
