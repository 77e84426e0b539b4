"""The grant lifecycle: request, approve, activate, and the access check.

Python drives state; OPA decides. Every verdict and policy number (maximum duration,
approvals required, quorum, pending lifetime) comes from a decision in rego/datavisa/.
A state change and its audit event commit in one transaction; the live grants are
pushed to OPA before a call that changed them returns.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from . import audit
from .decisions import ACCESS, APPROVAL, REQUEST, Decision, decide
from .errors import Conflict, DataVisaError, Denied, NotFound
from .opa import OpaClient, OpaUnavailable
from .store import Request, Store

PENDING, ACTIVE, DENIED, LAPSED, EXPIRED = "pending", "active", "denied", "lapsed", "expired"
GRANTS_PATH = "grants"  # data.grants: outside the bundle's roots, so the engine may write it


@dataclass
class Engine:
    store: Store
    opa: OpaClient
    revision: str
    clock: Callable[[], float] = time.time

    # -- requests -------------------------------------------------------------------------

    def request(
        self,
        requester: str,
        resource: str,
        actions: list[str],
        duration_s: int,
        location: str,
        reason: str = "",
    ) -> Request:
        """File a request; it activates at once when policy needs no approval."""
        decision = decide(
            self.opa,
            REQUEST,
            {
                "subject": requester,
                "resource": resource,
                "actions": actions,
                "duration_s": duration_s,
                "location": location,
                "reason": reason,
            },
        )
        if not decision.allow:
            raise Denied("request refused", decision)
        policy = decision.result
        now = self.clock()
        req = Request(
            id=secrets.token_hex(6),
            requester=requester,
            resource=resource,
            actions=actions,
            location=location,
            countries=policy["countries"],
            reason=reason,
            duration_s=duration_s,
            state=PENDING,
            created_at=now,
            pending_until=now + policy["pending_lifetime_s"],
            approvals_required=policy["approvals_required"],
            revision=self.revision,
            decision_id=decision.decision_id,
        )
        with self.store.transaction() as db:
            db["requests"].insert(req.to_row())
            self._audit(db, now, requester, "requested", req, decision, {"policy": policy})
            if policy["quorum_met"]:
                self._activate(db, req, now, requester)
        if req.state == ACTIVE:
            self.push_grants(requester)
        return req

    def approve(self, request_id: str, approver: str) -> Request:
        """Record an approval; the grant activates when the quorum policy sets is met."""
        with self.store.transaction() as db:
            # Read and decide under the write lock, so two approvers at once are serialised
            # and the quorum is judged on every approval recorded so far.
            req = self._pending(request_id, "approve")
            approvals = [a.approver for a in self.store.approvals(request_id)]
            decision = decide(
                self.opa,
                APPROVAL,
                {"approver": approver, "request": _request_input(req), "approvals": approvals},
            )
            if not decision.allow:
                raise Denied("approval refused", decision)
            now = self.clock()
            db["approvals"].insert(
                {
                    "request_id": req.id,
                    "approver": approver,
                    "verdict": "approve",
                    "at": now,
                    "decision_id": decision.decision_id,
                }
            )
            detail = {"groups": decision.result.get("groups", [])}
            self._audit(db, now, approver, "approved", req, decision, detail)
            if decision.result.get("quorum_met"):
                self._activate(db, req, now, approver)
        if req.state == ACTIVE:
            self.push_grants(req.requester)
        return req

    def _pending(self, request_id: str, verb: str) -> Request:
        req = self.get(request_id)
        if req.state != PENDING:
            raise Conflict(f"cannot {verb} request {req.id}: it is {req.state}, not pending")
        if self.clock() >= req.pending_until:
            raise Conflict(f"cannot {verb} request {req.id}: it lapsed undecided")
        return req

    def _activate(self, db: Any, req: Request, now: float, actor: str) -> None:
        req.state, req.activated_at, req.expires_at = ACTIVE, now, now + req.duration_s
        db["requests"].update(
            req.id, {"state": ACTIVE, "activated_at": now, "expires_at": req.expires_at}
        )
        self._audit(db, now, actor, "activated", req, None, {"expires_at": req.expires_at})

    def _audit(
        self,
        db: Any,
        now: float,
        actor: str,
        event: str,
        req: Request,
        decision: Decision | None,
        detail: dict[str, Any],
    ) -> None:
        audit.append(
            db,
            at=now,
            actor=actor,
            event=event,
            request_id=req.id,
            detail={"state": req.state, **detail},
            decision_id=decision.decision_id if decision else None,
            revision=self.revision,
        )

    # -- reading --------------------------------------------------------------------------

    def get(self, request_id: str) -> Request:
        req = self.store.get(request_id)
        if req is None:
            raise NotFound(f"no request with id {request_id!r}")
        return req

    # -- access ---------------------------------------------------------------------------

    def check(self, subject: str, resource: str, action: str, location: str) -> Decision:
        """May `subject` do `action` on `resource` from `location` now? OPA's clock decides."""
        return decide(
            self.opa,
            ACCESS,
            {"subject": subject, "resource": resource, "action": action, "location": location},
        )

    # -- grants in OPA --------------------------------------------------------------------

    def _grant_docs(self, requester: str | None = None) -> dict[str, dict[str, Any]]:
        where, params = f"state = '{ACTIVE}'", []
        if requester is not None:
            where, params = where + " AND requester = ?", [requester]
        docs: dict[str, dict[str, Any]] = {}
        for req in self.store.requests(where, params):
            docs.setdefault(req.requester, {})[req.id] = {
                "resource": req.resource,
                "actions": req.actions,
                "countries": req.countries,
                "starts_ns": int(req.activated_at * 1e9),
                "expires_ns": int(req.expires_at * 1e9),
                "revision": req.revision,
            }
        return docs

    def push_grants(self, subject: str) -> None:
        """Replace the subject's live grants in OPA with what the store holds."""
        grants = self._grant_docs(subject).get(subject, {})
        try:
            self.opa.put_data(f"{GRANTS_PATH}/{quote(subject, safe='')}", grants)
        except OpaUnavailable as e:
            raise DataVisaError(
                f"saved, but OPA did not take the new grants ({e}); they are pushed again "
                "when the engine next starts, and until then access is denied"
            ) from e

    def sync_grants(self) -> None:
        """Replace every live grant in OPA with what the store holds (start, OPA restart)."""
        self.opa.put_data(GRANTS_PATH, self._grant_docs())


def _request_input(req: Request) -> dict[str, Any]:
    return {
        "id": req.id,
        "requester": req.requester,
        "resource": req.resource,
        "actions": req.actions,
        "duration_s": req.duration_s,
        "location": req.location,
    }
