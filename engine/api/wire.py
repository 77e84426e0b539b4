"""Records as they travel over HTTP: the one place that turns them into JSON and back.

Times are RFC 3339 UTC on the wire and epoch seconds inside the engine; every `float`
field of a record is a time. The server and the remote client both use these functions,
so a record that makes the round trip comes back as the engine made it (to the second).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from functools import cache
from typing import Any

from ..model.decision import Decision
from ..model.durations import parse_rfc3339, rfc3339
from ..model.records import Approval, Request
from .tokens import SUBJECT_PATTERN

# Keys the server adds to a decision beside OPA's own result.
DECISION_EXTRAS = ("decision_id", "revision")


@cache
def _hints(record: type) -> dict[str, Any]:
    return typing.get_type_hints(record)


def time_fields(record: type) -> frozenset[str]:
    """The fields of a record dataclass that hold an instant (epoch seconds)."""
    hints = _hints(record)
    return frozenset(
        f.name
        for f in dataclasses.fields(record)
        if float in (typing.get_args(hints[f.name]) or (hints[f.name],))
    )


@cache
def _field_names(record: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(record))


def to_wire(record: Any) -> dict[str, Any]:
    """A record dataclass (Request, Approval) as JSON-ready values. Its lists and dicts
    are the record's own, not copies (dataclasses.asdict's deep copy was most of an
    approver's queue page): the result is for serialising, not for changing."""
    times = time_fields(type(record))
    out = {name: getattr(record, name) for name in _field_names(type(record))}
    for name in times:
        if out[name] is not None:
            out[name] = rfc3339(out[name])
    return out


def from_wire(record: type, values: dict[str, Any]) -> Any:
    """The record back from its wire form; keys this version does not know are ignored."""
    times = time_fields(record)
    known = {f.name for f in dataclasses.fields(record)}
    kwargs = {
        k: parse_rfc3339(v) if k in times and isinstance(v, str) else v
        for k, v in values.items()
        if k in known
    }
    return record(**kwargs)


def request_from_wire(values: dict[str, Any]) -> Request:
    return from_wire(Request, values)


def approval_from_wire(values: dict[str, Any]) -> Approval:
    return from_wire(Approval, values)


def decision_to_wire(decision: Decision, revision: str) -> dict[str, Any]:
    """OPA's answer as it came, with the decision id and the policy revision beside it."""
    return {**decision.to_dict(), "revision": revision}


def decision_from_wire(values: dict[str, Any]) -> Decision:
    result = {k: v for k, v in values.items() if k not in DECISION_EXTRAS}
    return Decision(
        allow=values["allow"],
        reasons=values["reasons"],
        result=result,
        decision_id=values.get("decision_id"),
    )


def audit_event_to_wire(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "at": rfc3339(event["at"])}


def audit_event_from_wire(values: dict[str, Any]) -> dict[str, Any]:
    return {**values, "at": parse_rfc3339(values["at"])}


def resource_scope(names: str) -> tuple[str, ...]:
    """A sidecar's `resources` (comma-separated, as `opa-config --resources` takes them and
    its grants bundle asks for them) as sorted names; ValueError naming the first that is
    not a resource name."""
    scope = tuple(sorted({name.strip() for name in names.split(",")}))
    for name in scope:
        if not re.fullmatch(SUBJECT_PATTERN, name):
            raise ValueError(f"{name!r} is not a resource name")
    return scope
