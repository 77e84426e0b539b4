"""Decisions: the access check services ask, the audit trail, and the decision log
(OPA's uploads in, recorded decisions out)."""

import gzip
import io
import json
import logging
import time
import zlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ...ledger.decision_log import EVENT_SCHEMA, BadEvent
from ...model import bounded
from ...model.decision import Check
from ...model.errors import StorageUnavailable
from ...store import Store
from ..deps import V1, Allowed, Served, origin
from ..errors import ApiError, JsonRoute
from ..schemas import (
    AUDIT_PAGE_MAX,
    CURSOR_MAX,
    ID_PATTERN,
    AccessCheck,
    AuditPage,
    DecisionOut,
    LogPage,
    Rfc3339,
)
from ..service import Service
from ..tokens import SUBJECT_PATTERN, Principal
from ..wire import audit_event_to_wire, decision_to_wire

router = APIRouter(route_class=JsonRoute)
log = logging.getLogger("datavisa.server")

CHECK = "access.check"  # the check route's operation, authorized in the fast lane too


@router.post(
    "/v1/access/check",
    response_model=DecisionOut,
    response_model_exclude_unset=True,
    tags=["decisions"],
    **V1,
)
async def check(
    service: Served,
    body: AccessCheck,
    actor: Annotated[Principal, Allowed(CHECK)],
    request: Request,
) -> Any:
    """May the subject do this action on this resource from this country, now?

    The answer is OPA's, exactly as `POST /v1/data/datavisa/access/decision` on OPA
    gives it for the same input, with the policy revision beside it. When OPA cannot
    answer in time the answer is a deny with reason `policy_unavailable`. Checks that
    arrive together are asked of OPA together, and recorded in one commit.

    A service token's `location` is what it attests of its subject; a person asking about
    themselves declares it, and the server places them by their address too
    (docs/identity.md, "Location sources").
    """
    return await answer_check(service, body, actor, request.scope)


async def fast_check(service: Service, body: AccessCheck, actor: Principal, scope: Any) -> Any:
    """The check route's work for the fast lane (api/fastlane.py); None leaves a call
    that is to be refused to the route, which says why."""
    if not service.permissions.allows(actor.role, CHECK) or not _may_ask(body, actor):
        return None
    try:
        return await _answer(service, body, actor, scope)
    except (StorageUnavailable, ApiError):  # not answered here: the route says why
        return None


async def answer_check(
    service: Service, body: AccessCheck, actor: Principal, scope: Any
) -> JSONResponse:
    if not _may_ask(body, actor):
        raise ApiError(
            403,
            "forbidden",
            f"only a service token may ask about another subject than {actor.subject}",
            field="subject",
        )
    return await _answer(service, body, actor, scope)


def _may_ask(body: AccessCheck, actor: Principal) -> bool:
    return (body.subject or actor.subject) == actor.subject or actor.is_service


async def _answer(
    service: Service, body: AccessCheck, actor: Principal, scope: Any
) -> JSONResponse:
    subject = body.subject or actor.subject
    started = time.perf_counter()
    where = origin(service, scope, actor, body.location)
    decision = await service.checks(
        Check(
            subject, body.resource, body.action, where.country, body.context, actor.subject,
            origin=where.facts(),
        )
    )  # fmt: skip
    service.metrics.observe(decision, time.perf_counter() - started)
    return JSONResponse(decision_to_wire(decision, service.engine.revision))


