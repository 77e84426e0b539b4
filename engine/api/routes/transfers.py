"""Transfers: asking for a copy job, a pipeline's check before and during it, and the
report that its copy is deleted. Approving, denying, cancelling, revoking and reading a
transfer are the requests' and grants' routes: a transfer is a kind of request."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from ...model.decision import TransferAsk
from ...model.durations import DURATION_PATTERN, WIRE_MAX_S, rfc3339
from ...model.errors import StorageUnavailable
from ...model.records import STATES
from ..deps import V1, Allowed, Served
from ..errors import ApiError, JsonRoute
from ..schemas import (
    ID_PATTERN,
    Body,
    DecisionOut,
    Duration,
    Empty,
    Name,
    RequestId,
    RequestList,
    RequestOut,
    Rfc3339,
    Text,
    duration_seconds,
)
from ..service import Service
from ..tokens import SUBJECT_PATTERN, Principal
from ..wire import decision_to_wire, to_wire

CHECK = "transfers.check"  # the API operation (rego/datavisa/api)

router = APIRouter(route_class=JsonRoute)

FOREVER = "forever"


def _keep(value: Any) -> int | None:
    if value == FOREVER:
        return None
    try:
        return duration_seconds(value)
    except ValueError as e:
        raise ValueError(f"{e}; or forever") from e


Keep = Annotated[
    int | None,
    PlainValidator(_keep),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "string", "enum": [FOREVER]},
                {"type": "string", "pattern": DURATION_PATTERN, "examples": ["24h"]},
                {"type": "integer", "minimum": 1, "maximum": WIRE_MAX_S},
            ],
            "description": "How long the copy is kept: 24h, whole seconds, or forever",
        }
    ),
]


# How many individuals a copy carries: a whole number, 0 or more. Bounded far above any
# population (and exactly, in a JSON schema's float) so a store's bigint sum never overflows.
INDIVIDUALS_MAX = 10**12


def _individuals(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():  # 40000.0 is an integer to JSON
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INDIVIDUALS_MAX:
        return value
    raise ValueError(f"not a whole number from 0 to {INDIVIDUALS_MAX}")


Individuals = Annotated[
    int,
    PlainValidator(_individuals),
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": INDIVIDUALS_MAX}),
]


class NewTransfer(Body):
    resource: Name
    target_region: Name = Field(description="The region the copy goes to, e.g. aws:us-east-1")
    importer: Name | None = Field(
        default=None, description="The legal entity operating the target (entities)"
    )
    keep: Keep = Field(default=None, description="How long the copy is kept (default forever)")
    evidence: list[Name] = Field(default_factory=list, max_length=32)
    reason: Text = ""
    window: Duration = Field(description="How long the copy job may run once approved")
    start_at: Rfc3339 | None = Field(
        default=None, description="Scheduled start (RFC 3339); leave out to start on approval"
    )
    requester_kind: Name | None = Field(
        default=None,
        description="Who asks, when not your own organisation: foreign_public_authority for "
        "a third country's court or authority (EU Data Act Art. 32); policy knows the kinds",
    )
    individuals: Individuals | None = Field(
        default=None,
        description="How many individuals' personal information the copy carries, all of "
        "them: China's export route (PIPL) is picked by the exporter's yearly count of them",
    )
    sensitive_individuals: Individuals | None = Field(
        default=None,
        description="Of those, how many with sensitive personal information",
    )


class TransferCheck(Body):
    """By `transfer_id`, or by `resource` and `target_region` (`check_transfer`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["transfer_id"],
                    "properties": {"transfer_id": {"pattern": ID_PATTERN}},
                },
                {
                    "required": ["resource", "target_region"],
                    "properties": {
                        "resource": {"pattern": SUBJECT_PATTERN},
                        "target_region": {"pattern": SUBJECT_PATTERN},
                    },
                },
            ]
        }
    )
    transfer_id: Annotated[str, Field(pattern=ID_PATTERN)] | None = None
    resource: Name | None = None
    target_region: Name | None = None
    importer: Name | None = None


@router.post("/v1/transfers", status_code=201, response_model=RequestOut, tags=["transfers"], **V1)
def create_transfer(
    service: Served, body: NewTransfer, actor: Annotated[Principal, Allowed("transfers.create")]
) -> Any:
    """Ask to copy a resource's data to another region; policy says whether it may be
    asked at all, who must approve, how long the copy may be kept. A refusal names the
    field it is about (`error.field`), and is in the decision log."""
    req = service.engine.transfers.request(
        actor.subject,
        body.resource,
        body.target_region,
        body.window,
        body.reason,
        importer=body.importer,
        retention_s=body.keep,
        evidence=body.evidence,
        start_at=body.start_at.timestamp() if body.start_at else None,
        requester_kind=body.requester_kind,
        individuals=body.individuals,
        sensitive_individuals=body.sensitive_individuals,
    )
    return to_wire(req)


