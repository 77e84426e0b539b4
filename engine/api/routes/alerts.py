"""Alerts the monitoring rules raised: listing, reading and acknowledging them."""

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from ...model.errors import NotFound
from ...model.records import Alert
from ...monitoring.monitor import SEVERITIES
from ...monitoring.monitor import STATES as ALERT_STATES
from ..deps import V1, Allowed, Served
from ..errors import ApiError, JsonRoute
from ..schemas import AUDIT_PAGE_MAX, CURSOR_MAX, AlertId, AlertOut, AlertPage, Empty
from ..tokens import SUBJECT_PATTERN, Principal
from ..wire import to_wire

router = APIRouter(route_class=JsonRoute)


@router.get("/v1/alerts", response_model=AlertPage, tags=["monitoring"], **V1)
def list_alerts(
    service: Served,
    actor: Annotated[Principal, Allowed("alerts.list")],
    rule: Annotated[str | None, Query(pattern=r"^[a-z_]{1,64}$")] = None,
    severity: Annotated[Literal[SEVERITIES] | None, Query()] = None,  # type: ignore[valid-type]
    subject: Annotated[str | None, Query(pattern=SUBJECT_PATTERN)] = None,
    state: Annotated[Literal[ALERT_STATES] | None, Query()] = None,  # type: ignore[valid-type]
    after: Annotated[int, Query(ge=0, le=CURSOR_MAX, description="Alerts after this id")] = 0,
    limit: Annotated[int, Query(ge=1, le=AUDIT_PAGE_MAX)] = 100,
) -> Any:
    """Alerts the monitoring rules raised, oldest first, a page at a time.

    Each names its rule, severity and subject, and cites the decision ids it was raised
    on (look them up at GET /v1/logs). Readable with an auditor or admin token.
    """
    found = service.alerts.query(
        rule=rule, severity=severity, subject=subject, state=state, after=after, limit=limit
    )
    full = len(found) == limit
    return {"alerts": [to_wire(a) for a in found], "next_after": found[-1].id if full else None}


@router.get("/v1/alerts/{alert_id}", response_model=AlertOut, tags=["monitoring"], **V1)
def show_alert(
    service: Served, alert_id: AlertId, actor: Annotated[Principal, Allowed("alerts.read")]
) -> Any:
    """One alert."""
    return to_wire(_alert(lambda: service.alerts.get(alert_id)))


@router.post("/v1/alerts/{alert_id}/ack", response_model=AlertOut, tags=["monitoring"], **V1)
def ack_alert(
    service: Served,
    alert_id: AlertId,
    actor: Annotated[Principal, Allowed("alerts.ack")],
    body: Empty | None = None,
) -> Any:
    """Acknowledge an alert as the token's subject (an admin token); acknowledging twice
    changes nothing."""
    return to_wire(_alert(lambda: service.alerts.ack(alert_id, actor.subject)))


def _alert(find: Callable[[], Alert]) -> Alert:
    try:
        return find()
    except NotFound as e:
        raise ApiError(404, "not_found", str(e), field="alert_id") from e
