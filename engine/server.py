"""The HTTP decision service behind `datavisa serve`: a FastAPI app over the engine.

Requesters' and approvers' tools drive the lifecycle under /v1/requests and /v1/grants;
services ask POST /v1/access/check. Every /v1 call needs a bearer token, and the acting
subject is always the token's, never a body field. Errors are JSON:
`{"error": {"code", "message", "field"?, "reasons"?}}`; bad input is a 4xx naming the
field and stores nothing. /health, /metrics and /openapi.json need no token.

Alerts raised by the monitoring rules are at /v1/alerts. GET /v1/events is a stream of
server-sent events (`text/event-stream`, bearer token as usual): an `change` event, with
the heads of the decision log, the audit trail and the alerts, whenever one of them moves;
the live dashboard served at / refreshes on it.
"""

import asyncio
import dataclasses
import gzip
import io
import json
import logging
import time
import typing
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    create_model,
)
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from . import __version__
from .config import DEFAULT_MAX_BODY_BYTES
from .decisions import Check
from .durations import parse_duration, rfc3339
from .errors import Conflict, DataVisaError, Denied, NotFound
from .fastlane import FastLane
from .metrics import CONTENT_TYPE
from .monitor import SEVERITIES
from .monitor import STATES as ALERT_STATES
from .opa import OpaUnavailable
from .records import REVIEW_OUTCOMES, STATES, Alert
from .records import Request as RequestRecord
from .store import Store
from .tokens import SUBJECT_PATTERN, Principal
from .wire import audit_event_to_wire, decision_to_wire, time_fields, to_wire

if TYPE_CHECKING:
    from .service import Service

log = logging.getLogger("datavisa.server")

MAX_DURATION_S = 30 * 86400  # a sanity bound on input; policy sets the real maximum
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
COUNTRY_PATTERN = r"^(?:[A-Z]{2}|unknown)$"
AUDIT_PAGE_MAX = 1000


# -- input and output shapes ------------------------------------------------------------


def _checked(
    kind: type, check: Callable[[Any], Any], schema: dict[str, Any]
) -> Any:  # an Annotated type
    return Annotated[kind, PlainValidator(check), WithJsonSchema(schema)]


def _country(value: Any) -> str:
    if not isinstance(value, str) or not (
        value == "unknown" or (len(value) == 2 and value.isascii() and value.isupper())
    ):
        raise ValueError(
            f"{value!r} is not an ISO 3166 alpha-2 country code (such as DE) nor unknown"
        )
    return value