class ExportCount(BaseModel):
    counter: str = Field(description="Policy's counter, e.g. pipl_export (China's PIPL route)")
    exporter: str = Field(description="The legal entity exporting (resources.*.controller)")
    year: int = Field(description="The calendar year, in the counter's timezone")
    individuals: int
    sensitive_individuals: int
    updated_at: str = Field(description="RFC 3339 UTC: when the last approval added to it")


class ExportCounts(BaseModel):
    counts: list[ExportCount]


@router.get("/v1/transfers/counts", response_model=ExportCounts, tags=["transfers"], **V1)
def export_counts(
    service: Served, actor: Annotated[Principal, Allowed("export_counts.list")]
) -> Any:
    """The export counts: per exporter and calendar year, how many individuals the
    transfers approved carried; China's PIPL route is picked from them."""
    found = service.engine.transfers.counts()
    return {"counts": [c | {"updated_at": rfc3339(c["updated_at"])} for c in found]}


@router.get("/v1/transfers", response_model=RequestList, tags=["transfers"], **V1)
def list_transfers(
    service: Served,
    actor: Annotated[Principal, Allowed("requests.list")],
    state: Annotated[Literal[tuple(sorted(STATES))] | None, Query()] = None,  # type: ignore[valid-type]
    requester: Annotated[Name | None, Query()] = None,
    overdue: Annotated[bool, Query(description="Only copies past their deletion deadline")] = False,
) -> Any:
    """Transfers, oldest first, in the state the clock says they are in."""
    reqs = service.engine.transfers.list(state=state, requester=requester, overdue=overdue)
    return {"requests": [to_wire(r) for r in reqs]}


@router.post(
    "/v1/transfers/check",
    response_model=DecisionOut,
    response_model_exclude_unset=True,
    tags=["transfers"],
    **V1,
)
async def check_transfer(
    service: Served, body: TransferCheck, actor: Annotated[Principal, Allowed(CHECK)]
) -> Any:
    """May the pipeline copy now? By `transfer_id`, or by `resource` and `target_region`
    (and `importer`): allowed only while an approved transfer covers exactly that, inside
    its window, and the copy is still lawful under the current policy. Every check is in
    the decision log. Checks that arrive together are asked of OPA together, and recorded
    in one commit, as access checks are."""
    if body.transfer_id is None:
        for name in ("resource", "target_region"):
            if getattr(body, name) is None:
                raise ApiError(
                    422,
                    "invalid_input",
                    f"{name}: name the transfer (transfer_id), or its resource and target_region",
                    field=name,
                )
    return await _answer_transfer(service, body, actor)


async def fast_transfer_check(
    service: Service, body: TransferCheck, actor: Principal, scope: Any
) -> JSONResponse | None:
    """The transfer check route's work for the fast lane (api/fastlane.py), as
    decisions.fast_check is the access check's; None leaves a call that is to be refused
    to the route, which says why."""
    if not service.permissions.allows(actor.role, CHECK) or (
        body.transfer_id is None and (body.resource is None or body.target_region is None)
    ):
        return None
    try:
        return await _answer_transfer(service, body, actor)
    except (StorageUnavailable, ApiError):
        return None


async def _answer_transfer(service: Service, body: TransferCheck, actor: Principal) -> JSONResponse:
    asked = TransferAsk(
        body.transfer_id, body.resource, body.target_region, body.importer, actor.subject
    )
    decision = await service.transfer_checks(asked)
    return JSONResponse(decision_to_wire(decision, service.engine.revision))


@router.post(
    "/v1/transfers/{request_id}/deleted", response_model=RequestOut, tags=["transfers"], **V1
)
def report_deleted(
    service: Served,
    request_id: RequestId,
    actor: Annotated[Principal, Allowed("transfers.deleted")],
    body: Empty | None = None,
) -> Any:
    """Report the transfer's copy deleted (its requester, or a pipeline of the data's
    team); a copy kept for a limited time must be, by its `delete_by`."""
    return to_wire(service.engine.transfers.deleted(request_id, actor.subject))
