"""What travels over the API, as pydantic models: the bodies it takes, the answers it
gives, the error shape, and the checked scalars (countries, durations, names, ids).

FastAPI validates every body and parameter against these before a route runs, and the
OpenAPI document is generated from them.
"""

import contextlib
import dataclasses
import re
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path as PathParam
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    create_model,
)

from ..model import bounded
from ..model.durations import DURATION_PATTERN, WIRE_DIGITS, WIRE_MAX_S, parse_duration
from ..model.records import REVIEW_OUTCOMES, Alert
from ..model.records import Request as RequestRecord
from .limits import current
from .tokens import SUBJECT_PATTERN
from .wire import time_fields

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
AUDIT_PAGE_MAX = 1000
# Cursor ids (seq, alert ids) are SQLite INTEGER / PostgreSQL bigint: signed 64-bit.
CURSOR_MAX = 2**63 - 1
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$"


def _rfc3339(value: Any) -> datetime:
    """A time on the wire: RFC 3339 text with an offset, as the schema says (pydantic's
    own datetime would also take a number of seconds, and none in a strict body)."""
    if isinstance(value, str) and re.match(RFC3339_PATTERN, value):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value.upper())
    raise ValueError("not an RFC 3339 date-time with an offset, e.g. 2026-01-31T09:00:00Z")


def _checked(
    kind: type, check: Callable[[Any], Any], schema: dict[str, Any]
) -> Any:  # an Annotated type
    return Annotated[kind, PlainValidator(check), WithJsonSchema(schema)]


def _country(value: Any) -> str:
    if not isinstance(value, str) or not (value == "unknown" or value in current().countries):
        raise ValueError(
            f"{value!r} is not an ISO 3166 alpha-2 country code the policy knows "
            "(such as DE), nor unknown"
        )
    return value


def _context(value: dict[str, Any] | None) -> dict[str, Any] | None:
    limits = current().limits
    if value is not None and (
        why := bounded.problem(value, limits.context_bytes, limits.context_depth)
    ):
        raise ValueError(why)
    return value


def duration_seconds(value: Any) -> int:
    """A duration on the wire (90s, 1h30m, or whole seconds from 1) in seconds: exactly
    what the schema's DURATION_PATTERN and bounds allow; how long is policy's to judge."""
    if isinstance(value, str) and re.fullmatch(DURATION_PATTERN, value):
        return parse_duration(value)
    if isinstance(value, float) and value.is_integer():  # 311.0 is an integer to JSON
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= WIRE_MAX_S:
        return value
    raise ValueError(
        "a duration is written as 90s, 15m, 1h30m or 2d (units in the order d, h, m, s, "
        f"each once, at most {WIRE_DIGITS} digits), or as whole seconds from 1 to {WIRE_MAX_S}"
    )


# Where a Country goes, the OpenAPI document refers to the enum of the bundle in force
# (`country_schema`; app._openapi puts it in place of this marker).
COUNTRY_MARK = "x-datavisa-country"
Country = _checked(str, _country, {"type": "string", COUNTRY_MARK: True})


def country_schema(countries: frozenset[str]) -> dict[str, Any]:
    """The Country component of the OpenAPI document: the codes the policy bundle the
    server runs knows, so a schema-valid location is one the policy understands."""
    return {
        "type": "string",
        "enum": [*sorted(countries), "unknown"],
        "description": "ISO 3166-1 alpha-2 country code the access comes from, one the "
        "policy bundle in force knows (its `countries`), or unknown",
        "examples": ["DE"],
    }


Duration = _checked(
    int,
    duration_seconds,
    {
        "oneOf": [
            {"type": "string", "pattern": DURATION_PATTERN, "examples": ["1h30m"]},
            {"type": "integer", "minimum": 1, "maximum": WIRE_MAX_S},
        ],
        "description": "90s, 15m, 1h30m, 2d, or whole seconds",
    },
)
Rfc3339 = _checked(
    datetime,
    _rfc3339,
    {"type": "string", "format": "date-time", "examples": ["2026-01-31T09:00:00Z"]},
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
    start_at: Rfc3339 | None = Field(
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
    context: Annotated[dict[str, Any] | None, AfterValidator(_context)] = Field(
        default=None,
        description="Free-form facts about the access, for the decision record: at most "
        "8 KB as compact JSON and 32 levels deep unless the server's `limits` say otherwise",
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
    events: list[dict[str, Any]] = Field(
        description="OPA decision-log events, each with seq. A record nested too deeply to "
        "show, or that does not parse, comes with `unreadable`: the JSON pointers of what "
        'is left out ("" for all but its decision_id, path and timestamp)'
    )
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


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in [
        (400, "Bad input the engine refused, or malformed JSON"),
        (401, "No bearer token, or an unknown or revoked one"),
        (403, "Policy denied (reasons say why), or the token's role may not call this"),
        (404, "No record with that id"),
        (409, "The record's state does not allow this"),
        (413, "The body is larger than the server accepts"),
        (415, "The body is not sent as application/json"),
        (422, "A field has the wrong type or value; `field` names it"),
        (503, "OPA cannot answer, or the API permissions are not loaded from it yet"),
    ]
}
ERRORS[202] = {
    "description": "Recorded, but not yet in force everywhere: the record, with `pending_sinks` "
    "naming where; the engine retries until it is, and /health is unready meanwhile"
}

RequestId = Annotated[
    str,
    PathParam(pattern=ID_PATTERN, description="A request or grant id", examples=["3f9c2a71b0de"]),
]
AlertId = Annotated[int, PathParam(ge=1, le=CURSOR_MAX, description="An alert id", examples=[7])]