def _duration(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("a duration is a string such as 90s, 15m or 1h30m, or whole seconds")
    try:
        seconds = parse_duration(value) if isinstance(value, str) else value
    except DataVisaError as e:
        raise ValueError(str(e)) from e
    if not 1 <= seconds <= MAX_DURATION_S:
        raise ValueError(f"a duration must be from 1s to {MAX_DURATION_S // 86400}d")
    return seconds


Country = _checked(
    str,
    _country,
    {
        "type": "string",
        "pattern": COUNTRY_PATTERN,
        "description": "ISO 3166 alpha-2 country code the access comes from, or unknown",
        "examples": ["DE"],
    },
)
Duration = _checked(
    int,
    _duration,
    {
        "oneOf": [
            {"type": "string", "pattern": r"^(?:\d+[dhms])+$", "examples": ["1h30m"]},
            {"type": "integer", "minimum": 1, "maximum": MAX_DURATION_S},
        ],
        "description": "90s, 15m, 1h30m, 2d, or whole seconds",
    },
)
Name = Annotated[str, StringConstraints(pattern=SUBJECT_PATTERN)]
Text = Annotated[str, StringConstraints(max_length=2000)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NewRequest(Body):
    resource: Name
    actions: list[Name] = Field(default=["read"], min_length=1, max_length=16)
    duration: Duration
    location: Country
    reason: Text = ""
    start_at: AwareDatetime | None = Field(
        default=None, description="Scheduled start (RFC 3339); leave out to start on approval"
    )
    evidence: list[Name] = Field(default_factory=list, max_length=32)


class BreakGlass(Body):
    resource: Name
    actions: list[Name] = Field(default=["read"], min_length=1, max_length=16)
    duration: Duration
    location: Country
    reason: Text


class Approve(Body):
    location: Country = Field(default="unknown", description="Where the approver is now")


class WithReason(Body):
    reason: Text = ""


class Extend(Body):
    duration: Duration = Field(description="How much longer the grant should last")
    reason: Text = ""


class Review(Body):
    outcome: Literal[REVIEW_OUTCOMES]  # type: ignore[valid-type]
    notes: Annotated[str, StringConstraints(max_length=4000)] = ""


class Empty(Body):
    pass


class AccessCheck(Body):
    subject: Name | None = Field(
        default=None,
        description="Whose access to decide; only service tokens may name another subject. "
        "Defaults to the token's subject.",
    )
    resource: Name
    action: Name
    location: Country
    context: dict[str, Any] | None = Field(
        default=None, description="Free-form facts about the access, for the decision record"
    )


class Reason(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    message: str


class DecisionOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    allow: bool
    reasons: list[Reason]
    grant_id: str | None = None
    expires_at: str | None = None
    decision_id: str | None
    revision: str


class FieldError(BaseModel):
    field: str
    message: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None
    reasons: list[Reason] | None = None
    decision_id: str | None = None
    errors: list[FieldError] | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


class Whoami(BaseModel):
    subject: str
    role: str


class LogPage(BaseModel):
    events: list[dict[str, Any]] = Field(description="OPA decision-log events, each with seq")
    next_after: int | None = Field(description="Pass as `after` for the next page; null at end")


class AuditPage(BaseModel):
    events: list[dict[str, Any]]
    next_after: int | None = Field(description="Pass as `after` for the next page; null at end")


def _wire_model(record: type, name: str) -> type[BaseModel]:
    """A response model with every field of a record dataclass, times as RFC 3339 text."""
    hints = typing.get_type_hints(record)
    times = time_fields(record)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        kind = hints[f.name]
        if f.name in times:
            nullable = type(None) in typing.get_args(kind)
            kind = str | None if nullable else str
        fields[f.name] = (kind, ...)
    return create_model(name, __config__=ConfigDict(extra="allow"), **fields)


RequestOut = _wire_model(RequestRecord, "Request")


class RequestList(BaseModel):
    requests: list[RequestOut]  # type: ignore[valid-type]


AlertOut = _wire_model(Alert, "Alert")


class AlertPage(BaseModel):
    alerts: list[AlertOut]  # type: ignore[valid-type]
    next_after: int | None = Field(description="Pass as `after` for the next page; null at end")


class SweepOut(BaseModel):
    counts: dict[str, int]


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in [
        (400, "Bad input the engine refused, or malformed JSON"),
        (401, "No bearer token, or an unknown or revoked one"),
        (403, "Policy denied (reasons say why), or the token may not do this"),
        (404, "No record with that id"),
        (409, "The record's state does not allow this"),
        (413, "The body is larger than the server accepts"),
        (415, "The body is not sent as application/json"),
        (422, "A field has the wrong type or value; `field` names it"),
    ]
}

AlertId = Annotated[int, PathParam(ge=1, le=2**62, description="An alert id", examples=[7])]
DASHBOARD = Path(__file__).with_name("dashboard")
DASHBOARD_FILES = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
# The dashboard loads nothing from elsewhere and runs no inline script.
DASHBOARD_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
EVENTS_POLL_S = 0.5  # how often /v1/events looks for changes
EVENTS_KEEPALIVE_S = 15.0
EVENTS_MAX_S = 600.0  # then the stream ends and the client reconnects

RequestId = Annotated[
    str,
    PathParam(pattern=ID_PATTERN, description="A request or grant id", examples=["3f9c2a71b0de"]),
]


# -- errors -----------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.extra = status, code, extra


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    detail = {"code": code, "message": message, **{k: v for k, v in extra.items() if v}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


_HTTP_CODES = {
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    return ".".join(parts)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    def api_error(_request: Request, e: ApiError) -> JSONResponse:
        return _error(e.status, e.code, str(e), **e.extra)

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = e.errors()
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if any(err["loc"] == ("body",) for err in errors) and media not in ("", "application/json"):
            return _error(
                415, "unsupported_media_type", "send the body as Content-Type: application/json"
            )
        bad_json = next((err for err in errors if err["type"] == "json_invalid"), None)
        if bad_json is not None:
            why = bad_json.get("ctx", {}).get("error", "")
            return _error(400, "malformed_json", f"the body is not valid JSON: {why}", field="body")
        fields = [
            {"field": _field_name(err["loc"]), "message": err["msg"].removeprefix("Value error, ")}
            for err in errors
        ]
        first = fields[0]
        return _error(
            422,
            "invalid_input",
            f"{first['field']}: {first['message']}",
            field=first["field"],
            errors=fields,
        )

    @app.exception_handler(HTTPException)
    def http_error(_request: Request, e: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(e.status_code, "error")
        return _error(e.status_code, code, str(e.detail))

    @app.exception_handler(DataVisaError)
    def engine_error(_request: Request, e: DataVisaError) -> JSONResponse:
        if isinstance(e, NotFound):
            return _error(404, "not_found", str(e), field="request_id")
        if isinstance(e, Conflict):
            return _error(409, "conflict", str(e))
        if isinstance(e, Denied):
            return _error(
                403,
                "denied",
                str(e),
                reasons=e.decision.reasons,
                decision_id=e.decision.decision_id,
            )
        if isinstance(e.__cause__, OpaUnavailable):
            return _error(503, "policy_unavailable", str(e))
        return _error(400, "invalid", str(e))

    @app.exception_handler(OpaUnavailable)
    def opa_down(_request: Request, e: OpaUnavailable) -> JSONResponse:
        return _error(503, "policy_unavailable", f"no policy decision point: {e}")

    @app.exception_handler(Exception)
    def internal(_request: Request, e: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=e)
        return _error(500, "internal_error", "the server failed; its log says why")


class BodyLimit:
    """Refuses bodies over `max_bytes` (413) whether announced or streamed."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            response = _error(413, "body_too_large", self._message(), field="body")
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Any:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"the body is larger than {self.max_bytes} bytes"


# -- the app ----------------------------------------------------------------------------


def create_app(service: "Service", max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """The FastAPI app serving `service`; run it with uvicorn (see `serve`)."""
    app = FastAPI(
        title="DataVisa",
        version=__version__,
        summary="Just-in-time, data-residency-aware access approval, decided by OPA.",
        description=__doc__,
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    _install_error_handlers(app)
    engine, metrics = service.engine, service.metrics
    bearer = HTTPBearer(auto_error=False, description="A token from `datavisa token issue`")

    async def authenticate(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        # On the event loop: one indexed read, cheaper than a hop to a worker thread.
        if credentials is None:
            raise ApiError(401, "unauthenticated", "send a token: Authorization: Bearer TOKEN")
        principal = service.tokens.verify(credentials.credentials)
        if principal is None:
            raise ApiError(401, "unauthenticated", "the bearer token is unknown or revoked")
        return principal

    Actor = Annotated[Principal, Depends(authenticate)]
    v1: dict[str, Any] = {"responses": _ERRORS}

    # -- requests ---------------------------------------------------------------------

    @app.post("/v1/requests", status_code=201, response_model=RequestOut, tags=["requests"], **v1)
    def create_request(body: NewRequest, actor: Actor) -> Any:
        """Ask for access; policy says how long, and who must approve."""
        start_at = body.start_at.timestamp() if body.start_at else None
        return to_wire(
            engine.request(
                actor.subject,
                body.resource,
                body.actions,
                body.duration,
                body.location,
                body.reason,
                start_at=start_at,
                evidence=body.evidence,
            )
        )

    @app.get("/v1/requests", response_model=RequestList, tags=["requests"], **v1)
    def list_requests(
        actor: Actor,
        state: Annotated[Literal[tuple(sorted(STATES))] | None, Query()] = None,  # type: ignore[valid-type]
        requester: Annotated[Name | None, Query()] = None,
        overdue: Annotated[bool, Query(description="Only break-glass overdue review")] = False,
    ) -> Any:
        """Requests and grants, oldest first, in the state the clock says they are in."""
        reqs = engine.list_requests(state=state, requester=requester, overdue=overdue)
        return {"requests": [to_wire(r) for r in reqs]}

    @app.get("/v1/requests/{request_id}", response_model=RequestOut, tags=["requests"], **v1)
    def show_request(request_id: RequestId, actor: Actor) -> Any:
        """One request or grant."""
        return to_wire(engine.get(request_id))

    @app.get("/v1/requests/{request_id}/approvals", tags=["requests"], **v1)
    def list_approvals(request_id: RequestId, actor: Actor) -> dict[str, Any]:
        """The approvals and denials recorded on a request."""
        engine.get(request_id)
        return {"approvals": [to_wire(a) for a in engine.approvals(request_id)]}

    @app.post(
        "/v1/requests/{request_id}/approve", response_model=RequestOut, tags=["requests"], **v1
    )
    def approve(request_id: RequestId, actor: Actor, body: Approve | None = None) -> Any:
        """Approve as the token's subject; the grant activates when the quorum is met."""
        body = body or Approve()
        return to_wire(engine.approve(request_id, actor.subject, body.location))

    @app.post("/v1/requests/{request_id}/deny", response_model=RequestOut, tags=["requests"], **v1)
    def deny(request_id: RequestId, actor: Actor, body: WithReason | None = None) -> Any:
        """Deny a pending request; one deny ends it."""
        return to_wire(engine.deny(request_id, actor.subject, (body or WithReason()).reason))

    @app.post(
        "/v1/requests/{request_id}/cancel", response_model=RequestOut, tags=["requests"], **v1
    )
    def cancel(request_id: RequestId, actor: Actor, body: Empty | None = None) -> Any:
        """The requester withdraws a request that is not active yet."""
        return to_wire(engine.cancel(request_id, actor.subject))

    @app.post("/v1/break-glass", status_code=201, response_model=RequestOut, tags=["grants"], **v1)
    def break_glass(body: BreakGlass, actor: Actor) -> Any:
        """Self-activate an emergency grant at once; a review is due afterwards."""
        return to_wire(
            engine.break_glass(
                actor.subject,
                body.resource,
                body.actions,
                body.duration,
                body.location,
                body.reason,
            )
        )

    # -- grants -----------------------------------------------------------------------

    @app.post("/v1/grants/{request_id}/activate", response_model=RequestOut, tags=["grants"], **v1)
    def activate(request_id: RequestId, actor: Actor, body: Empty | None = None) -> Any:
        """Start an approved grant that was scheduled to start later."""
        return to_wire(engine.activate(request_id, actor.subject))

    @app.post("/v1/grants/{request_id}/revoke", response_model=RequestOut, tags=["grants"], **v1)
    def revoke(request_id: RequestId, actor: Actor, body: WithReason | None = None) -> Any:
        """End a grant now; when this answers, access checks already deny it."""
        return to_wire(engine.revoke(request_id, actor.subject, (body or WithReason()).reason))

    @app.post(
        "/v1/grants/{request_id}/relinquish", response_model=RequestOut, tags=["grants"], **v1
    )
    def relinquish(request_id: RequestId, actor: Actor, body: Empty | None = None) -> Any:
        """The requester gives a grant back early."""
        return to_wire(engine.relinquish(request_id, actor.subject))

    @app.post("/v1/grants/{request_id}/extend", response_model=RequestOut, tags=["grants"], **v1)
    def extend(request_id: RequestId, body: Extend, actor: Actor) -> Any:
        """Ask for more time; answers the extension request (applied at once when policy
        needs no approval)."""
        return to_wire(engine.extend(request_id, actor.subject, body.duration, body.reason))

    @app.post("/v1/grants/{request_id}/review", response_model=RequestOut, tags=["grants"], **v1)
    def review(request_id: RequestId, body: Review, actor: Actor) -> Any:
        """Record the post-hoc review of a break-glass grant."""
        return to_wire(engine.review(request_id, actor.subject, body.outcome, body.notes))

    @app.post("/v1/sweep", response_model=SweepOut, tags=["grants"], **v1)
    def sweep(actor: Actor) -> Any:
        """Write down the expiries and lapses time has decided (the server also does
        this on its own, every `sweep_every`)."""
        return {"counts": engine.sweep()}

    # -- decisions --------------------------------------------------------------------

    @app.post(
        "/v1/access/check",
        response_model=DecisionOut,
        response_model_exclude_unset=True,
        tags=["decisions"],
        **v1,
    )
    async def check(body: AccessCheck, actor: Actor) -> Any:
        """May the subject do this action on this resource from this country, now?

        The answer is OPA's, exactly as `POST /v1/data/datavisa/access/decision` on OPA
        gives it for the same input, with the policy revision beside it. When OPA cannot
        answer in time the answer is a deny with reason `policy_unavailable`. Checks that
        arrive together are asked of OPA together, and recorded in one commit.
        """
        subject = body.subject or actor.subject
        if subject != actor.subject and not actor.is_service:
            raise ApiError(
                403,
                "forbidden",
                f"only a service token may ask about another subject than {actor.subject}",
                field="subject",
            )
        started = time.perf_counter()
        decision = await service.checks(
            Check(subject, body.resource, body.action, body.location, body.context, actor.subject)
        )
        metrics.observe(decision, time.perf_counter() - started)
        return JSONResponse(decision_to_wire(decision, engine.revision))

    FastLane(_hot_route(app, "/v1/access/check"), AccessCheck, check, service.tokens.verify)

    @app.get("/v1/audit", response_model=AuditPage, tags=["decisions"], **v1)
    def audit_events(
        actor: Actor,
        after: Annotated[int, Query(ge=0, le=2**62, description="Events after this seq")] = 0,
        limit: Annotated[int, Query(ge=1, le=AUDIT_PAGE_MAX)] = 100,
        request_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    ) -> Any:
        """The hash-chained audit events, oldest first, a page at a time.

        Every decision asked of the policy is in the decision log, at GET /v1/logs.
        """
        events = _audit_page(engine.store, after, limit, request_id)
        full = len(events) == limit
        return {"events": events, "next_after": events[-1]["seq"] if full else None}

    # -- the decision log -------------------------------------------------------------

    @app.post("/v1/logs", status_code=204, tags=["decisions"], **v1)
    async def ingest_decision_logs(request: Request, actor: Actor) -> Response:
        """Take decision-log events uploaded by an OPA's decision-log plugin.

        The body is a JSON array of OPA decision events, gzip-compressed as OPA sends it
        (`Content-Encoding: gzip`) or plain. Point an OPA at it with
        `services.datavisa.url: <server>/v1` and `decision_logs.service: datavisa`, with a
        service token as its bearer credential. An event whose decision id is already in
        the log is skipped, so a retried upload lands once.
        """
        if not actor.is_service:
            raise ApiError(403, "forbidden", "only a service token may upload decision logs")
        events = _decision_events(await request.body(), request.headers)
        await run_in_threadpool(engine.log.ingest, events)
        return Response(status_code=204)

    @app.get("/v1/logs", response_model=LogPage, tags=["decisions"], **v1)
    def decision_log(
        actor: Actor,
        subject: Annotated[str | None, Query(pattern=SUBJECT_PATTERN)] = None,
        resource: Annotated[str | None, Query(max_length=128)] = None,
        result: Annotated[Literal["allow", "deny"] | None, Query()] = None,
        reason: Annotated[str | None, Query(pattern=r"^[a-z_]{1,64}$")] = None,
        grant_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
        since: Annotated[AwareDatetime | None, Query(description="RFC 3339, inclusive")] = None,
        until: Annotated[AwareDatetime | None, Query(description="RFC 3339, exclusive")] = None,
        after: Annotated[int, Query(ge=0, le=2**62, description="Records after this seq")] = 0,
        limit: Annotated[int, Query(ge=1, le=AUDIT_PAGE_MAX)] = 100,
    ) -> Any:
        """Recorded decisions, oldest first, a page at a time, in OPA's event format.

        Readable with a service or auditor token.
        """
        if not actor.reads_decision_log:
            raise ApiError(403, "forbidden", "the decision log is for service and auditor tokens")
        events = engine.log.query(
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

    # -- monitoring -------------------------------------------------------------------

    def alert_reader(actor: Principal) -> None:
        if not actor.reads_decision_log:
            raise ApiError(403, "forbidden", "alerts are for service and auditor tokens")

    @app.get("/v1/alerts", response_model=AlertPage, tags=["monitoring"], **v1)
    def list_alerts(
        actor: Actor,
        rule: Annotated[str | None, Query(pattern=r"^[a-z_]{1,64}$")] = None,
        severity: Annotated[Literal[SEVERITIES] | None, Query()] = None,  # type: ignore[valid-type]
        subject: Annotated[str | None, Query(pattern=SUBJECT_PATTERN)] = None,
        state: Annotated[Literal[ALERT_STATES] | None, Query()] = None,  # type: ignore[valid-type]
        after: Annotated[int, Query(ge=0, le=2**62, description="Alerts after this id")] = 0,
        limit: Annotated[int, Query(ge=1, le=AUDIT_PAGE_MAX)] = 100,
    ) -> Any:
        """Alerts the monitoring rules raised, oldest first, a page at a time.

        Each names its rule, severity and subject, and cites the decision ids it was raised
        on (look them up at GET /v1/logs). Readable with a service or auditor token.
        """
        alert_reader(actor)
        found = service.alerts.query(
            rule=rule, severity=severity, subject=subject, state=state, after=after, limit=limit
        )
        full = len(found) == limit
        return {"alerts": [to_wire(a) for a in found], "next_after": found[-1].id if full else None}

    @app.get("/v1/alerts/{alert_id}", response_model=AlertOut, tags=["monitoring"], **v1)
    def show_alert(alert_id: AlertId, actor: Actor) -> Any:
        """One alert."""
        alert_reader(actor)
        return to_wire(_alert(lambda: service.alerts.get(alert_id)))

    @app.post("/v1/alerts/{alert_id}/ack", response_model=AlertOut, tags=["monitoring"], **v1)
    def ack_alert(alert_id: AlertId, actor: Actor, body: Empty | None = None) -> Any:
        """Acknowledge an alert as the token's subject; acknowledging twice changes nothing."""
        alert_reader(actor)
        return to_wire(_alert(lambda: service.alerts.ack(alert_id, actor.subject)))

    @app.get("/v1/events", include_in_schema=False)
    async def events(request: Request, actor: Actor) -> StreamingResponse:
        """Server-sent events: `change` with the heads whenever the data moves."""

        async def stream() -> AsyncIterator[str]:
            last, quiet, started = None, 0.0, time.monotonic()
            yield "retry: 2000\n\n"
            while time.monotonic() - started < EVENTS_MAX_S and not service.closing.is_set():
                if await request.is_disconnected():
                    return
                heads = await run_in_threadpool(service.heads)
                if heads != last:
                    data = json.dumps({**heads, "now": rfc3339(time.time())})
                    yield f"event: change\ndata: {data}\n\n"
                    last, quiet = heads, 0.0
                elif quiet >= EVENTS_KEEPALIVE_S:
                    yield ": keep-alive\n\n"
                    quiet = 0.0
                await asyncio.sleep(EVENTS_POLL_S)
                quiet += EVENTS_POLL_S

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- the dashboard ----------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        """The live dashboard; it asks for a token and reads the API with it."""
        return FileResponse(DASHBOARD / "index.html", headers=DASHBOARD_HEADERS)

    @app.get("/dashboard/{name}", include_in_schema=False)
    def dashboard_file(name: str) -> FileResponse:
        if name not in DASHBOARD_FILES:
            raise ApiError(404, "not_found", f"no dashboard file {name!r}")
        return FileResponse(
            DASHBOARD / name, media_type=DASHBOARD_FILES[name], headers=DASHBOARD_HEADERS
        )

    @app.get("/v1/whoami", response_model=Whoami, tags=["tokens"], **v1)
    def whoami(actor: Actor) -> Any:
        """The subject and role the bearer token stands for."""
        return {"subject": actor.subject, "role": actor.role}

    # -- operations -------------------------------------------------------------------

    @app.get("/health", tags=["operations"])
    def health() -> JSONResponse:
        """Ready (200) only when OPA answers with its bundle active and holds the grants."""
        problems = service.problems()
        body = {
            "status": "unready" if problems else "ready",
            "problems": problems,
            "revision": engine.revision,
        }
        return JSONResponse(body, status_code=503 if problems else 200)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def prometheus() -> Response:
        """Counters and gauges in the Prometheus text format."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return app


def _hot_route(app: FastAPI, path: str) -> APIRoute:
    """The route at `path`, moved to the front: the router tries routes in order."""
    route = next(r for r in app.router.routes if isinstance(r, APIRoute) and r.path == path)
    app.router.routes.remove(route)
    app.router.routes.insert(0, route)
    return route


def _alert(find: Callable[[], Alert]) -> Alert:
    try:
        return find()
    except NotFound as e:
        raise ApiError(404, "not_found", str(e), field="alert_id") from e


MAX_LOG_UPLOAD_BYTES = 16 * 1024 * 1024  # decompressed; OPA's chunks are far smaller


def _decision_events(body: bytes, headers: Any) -> list[Any]:
    """The events of an upload: gunzipped if need be, bounded, a JSON array."""
    if headers.get("content-encoding", "").lower() == "gzip":
        try:
            body = gzip.GzipFile(fileobj=io.BytesIO(body)).read(MAX_LOG_UPLOAD_BYTES + 1)
        except (OSError, EOFError) as e:
            raise ApiError(
                400, "bad_request", f"the body is not valid gzip: {e}", field="body"
            ) from e
        if len(body) > MAX_LOG_UPLOAD_BYTES:
            raise ApiError(
                413, "body_too_large", "the upload is too large once unzipped", field="body"
            )
    try:
        events = json.loads(body)
    except ValueError as e:
        raise ApiError(400, "bad_request", f"the body is not JSON: {e}", field="body") from e
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