@router.get("/v1/audit", response_model=AuditPage, tags=["decisions"], **V1)
def audit_events(
    service: Served,
    actor: Annotated[Principal, Allowed("audit.read")],
    after: Annotated[int, Query(ge=0, le=CURSOR_MAX, description="Events after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=AUDIT_PAGE_MAX)] = 100,
    request_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> Any:
    """The hash-chained audit events, oldest first, a page at a time.

    Every decision asked of the policy is in the decision log, at GET /v1/logs.
    """
    events = _audit_page(service.engine.store, after, limit, request_id)
    full = len(events) == limit
    return {"events": events, "next_after": events[-1]["seq"] if full else None}


# -- the decision log -------------------------------------------------------------


@router.post(
    "/v1/logs",
    status_code=204,
    tags=["decisions"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "array", "items": EVENT_SCHEMA}}},
        }
    },
    **V1,
)
async def ingest_decision_logs(
    service: Served, request: Request, actor: Annotated[Principal, Allowed("logs.upload")]
) -> Response:
    """Take decision-log events uploaded by an OPA's decision-log plugin.

    The body is a JSON array of OPA decision events, gzip-compressed as OPA sends it
    (`Content-Encoding: gzip`) or plain. Each event must have OPA's event shape
    (decision_id a string, timestamp RFC 3339, labels an object of strings, ...), and its
    free-form parts (input, result, ...) must be within the server's `limits`
    (64 KB as JSON and 64 levels each, by default): otherwise the answer is a 422 whose
    `field` names the first bad event's index and field (`3.timestamp`), and nothing of
    the upload is stored. Point an OPA at it with
    `services.datavisa.url: <server>/v1` and `decision_logs.service: datavisa`, with a
    service token as its bearer credential. An event whose decision id is already in
    the log is skipped, so a retried upload lands once.
    """
    events = _decision_events(await request.body(), request.headers)
    limits = service.rules.limits
    try:
        await run_in_threadpool(
            service.engine.log.ingest, events, limits.log_value_bytes, limits.log_value_depth
        )
    except BadEvent as e:
        field = f"{e.index}.{e.field}" if e.field else str(e.index)
        raise ApiError(422, "invalid_input", str(e), field=field) from e
    return Response(status_code=204)


@router.get("/v1/logs", response_model=LogPage, tags=["decisions"], **V1)
def decision_log(
    service: Served,
    actor: Annotated[Principal, Allowed("logs.read")],
    subject: Annotated[str | None, Query(pattern=SUBJECT_PATTERN)] = None,
    resource: Annotated[str | None, Query(max_length=128)] = None,
    result: Annotated[Literal["allow", "deny"] | None, Query()] = None,
    reason: Annotated[str | None, Query(pattern=r"^[a-z_]{1,64}$")] = None,
    grant_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    since: Annotated[Rfc3339 | None, Query(description="RFC 3339, inclusive")] = None,
    until: Annotated[Rfc3339 | None, Query(description="RFC 3339, exclusive")] = None,
    after: Annotated[int, Query(ge=0, le=CURSOR_MAX, description="Records after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=AUDIT_PAGE_MAX)] = 100,
) -> Any:
    """Recorded decisions, oldest first, a page at a time, in OPA's event format.

    Readable with an auditor token.
    """
    events = service.engine.log.query(
        subject=subject,
        resource=resource,
        allow=None if result is None else result == "allow",
        reason=reason,
        grant_id=grant_id,
        since=since.timestamp() if since else None,
        until=until.timestamp() if until else None,
        after=after,
        limit=limit,
    )
    full = len(events) == limit
    return {"events": events, "next_after": events[-1]["seq"] if full else None}


MAX_LOG_UPLOAD_BYTES = 16 * 1024 * 1024  # decompressed; OPA's chunks are far smaller


def _decision_events(body: bytes, headers: Any) -> list[Any]:
    """The events of an upload: gunzipped if need be, bounded, a JSON array."""
    if headers.get("content-encoding", "").lower() == "gzip":
        try:
            body = gzip.GzipFile(fileobj=io.BytesIO(body)).read(MAX_LOG_UPLOAD_BYTES + 1)
        except (OSError, EOFError, zlib.error) as e:
            log.info("a decision-log upload is not valid gzip: %s", e)
            raise ApiError(400, "bad_request", "the body is not valid gzip", field="body") from e
        if len(body) > MAX_LOG_UPLOAD_BYTES:
            raise ApiError(
                413, "body_too_large", "the upload is too large once unzipped", field="body"
            )
    try:
        events = bounded.loads(body)
    except bounded.TooDeep as e:
        field = ".".join(str(step) for step in e.path[:2]) or "body"
        raise ApiError(422, "invalid_input", f"{field}: {e}", field=field) from e
    except ValueError as e:  # the parser's own words stay out; where it stopped helps
        at = f" (it stops making sense at character {e.pos})" if hasattr(e, "pos") else ""
        raise ApiError(400, "bad_request", f"the body is not valid JSON{at}", field="body") from e
    if not isinstance(events, list):
        raise ApiError(422, "invalid", "the body must be a JSON array of events", field="body")
    return events


def _audit_page(
    store: Store, after: int, limit: int, request_id: str | None
) -> list[dict[str, Any]]:
    where, params = "seq > ?", [after]
    if request_id is not None:
        where, params = where + " AND request_id = ?", [after, request_id]
    rows = store.db["audit"].rows_where(where, params, order_by="seq", limit=limit)
    return [audit_event_to_wire({**r, "detail": json.loads(r["detail"])}) for r in rows]
