"""Impact before merge: what a new policy would decide differently about what is live.

`impact` asks, under the current policy and under a new one, the access decision for every
live grant (each action it gives, from each country it allows) and the request decision
for every pending request, and lists each answer that differs: grants that would stop (or
start) allowing, from where; requests that would be refused, or need other approvers.
Transfers are judged by their own decisions: an open one by the pipeline's check
(`transfer_check`), a pending one by `transfer_request`. Both policies answer through
`whatif.evaluate_many`, with the same live grants, at the same instant.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..model.decision import Decision
from ..model.records import ACTIVE, PENDING, TRANSFER_KIND, Request
from ..policy.whatif import evaluate_many
from ..store import Store
from .filings import open_deadlines
from .grants import live_grants
from .transfers import check_input, overdue_deletions, request_input


@dataclass(frozen=True)
class Sources:
    """The sources of one policy: its Rego and its bundle data."""

    policy_dir: Path
    bundle_dir: Path


@dataclass(frozen=True)
class Change:
    """One answer the new policy gives differently."""

    kind: str  # access | request | transfer_check | transfer_request
    request_id: str
    subject: str
    resource: str
    asked: dict[str, Any]  # what was asked (action and location, or the request)
    before: dict[str, Any]  # the current answer, in short
    after: dict[str, Any]  # the new answer, in short


def impact(store: Store, current: Sources, new: Sources, at: float | None = None) -> list[Change]:
    """Every live grant and pending request whose decision differs under `new`."""
    at = time.time() if at is None else at
    grants = live_grants(store)
    live = [r for r in store.requests("state = ?", [ACTIVE]) if (r.expires_at or 0) > at]
    pending = [r for r in store.requests("state = ?", [PENDING]) if r.pending_until > at]
    checks = [
        (grant, {"subject": grant.requester, "resource": grant.resource, "action": action,
                 "location": country})
        for grant in live
        for action in grant.actions
        for country in grant.countries
    ]  # fmt: skip
    transfers = [r for r in live if r.kind == TRANSFER_KIND]
    checks = [(grant, input) for grant, input in checks if grant.kind != TRANSFER_KIND]
    filings = open_deadlines(store)
    requests = [
        (req, _request_input(req) | {"filing_deadlines": filings})
        for req in pending
        if req.kind != TRANSFER_KIND
    ]
    copies = [(t, check_input([t], t.resource, t.target_region, t.importer)) for t in transfers]
    asks = [
        (t, request_input(
            t.requester, t.resource, t.target_region, t.duration_s, t.reason, t.importer,
            t.retention_s, t.evidence, overdue_deletions(store, t.requester, at),
            t.requester_kind,
        ) | {"filing_deadlines": filings})
        for t in pending
        if t.kind == TRANSFER_KIND
    ]  # fmt: skip
    changes = []
    for kind, asked, short in (
        ("access", checks, _access),
        ("request", requests, _request),
        ("transfer_check", copies, _access),
        ("transfer_request", asks, _request),
    ):
        inputs = [input for _, input in asked]
        answers = [_judge(kind, inputs, at, grants, sources) for sources in (current, new)]
        for (req, input), before, after in zip(asked, *answers, strict=True):
            if short(before) != short(after):
                change = Change(
                    kind, req.id, req.requester, req.resource, input, short(before), short(after)
                )
                changes.append(change)
    return changes


def _judge(
    kind: str,
    inputs: list[dict[str, Any]],
    at: float,
    grants: dict[str, dict[str, Any]],
    sources: Sources,
) -> list[Decision]:
    return evaluate_many(
        kind, inputs, at=at, grants=grants, policy_dir=sources.policy_dir,
        bundle_dir=sources.bundle_dir,
    )  # fmt: skip


def _request_input(req: Request) -> dict[str, Any]:
    return {
        "subject": req.requester, "resource": req.resource, "actions": req.actions,
        "duration_s": req.duration_s, "location": req.location, "reason": req.reason,
        "evidence": req.evidence,
    }  # fmt: skip


def _codes(decision: Decision) -> list[str]:
    return sorted(decision.codes)


def _access(decision: Decision) -> dict[str, Any]:
    return {"allow": decision.allow, "reasons": _codes(decision)}


def _request(decision: Decision) -> dict[str, Any]:
    return {
        "allow": decision.allow,
        "reasons": _codes(decision),
        "approvals_required": decision.result.get("approvals_required"),
    }
