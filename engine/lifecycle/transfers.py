"""Transfers: approved, time-bounded copy jobs, a kind of request on the one lifecycle.

A transfer asks to copy a resource's data to a target region (for an importer, the
entity operating it) within a window; it is filed, approved, denied, cancelled, revoked,
relinquished, lapses and expires exactly as an access request does (engine.py: the same
state machine, quorum, audit chain and decision log), only its verdicts come from the
transfer decisions (rego/datavisa/transfer_request, transfer_check). While it is active,
a pipeline's check (`Transfers.check`) allows the copy that it covers exactly, judged
again by the current policy at every check. A copy kept for a limited time must be
reported deleted (`Transfers.deleted`) by `delete_by` (activation plus its retention);
until it is, the requester's transfers of data under the same localisation are refused
(policy decides which), and the monitor raises `deletion_overdue`.

Transfers are enforced by the check, not by a grant sink: they never enter the grant
outbox nor OPA's data.grants, so they can never allow an access check.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from ..model.decision import Decision
from ..model.durations import epoch_ns
from ..model.errors import Conflict, DataVisaError, Denied, NotFound
from ..model.records import (
    ACTIVE,
    APPROVED,
    FINAL,
    PENDING,
    TRANSFER_KIND,
    Request,
    effective_state,
)
from ..policy.decide import TRANSFER_CHECK, TRANSFER_REQUEST
from ..store import Store
from .exports import count_exports, counts_before, export_counts
from .filings import open_deadlines

COPY = "copy"  # the one action of a transfer


class Lifecycle(Protocol):
    """What a transfer drives of the one lifecycle it is a kind of request on (the
    engine's own steps: engine.py provides them)."""

    store: Store
    revision: str

    def clock(self) -> float: ...

    def list_requests(
        self, state: str | None = None, requester: str | None = None
    ) -> list[Request]: ...

    def decide(self, path: str, input: dict[str, Any], caller: str | None = None) -> Decision: ...

    def _new_request(
        self, decision: Decision, now: float, requester: str, resource: str, actions: list[str],
        duration_s: int, location: str, reason: str, **fields: Any,
    ) -> Request: ...  # fmt: skip

    def audit_event(
        self, now: float, actor: str, event: str, req: Request, decision: Decision | None,
        detail: dict[str, Any],
    ) -> None: ...  # fmt: skip

    def _quorum_met(self, req: Request, now: float, actor: str) -> Request: ...

    def _in_force(self, req: Request) -> None: ...

    def _permit(self, actor: str, action: str, req: Request) -> Decision: ...

    def view(self, req: Request, now: float) -> Request: ...


class Transfers:
    """The transfer verbs (`engine.transfers`): they file, check and close transfers on
    the lifecycle they are given."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle

    def request(
        self,
        requester: str,
        resource: str,
        target_region: str,
        duration_s: int,
        reason: str = "",
        importer: str | None = None,
        retention_s: int | None = None,
        evidence: list[str] | None = None,
        start_at: float | None = None,
        requester_kind: str | None = None,
        individuals: int | None = None,
        sensitive_individuals: int | None = None,
    ) -> Request:
        """Ask to copy `resource` to `target_region` within a window of `duration_s`
        seconds, the copy kept `retention_s` seconds (None: for ever). Opens at once when
        policy needs no approval. `requester_kind` foreign_public_authority: the copy is
        a foreign authority's request (policy knows the kinds). `individuals` and
        `sensitive_individuals`: how many individuals' personal information the copy
        carries, and of those with sensitive personal information (China's export route
        is picked by its exporter's yearly count of them, exports.py)."""
        lifecycle = self._lifecycle
        now = lifecycle.clock()
        overdue = overdue_deletions(lifecycle.store, requester, now)
        evidence = sorted(set(evidence or []))
        importer, requester_kind = importer or None, requester_kind or None
        asked = request_input(
            requester, resource, target_region, duration_s, reason, importer, retention_s,
            evidence, overdue, requester_kind, individuals, sensitive_individuals,
        )  # fmt: skip
        if start_at is not None:  # how far ahead it may start is policy's
            asked["start_in_s"] = start_at - now
        asked["filing_deadlines"] = open_deadlines(lifecycle.store)
        asked["export_counts"] = counted = export_counts(lifecycle.store)
        decision = lifecycle.decide(TRANSFER_REQUEST, asked)
        if not decision.allow:
            raise Denied("transfer refused", decision)
        policy = decision.result
        req = lifecycle._new_request(
            decision, now, requester, resource, [COPY], duration_s, policy["countries"][0], reason,
            pending_until=now + policy["pending_lifetime_s"],
            approvals_required=policy["approvals_required"],
            evidence=evidence,
            start_at=start_at,
            activation_deadline_s=policy["activation_deadline_s"],
            kind=TRANSFER_KIND,
            target_region=target_region,
            importer=importer,
            retention_s=retention_s,
            requester_kind=requester_kind,
            filings=list(policy.get("filings", [])),
            individuals=individuals,
            sensitive_individuals=sensitive_individuals,
        )  # fmt: skip
        with lifecycle.store.transaction() as db:
            if overdue_deletions(lifecycle.store, requester, lifecycle.clock()) != overdue:
                raise Conflict(f"a deletion of {requester}'s fell due meanwhile; try again")
            _refuse_duplicate(lifecycle.store, req, now)
            db["requests"].insert(req.to_row())
            lifecycle.audit_event(
                now,
                requester,
                "transfer_requested",
                req,
                decision,
                {"policy": policy, "target_region": target_region, "importer": importer},
            )
            if policy["quorum_met"]:  # approved at once: it counts now
                count_exports(
                    lifecycle.store, req, list(policy.get("exports", [])), counted, now,
                    requester, decision.decision_id, lifecycle.revision,
                )  # fmt: skip
                lifecycle._quorum_met(req, now, requester)
        lifecycle._in_force(req)
        return req

    def check(
        self,
        transfer_id: str | None = None,
        resource: str | None = None,
        target_region: str | None = None,
        importer: str | None = None,
        caller: str | None = None,
    ) -> Decision:
        """May the copy run now? By transfer id, or by resource and target region (and
        importer): allowed only while an approved transfer covers exactly that, inside its
        window by OPA's clock, and the copy is still lawful under the current policy.
        Recorded in the decision log as `caller`'s question."""
        asked = self.check_asked(transfer_id, resource, target_region, importer)
        return self._lifecycle.decide(TRANSFER_CHECK, asked, caller=caller)

    def check_asked(
        self,
        transfer_id: str | None = None,
        resource: str | None = None,
        target_region: str | None = None,
        importer: str | None = None,
    ) -> dict[str, Any]:
        """The input of `check`'s decision: the transfers the store holds active that the
        check names (by id, or by resource and target region)."""
        lifecycle = self._lifecycle
        if transfer_id is not None:
            named = lifecycle.store.get(transfer_id)
            held = [named] if named is not None and named.kind == TRANSFER_KIND else []
            if held:
                resource, target_region, importer = (
                    held[0].resource,
                    held[0].target_region,
                    held[0].importer,
                )
            held = [t for t in held if t.state == ACTIVE]
        elif resource is None or target_region is None:
            raise DataVisaError("name the transfer, or its resource and target region")
        else:
            held = lifecycle.store.requests(
                "kind = ? AND resource = ? AND target_region = ? AND state = ?",
                [TRANSFER_KIND, resource, target_region, ACTIVE],
            )
        return check_input(held, resource, target_region, importer, transfer_id)

    def deleted(self, transfer_id: str, actor: str) -> Request:
        """Record that the copy a transfer made is deleted (its requester, or a pipeline
        of the data's team, says so; policy decides who may)."""
        lifecycle = self._lifecycle
        decision = lifecycle._permit(
            actor, "report_deletion", _deletable(lifecycle.store, transfer_id)
        )
        with lifecycle.store.transaction():
            now = lifecycle.clock()
            req = _deletable(lifecycle.store, transfer_id)
            changes = {"deleted_at": now, "deleted_by": actor}
            lifecycle.store.update(req.id, changes)
            req = dataclasses.replace(req, **changes)
            late = req.delete_by is not None and now > req.delete_by
            detail = {"due": req.delete_by, "late": late}
            lifecycle.audit_event(now, actor, "copy_deleted", req, decision, detail)
        return lifecycle.view(req, now)

    def counts(self) -> list[dict[str, Any]]:
        """The export counts: per counter, exporter and calendar year, the individuals the
        transfers approved carried (exports.py), with when each last grew."""
        return self._lifecycle.store.export_counts()

    def list(
        self, state: str | None = None, requester: str | None = None, overdue: bool = False
    ) -> list[Request]:
        """Transfers oldest first; `overdue`: those whose copy is past its deletion
        deadline and not reported deleted."""
        lifecycle = self._lifecycle
        now = lifecycle.clock()
        return [
            r
            for r in lifecycle.list_requests(state, requester)
            if r.kind == TRANSFER_KIND and (not overdue or _is_overdue(r, now))
        ]


def deletion_deadline(req: Request, now: float) -> dict[str, float]:
    """The changes activating `req` at `now` makes beside expiry: a transfer's copy kept
    for a limited time must be reported deleted by activation plus its retention."""
    if req.kind != TRANSFER_KIND or req.retention_s is None:
        return {}
    return {"delete_by": now + req.retention_s}


def transfer_input(req: Request) -> dict[str, Any]:
    """What the approval and lifecycle decisions are told of a transfer beside the
    request's common fields (nothing for other kinds)."""
    if req.kind != TRANSFER_KIND:
        return {}
    return {
        "target_region": req.target_region,
        "importer": req.importer or "",
        **_declared(req.requester_kind, req.individuals, req.sensitive_individuals),
    }


def _declared(
    requester_kind: str | None,
    individuals: int | None = None,
    sensitive_individuals: int | None = None,
) -> dict[str, Any]:
    """What a transfer declares beside the copy, as the policy reads it (absent: none)."""
    said = {
        "requester_kind": requester_kind or None,
        "individuals": individuals,
        "sensitive_individuals": sensitive_individuals,
    }
    return {k: v for k, v in said.items() if v is not None}


def request_input(
    requester: str,
    resource: str,
    target_region: str | None,
    duration_s: int,
    reason: str,
    importer: str | None,
    retention_s: int | None,
    evidence: list[str],
    overdue: list[dict[str, Any]],
    requester_kind: str | None = None,
    individuals: int | None = None,
    sensitive_individuals: int | None = None,
) -> dict[str, Any]:
    """What datavisa.transfer_request is asked about a transfer, given the requester's
    overdue deletions."""
    asked: dict[str, Any] = {
        "subject": requester,
        "resource": resource,
        "target_region": target_region,
        "evidence": evidence,
        "duration_s": duration_s,
        "reason": reason,
        "overdue_deletions": overdue,
        **_declared(requester_kind, individuals, sensitive_individuals),
    }
    if importer:
        asked["importer"] = importer
    if retention_s is not None:
        asked["retention_s"] = retention_s
    return asked


def check_input(
    held: list[Request],
    resource: str | None = None,
    target_region: str | None = None,
    importer: str | None = None,
    transfer_id: str | None = None,
) -> dict[str, Any]:
    """What datavisa.transfer_check is asked: the copy, and the transfers the store
    holds open for it."""
    asked: dict[str, Any] = {
        "resource": resource or "",
        "target_region": target_region or "",
        "importer": importer or "",
        "transfers": [_copy_doc(t) for t in held],
    }
    if transfer_id is not None:
        asked["transfer_id"] = transfer_id
    return asked


def _copy_doc(req: Request) -> dict[str, Any]:
    """A held transfer as datavisa.transfer_check reads it."""
    return {
        "id": req.id,
        "resource": req.resource,
        "target_region": req.target_region,
        "importer": req.importer or "",
        "evidence": req.evidence,
        "retention_s": req.retention_s,
        "requester_kind": req.requester_kind,
        "individuals": req.individuals,
        "sensitive_individuals": req.sensitive_individuals,
        "export_counts": counts_before(req),
        "starts_ns": epoch_ns(req.activated_at),
        "expires_ns": epoch_ns(req.expires_at),
    }


def _is_overdue(req: Request, now: float) -> bool:
    return req.delete_by is not None and req.deleted_at is None and req.delete_by <= now


def overdue_deletions(store: Store, requester: str, now: float) -> list[dict[str, Any]]:
    """The requester's copies past their deletion deadline, as the request policy takes them."""
    return [
        {
            "id": r.id,
            "resource": r.resource,
            "target_region": r.target_region,
            "delete_by_ns": epoch_ns(r.delete_by),
        }
        for r in store.requests(
            "kind = ? AND requester = ? AND deleted_at IS NULL AND delete_by <= ?",
            [TRANSFER_KIND, requester, now],
        )
    ]


def _refuse_duplicate(store: Store, req: Request, now: float) -> None:
    for other in store.requests(
        "requester = ? AND resource = ? AND target_region = ? AND kind = ? AND state IN (?, ?, ?)",
        [req.requester, req.resource, req.target_region, TRANSFER_KIND, PENDING, APPROVED, ACTIVE],
    ):
        state = effective_state(other, now)
        if state not in FINAL:
            raise Conflict(
                f"{req.requester} already has transfer {other.id} {state} of {req.resource} "
                f"to {req.target_region}; use it, or cancel it first"
            )


def _deletable(store: Store, transfer_id: str) -> Request:
    req = store.get(transfer_id)
    if req is None:
        raise NotFound(f"no request with id {transfer_id!r}")
    if req.kind != TRANSFER_KIND:
        raise Conflict(f"{req.id} is not a transfer; only a transfer's copy is deleted")
    if req.activated_at is None:
        raise Conflict(f"transfer {req.id} never opened, so it made no copy to delete")
    if req.deleted_at is not None:
        raise Conflict(f"the copy of transfer {req.id} was already reported deleted")
    return req
