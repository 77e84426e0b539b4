"""An approver's queue: the pending requests policy lets this person approve, each with
its approval decision, as datavisa.console's `queue` answers them in one evaluation.

The queue is a view: the approval itself is asked and recorded again when the person
approves (Engine.approve), so the queue's own answer is not written to the decision log.
What each request's own decision said of where its requester was (`origin`) is read back
from the decision log, where it was recorded when the request was filed; the requester's
recent grants on the same data are read from the store. Every read is one batched query
for the whole pending set, never one per request (bench/console_bench.py measures it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..identity.oidc import Identity
from ..location.origin import Origin
from ..model.records import PENDING, Request
from ..policy.opa import OpaUnavailable
from .engine import Engine, approved_so_far, located, request_input

QUEUE = "datavisa/console/queue"
# What the queue shows of a requester's history on the same data: the newest few grants
# of the last 90 days (what the approver reads, not what policy judges).
RECENT_S = 90 * 86400
RECENT_MAX = 5


@dataclass(frozen=True)
class Queued:
    """One request in the queue: the record, policy's answer for this approver, and where
    the request's decision placed its requester (None when the log no longer has it)."""

    request: Request
    decision: dict[str, Any]
    origin: dict[str, Any] | None
    recent_grants: list[Request]


def approval_queue(
    engine: Engine,
    approver: str,
    location: str = "unknown",
    authentication: Identity | None = None,
    origin: Origin | None = None,
) -> list[Queued]:
    """The pending requests `approver` may approve now, or once signed in again (the
    entry's `step_up`), oldest first; OpaUnavailable when policy gives no queue."""
    location, where = located(location, origin)
    pending = engine.list_requests(state=PENDING)
    recorded = engine.store.approvals_of(r.id for r in pending)
    items = []
    for req in pending:
        items.append({"request": request_input(req), **approved_so_far(recorded.get(req.id, []))})
    asked = {"approver": approver, "approver_location": location, "origin": where}
    asked = engine._signed_in(asked, authentication) | {"pending": items}
    if engine.opa is None:
        raise OpaUnavailable("no OPA configured")
    result = engine.opa.query(QUEUE, asked).result
    if not isinstance(result, list) or not all(isinstance(e, dict) and "id" in e for e in result):
        raise OpaUnavailable(f"malformed approval queue from {QUEUE}: {result!r}"[:300])
    by_id = {req.id: req for req in pending}
    offered = [by_id[entry["id"]] for entry in result if entry["id"] in by_id]
    logged = engine.log.events([r.decision_id for r in offered if r.decision_id])
    history = _recent_grants(engine, offered)
    return [
        Queued(
            by_id[entry["id"]],
            entry,
            _origin(logged.get(by_id[entry["id"]].decision_id or "")),
            history.get((by_id[entry["id"]].requester, by_id[entry["id"]].resource), []),
        )
        for entry in result
        if entry["id"] in by_id
    ]


def _recent_grants(engine: Engine, offered: list[Request]) -> dict[tuple[str, str], list[Request]]:
    """Each (requester, resource) of `offered`'s grants of the last RECENT_S, newest
    first, RECENT_MAX at most: one query for the whole queue."""
    pairs = {(r.requester, r.resource) for r in offered}
    if not pairs:
        return {}
    people, resources = sorted({p for p, _ in pairs}), sorted({r for _, r in pairs})
    where = (
        f"requester IN ({', '.join('?' * len(people))}) "
        f"AND resource IN ({', '.join('?' * len(resources))}) "
        "AND approved_at IS NOT NULL AND created_at >= ?"
    )
    now = engine.clock()
    found: dict[tuple[str, str], list[Request]] = {}
    for req in engine.store.requests(
        where, [*people, *resources, now - RECENT_S], order_by="created_at DESC, id DESC"
    ):
        kept = found.setdefault((req.requester, req.resource), [])
        if (req.requester, req.resource) in pairs and len(kept) < RECENT_MAX:
            kept.append(engine.view(req, now))
    return found


def _origin(event: dict[str, Any] | None) -> dict[str, Any] | None:
    """Where the request's recorded decision says the requester was, and how it knew."""
    inp = (event or {}).get("input")
    found = inp.get("origin") if isinstance(inp, dict) else None
    return found if isinstance(found, dict) else None
