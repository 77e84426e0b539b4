"""An approver's queue: the pending requests policy lets this person approve, each with
its approval decision, as datavisa.console's `queue` answers them in one evaluation, a
page at a time.

Pages are oldest first and stable: a cursor names the place (creation time and id) of
the last request a page showed, and the next page starts after that place, whether or
not that request is still pending. Policy is asked about the whole pending set, so that
it says how many the approver may act on (the total), but judges in full only the
requests the page shows; which requests are the approver's is policy's answer alone.

The queue is a view: the approval itself is asked and recorded again when the person
approves (Engine.approve), so the queue's own answer is not written to the decision log.
What each request's own decision said of where its requester was (`origin`) is read back
from the decision log, where it was recorded when the request was filed; the requester's
recent grants on the same data are read from the store. Every read is one batched query
for the whole pending set, never one per request (bench/console_bench.py measures it).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from types import SimpleNamespace
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
# What the queue reads of every pending request: what its decision input holds
# (request_input, transfer_input) and its place in the queue's order. The page's own
# requests are then read in full.
INPUT_FIELDS = (
    "id", "requester", "resource", "actions", "duration_s", "location", "kind", "created_at",
    "target_region", "importer", "evidence", "requester_kind", "individuals",
    "sensitive_individuals",
)  # fmt: skip
# How many requests a page shows unless asked otherwise, and at most.
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True)
class Queued:
    """One request in the queue: the record, policy's answer for this approver, and where
    the request's decision placed its requester (None when the log no longer has it)."""

    request: Request
    decision: dict[str, Any]
    origin: dict[str, Any] | None
    recent_grants: list[Request]


@dataclass(frozen=True)
class QueuePage:
    """One page of the queue: its entries, how many requests the approver may act on in
    all, and the cursor of the next page (None on the last)."""

    entries: list[Queued]
    total: int
    next_cursor: str | None


# A cursor: the creation time (epoch seconds, as Python writes a float: exact) and the id
# of the last request a page showed. Every string of this shape names a place in the
# queue's order (one past every request, if need be), so the API takes any that matches.
CURSOR_PATTERN = r"^[0-9]{1,20}(\.[0-9]{1,20})?(e[+-]?[0-9]{1,3})?~[A-Za-z0-9_-]{1,64}$"


def cursor_of(req: Any) -> str:
    """The cursor of the place of `req` in the queue's order."""
    return f"{req.created_at!r}~{req.id}"


def parse_cursor(cursor: str) -> tuple[float, str]:
    """The place a cursor names; ValueError for a string not of CURSOR_PATTERN."""
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise ValueError("not a cursor (next_cursor of an earlier page)")
    at, _, request_id = cursor.partition("~")
    return float(at), request_id


def approval_queue(
    engine: Engine,
    approver: str,
    location: str = "unknown",
    authentication: Identity | None = None,
    origin: Origin | None = None,
    limit: int = DEFAULT_LIMIT,
    after: tuple[float, str] | None = None,
) -> QueuePage:
    """The page of at most `limit` pending requests after the place `after`
    (parse_cursor) that `approver` may approve now, or once signed in again (the entry's
    `step_up`), oldest first; OpaUnavailable when policy gives no queue."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit {limit} is not from 1 to {MAX_LIMIT}")
    location, where = located(location, origin)
    now = engine.clock()
    # Pending by the clock (effective_state: a pending request lapses at pending_until,
    # swept or not), oldest first: created_at, id.
    pending = [
        SimpleNamespace(**row)
        for row in engine.store.request_fields(
            INPUT_FIELDS, "state = ? AND pending_until > ?", [PENDING, now]
        )
    ]
    recorded = engine.store.approvals_of(r.id for r in pending)
    items = [
        {"request": request_input(req), **approved_so_far(recorded.get(req.id, []))}
        for req in pending
    ]
    start = (
        0 if after is None else bisect.bisect_right([(r.created_at, r.id) for r in pending], after)
    )
    asked = {"approver": approver, "approver_location": location, "origin": where}
    asked = engine._signed_in(asked, authentication)
    asked |= {"pending": items, "page": {"start": start, "limit": limit}}
    if engine.opa is None:
        raise OpaUnavailable("no OPA configured")
    result = engine.opa.query(QUEUE, asked).result
    entries = result.get("entries") if isinstance(result, dict) else None
    if (
        not isinstance(entries, list)
        or not all(isinstance(e, dict) and "id" in e for e in entries)
        or not isinstance(result.get("total"), int)
        or not isinstance(result.get("more"), bool)
    ):
        raise OpaUnavailable(f"malformed approval queue from {QUEUE}: {result!r}"[:300])
    ids = [e["id"] for e in entries]
    found = engine.store.requests(f"id IN ({', '.join('?' * len(ids))})", ids) if ids else []
    by_id = {req.id: engine.view(req, now) for req in found}
    shown = [(by_id[e["id"]], e) for e in entries if e["id"] in by_id]
    offered = [req for req, _ in shown]
    logged = engine.log.events([r.decision_id for r in offered if r.decision_id])
    history = _recent_grants(engine, offered)
    return QueuePage(
        [
            Queued(
                req,
                entry,
                _origin(logged.get(req.decision_id or "")),
                history.get((req.requester, req.resource), []),
            )
            for req, entry in shown
        ],
        result["total"],
        cursor_of(offered[-1]) if result["more"] and offered else None,
    )


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
