"""An approver's queue: the pending requests policy lets this person approve, each with
its approval decision, as datavisa.console's `queue` answers them in one evaluation.

The queue is a view: the approval itself is asked and recorded again when the person
approves (Engine.approve), so the queue's own answer is not written to the decision log.
What each request's own decision said of where its requester was (`origin`) is read back
from the decision log, where it was recorded when the request was filed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..identity.oidc import Identity
from ..location.origin import Origin
from ..model.records import PENDING, Request
from ..policy.opa import OpaUnavailable
from .engine import Engine, _located, _request_input

QUEUE = "datavisa/console/queue"


@dataclass(frozen=True)
class Queued:
    """One request in the queue: the record, policy's answer for this approver, and where
    the request's decision placed its requester (None when the log no longer has it)."""

    request: Request
    decision: dict[str, Any]
    origin: dict[str, Any] | None


def approval_queue(
    engine: Engine,
    approver: str,
    location: str = "unknown",
    authentication: Identity | None = None,
    origin: Origin | None = None,
) -> list[Queued]:
    """The pending requests `approver` may approve now, or once signed in again (the
    entry's `step_up`), oldest first; OpaUnavailable when policy gives no queue."""
    location, where = _located(location, origin)
    pending = engine.list_requests(state=PENDING)
    items = []
    for req in pending:
        approvals = engine.approvals(req.id)
        items.append(
            {
                "request": _request_input(req),
                "approvals": [a.approver for a in approvals if a.verdict == "approve"],
                "idp_groups": {
                    a.approver: json.loads(a.idp_groups)
                    for a in approvals
                    if a.verdict == "approve" and a.idp_groups is not None
                },
            }
        )
    asked = {"approver": approver, "approver_location": location, "origin": where}
    asked = engine._signed_in(asked, authentication) | {"pending": items}
    if engine.opa is None:
        raise OpaUnavailable("no OPA configured")
    result = engine.opa.query(QUEUE, asked).result
    if not isinstance(result, list) or not all(isinstance(e, dict) and "id" in e for e in result):
        raise OpaUnavailable(f"malformed approval queue from {QUEUE}: {result!r}"[:300])
    by_id = {req.id: req for req in pending}
    logged = engine.log.events([r.decision_id for r in pending if r.decision_id])
    return [
        Queued(
            by_id[entry["id"]],
            entry,
            _origin(logged.get(by_id[entry["id"]].decision_id or "")),
        )
        for entry in result
        if entry["id"] in by_id
    ]


def _origin(event: dict[str, Any] | None) -> dict[str, Any] | None:
    """Where the request's recorded decision says the requester was, and how it knew."""
    inp = (event or {}).get("input")
    found = inp.get("origin") if isinstance(inp, dict) else None
    return found if isinstance(found, dict) else None
