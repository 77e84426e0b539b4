"""The grant lifecycle: requests, approvals, grants, their timers, and the access check.

    pending ──approve (quorum)──► active ──► expired | revoked | relinquished
       │    └─(scheduled start)─► approved ──activate──► active
       │                             └──► lapsed | cancelled | revoked
       └──► denied | cancelled | lapsed

Python drives state; OPA decides. Every verdict and policy number (maximum duration,
approvals required, quorum, lifetimes, who may act) comes from a decision in
rego/datavisa/. A state change and its audit event commit in one immediate transaction;
the live grants are pushed to OPA before a call that changed them returns. Timers need no
cron: a record's effective state follows the clock (`effective_state`), access checks use
OPA's clock, and `sweep` only writes down what time already decided.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..identity.oidc import Identity
from ..ledger import audit
from ..ledger.decision_log import DecisionLog, load_key
from ..location.origin import Origin
from ..model.decision import Check, Decision, TransferAsk
from ..model.durations import epoch_ns, format_duration
from ..model.errors import (
    ActivationFailed,
    Conflict,
    DataVisaError,
    Denied,
    NotFound,
    NotYetEnforced,
)
from ..model.records import (
    ABSENT,
    ACCESS_KIND,
    ACTIVE,
    ADD,
    APPROVED,
    BREAKGLASS_KIND,
    CANCELLED,
    DENIED,
    EXPIRED,
    EXTENSION_KIND,
    FINAL,
    LAPSED,
    PENDING,
    RELINQUISHED,
    REMOVE,
    REVIEW_OUTCOMES,
    REVOKED,
    STATES,
    SYSTEM,
    TRANSFER_KIND,
    Approval,
    Request,
    due_at,
    effective_state,
)
from ..policy.coalesce import Offload
from ..policy.decide import (
    ACCESS,
    APPROVAL,
    BREAKGLASS,
    EXTENSION,
    LIFECYCLE,
    OFFLINE,
    REQUEST,
    STEP_UP,
    TRANSFER_CHECK,
    GatewayAnswer,
    answer_many_async,
    decide,
    decide_many,
    decide_many_async,
)
from ..policy.opa import OpaClient
from ..policy.opa_async import AsyncOpaClient
from ..store import Store
from .exports import count_exports, export_counts
from .filings import Filings, open_deadlines, start_deadlines
from .grants import Grants
from .transfers import Transfers, deletion_deadline, transfer_input

_NEXT = {
    PENDING: {APPROVED, ACTIVE, DENIED, CANCELLED, LAPSED},
    APPROVED: {ACTIVE, LAPSED, CANCELLED, REVOKED},
    ACTIVE: {EXPIRED, REVOKED, RELINQUISHED},
}
_RACES = 5  # times an approval is judged again when others land while it is being decided
_TAKEN_AWAY = frozenset({EXPIRED, REVOKED, RELINQUISHED})  # states that end access
# How long ending a grant waits for the OPAs of the other engines on the store to apply it
# before it answers that it is not yet in force everywhere (NotYetEnforced).
OTHER_ENGINES_WAIT_S = 5.0


@dataclass
class Engine:
    store: Store
    opa: OpaClient | None
    revision: str
    clock: Callable[[], float] = time.time
    # Where every decision asked is recorded before use: by default, in the store's own
    # file, signed with the key beside it.
    log: DecisionLog = None  # type: ignore[assignment]
    # Where the live grants take effect (by default the OPA that decides).
    grants: Grants = None  # type: ignore[assignment]
    # The transfer verbs, on this lifecycle (transfers.py).
    transfers: Transfers = field(init=False, repr=False)
    # The filing verbs: filings due after a first transfer (filings.py).
    filings: Filings = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.transfers = Transfers(self)
        self.filings = Filings(self)
        if self.log is None:
            self.log = DecisionLog(self.store, load_key(self.store.location))
        if self.grants is None:
            self.grants = Grants(self.store, self.opa)

    # -- asking for access ----------------------------------------------------------------

    def request(
        self,
        requester: str,
        resource: str,
        actions: list[str],
        duration_s: int,
        location: str,
        reason: str = "",
        start_at: float | None = None,
        evidence: list[str] | None = None,
        origin: Origin | None = None,
    ) -> Request:
        """File a request. It activates at once when policy needs no approval. `location`
        is where the requester says they are; `origin` how the server knows where they are
        (None: the CLI running the engine in-process, which has only their word)."""
        now = self.clock()
        evidence = sorted(set(evidence or []))
        location, where = located(location, origin)
        asked = {
            "subject": requester,
            "resource": resource,
            "actions": actions,
            "duration_s": duration_s,
            "location": location,
            "reason": reason,
            "evidence": evidence,
            "filing_deadlines": open_deadlines(self.store),
            "origin": where,
        }
        if start_at is not None:  # how far ahead it may start is policy's
            asked["start_in_s"] = start_at - now
        decision = self.decide(REQUEST, asked)
        if not decision.allow:
            raise Denied("request refused", decision)
        policy = decision.result
        req = self._new_request(
            decision, now, requester, resource, actions, duration_s, location, reason,
            pending_until=now + policy["pending_lifetime_s"],
            approvals_required=policy["approvals_required"],
            evidence=evidence,
            start_at=start_at,
            activation_deadline_s=policy["activation_deadline_s"],
            filings=list(policy.get("filings", [])),
            supervision=dict(policy.get("supervision") or {}),
        )  # fmt: skip
        with self.store.transaction() as db:
            self._refuse_duplicate(requester, resource, now)
            db["requests"].insert(req.to_row())
            self.audit_event(
                now, requester, "requested", req, decision, {"policy": policy, "location": location}
            )
            if policy["quorum_met"]:
                self._quorum_met(req, now, requester)
        self._in_force(req)
        return req

    def break_glass(
        self,
        requester: str,
        resource: str,
        actions: list[str],
        duration_s: int,
        location: str,
        reason: str,
        authentication: Identity | None = None,
        origin: Origin | None = None,
    ) -> Request:
        """Self-activate an emergency grant now; policy sets the cap and the review deadline
        (and, where the tier wants it, how recent the person's sign-in must be). `location`
        and `origin` as for `request`."""
        overdue = len(self.list_requests(requester=requester, overdue=True))
        location, where = located(location, origin)
        asked = {
            "subject": requester,
            "resource": resource,
            "actions": actions,
            "duration_s": duration_s,
            "location": location,
            "reason": reason,
            "overdue_reviews": overdue,
            "origin": where,
        }
        decision = self.decide(BREAKGLASS, self._signed_in(asked, authentication))
        if not decision.allow:
            raise Denied("break-glass refused", decision)
        with self.store.transaction() as db:
            now = self.clock()
            if len(self.list_requests(requester=requester, overdue=True)) != overdue:
                raise Conflict(f"a review of {requester} fell due meanwhile; try again")
            self._refuse_duplicate(requester, resource, now)
            policy = decision.result
            req = self._new_request(
                decision, now, requester, resource, actions, duration_s, location, reason,
                pending_until=now,
                approvals_required=[],
                kind=BREAKGLASS_KIND,
                review_due=now + policy["review_deadline_s"],
                supervision=dict(policy.get("supervision") or {}),
            )  # fmt: skip
            db["requests"].insert(req.to_row())
            self.audit_event(
                now,
                requester,
                "break_glass",
                req,
                decision,
                {"policy": policy, "location": location}
                | ({"step_up": stepped} if (stepped := _stepped_up(authentication)) else {}),
            )
            self._activate(req, now, requester)
        self._in_force(req)
        return req

    def _new_request(
        self,
        decision: Decision,
        now: float,
        requester: str,
        resource: str,
        actions: list[str],
        duration_s: int,
        location: str,
        reason: str,
        **fields: Any,
    ) -> Request:
        """A pending record for what policy allowed, with the countries it permits."""
        return Request(
            id=_new_id(),
            requester=requester,
            resource=resource,
            actions=actions,
            location=location,
            countries=decision.result["countries"],
            reason=reason,
            duration_s=duration_s,
            state=PENDING,
            created_at=now,
            revision=self.revision,
            decision_id=decision.decision_id,
            **fields,
        )

    def _refuse_duplicate(self, requester: str, resource: str, now: float) -> None:
        for other in self.store.requests(
            "requester = ? AND resource = ? AND kind NOT IN (?, ?) AND state IN (?, ?, ?)",
            [requester, resource, EXTENSION_KIND, TRANSFER_KIND, PENDING, APPROVED, ACTIVE],
        ):
            state = effective_state(other, now)
            if state not in FINAL:
                raise Conflict(
                    f"{requester} already has request {other.id} {state} for {resource}; "
                    "use it, extend it, or cancel it first"
                )

    # -- deciding -------------------------------------------------------------------------

    def approve(
        self,
        request_id: str,
        approver: str,
        location: str = "unknown",
        authentication: Identity | None = None,
        origin: Origin | None = None,
    ) -> Request:
        """Record an approval; the grant activates when the quorum policy sets is met.
        `authentication` is what the identity provider said of the approver's sign-in
        (None: no IdP signed them in), for the tiers that want a recent one; `location`
        and `origin` are where the approver is, as for `request`."""
        location, where = located(location, origin)
        for _ in range(_RACES):
            req = self._load(request_id, self.clock(), {PENDING}, "approve")
            so_far = approved_so_far(self.approvals(req.id))
            approvals = so_far["approvals"]
            # A transfer is judged on its exporter's export counts of now (exports.py).
            counted = export_counts(self.store) if req.kind == TRANSFER_KIND else None
            asked = {
                "approver": approver,
                "approver_location": location,
                "request": request_input(req),
                "approvals": approvals,
                "origin": where,
            }
            if so_far["idp_groups"]:
                asked["idp_groups"] = so_far["idp_groups"]
            if counted is not None:
                asked["export_counts"] = counted
            decision = self.decide(APPROVAL, self._signed_in(asked, authentication))
            if not decision.allow:
                raise Denied("approval refused", decision)
            with self.store.transaction() as db:
                # Under the write lock: the quorum was judged on the approvals recorded
                # before this one, a transfer on the export counts; if another landed
                # meanwhile, judge again.
                now = self.clock()
                req = self._load(request_id, now, {PENDING}, "approve")
                if self._approvers(req.id) != approvals:
                    continue
                groups = authentication.groups if authentication is not None else None
                if counted is not None and export_counts(self.store) != counted:
                    continue
                approval = Approval(
                    req.id, approver, "approve", now, decision.decision_id, location,
                    idp_groups=None if groups is None else json.dumps(list(groups)),
                )  # fmt: skip
                db["approvals"].insert(dataclasses.asdict(approval))
                detail = {"groups": decision.result.get("groups", []), "location": location}
                if (stepped := _stepped_up(authentication)) is not None:
                    detail["step_up"] = stepped
                self.audit_event(now, approver, "approved", req, decision, detail)
                if decision.result.get("quorum_met"):
                    count_exports(
                        self.store, req, list(decision.result.get("exports", [])),
                        counted or [], now, approver, decision.decision_id, self.revision,
                    )  # fmt: skip
                    self._supervise_as_decided(req, decision, now, approver)
                    req = self._quorum_met(req, now, approver)
            self._in_force(req)
            return self.view(req, now)
        raise Conflict(f"{request_id} is being approved by others right now; try again")

    def _supervise_as_decided(
        self, req: Request, decision: Decision, now: float, actor: str
    ) -> None:
        """The approval that activates an access grant decided again whether it needs a
        supervisor (datavisa.approval's `supervision`, policy of now): keep that answer,
        audited when it differs from what the filing's decision said. Inside the
        transaction."""
        decided = decision.result.get("supervision")
        if req.kind != ACCESS_KIND or not decided or decided == req.supervision:
            return
        was, req.supervision = req.supervision, dict(decided)
        self.store.update(req.id, {"supervision": req.supervision})
        detail = {"was": was, "now": req.supervision}
        self.audit_event(now, actor, "supervision_decided", req, decision, detail)

    def _signed_in(self, asked: dict[str, Any], authentication: Identity | None) -> dict[str, Any]:
        """`asked`, with the caller's sign-in as datavisa.step_up reads it (how long ago,
        with which methods, and the console step-up they did) and the IdP groups their
        token names (datavisa.idp); nothing for a caller no identity provider signed in."""
        if authentication is None:
            return asked
        if groups := authentication.idp_groups():  # the caller's, as their token says
            asked = asked | {"idp_groups": asked.get("idp_groups", {}) | groups}
        return asked | {"authentication": authentication.signed_in(self.clock())}

    def stepped_up(
        self, subject: str, resource: str, step: str, authentication: Identity | None
    ) -> Decision:
        """Does `subject`'s sign-in do for `step` on `resource` (datavisa.step_up), for a
        step no other decision judges (credentials)? Logged; Denied when it does not."""
        asked = self._signed_in({"resource": resource, "step": step}, authentication)
        decision = self.decide(STEP_UP, asked, caller=subject)
        if not decision.allow:
            raise Denied(f"{step.replace('_', ' ')} refused", decision)
        return decision

    def _approvers(self, request_id: str) -> list[str]:
        return approved_so_far(self.approvals(request_id))["approvals"]

    def deny(
        self,
        request_id: str,
        approver: str,
        reason: str = "",
        authentication: Identity | None = None,
    ) -> Request:
        """End a pending request: one deny is enough."""
        req = self._load(request_id, self.clock(), {PENDING}, "deny")
        decision = self._permit(approver, "deny", req, authentication=authentication)
        with self.store.transaction() as db:
            now = self.clock()
            req = self._load(request_id, now, {PENDING}, "deny")
            db["approvals"].insert(
                dataclasses.asdict(
                    Approval(req.id, approver, "deny", now, decision.decision_id, None, reason)
                )
            )
            self._move(req, DENIED, now, approver, "denied", decision, reason)
        return req

    def cancel(self, request_id: str, actor: str) -> Request:
        """The requester withdraws a request that is pending or approved but not active."""
        decision = self._permit(
            actor, "cancel", self._load(request_id, self.clock(), {PENDING, APPROVED}, "cancel")
        )
        with self.store.transaction():
            now = self.clock()
            req = self._load(request_id, now, {PENDING, APPROVED}, "cancel")
            self._move(req, CANCELLED, now, actor, "cancelled", decision)
        return req

    # -- grants ---------------------------------------------------------------------------

    def activate(self, request_id: str, actor: str) -> Request:
        """Start an approved, scheduled grant: not before its start, not after its deadline."""
        decision = self._permit(
            actor, "activate", self._load(request_id, self.clock(), {APPROVED}, "activate")
        )
        with self.store.transaction():
            now = self.clock()
            req = self._load(request_id, now, {APPROVED}, "activate")
            if req.start_at is not None and now < req.start_at:
                raise Conflict(
                    f"request {req.id} may be activated from its start, "
                    f"{format_duration(req.start_at - now)} from now"
                )
            self._activate(req, now, actor, decision)
        self._in_force(req)
        return req

    def revoke(
        self,
        request_id: str,
        actor: str,
        reason: str = "",
        actor_role: str | None = None,
        authentication: Identity | None = None,
    ) -> Request:
        """End a grant early. When this returns, every sink already denies it; when one
        does not yet, NotYetEnforced says so (the revoke is recorded and applied later).

        `actor_role` is the role of the API token the actor called with, for the lifecycle
        policy (an admin token may revoke anyone's grant); None when not an API call.
        Reducing access never waits for OPA: when it cannot be asked, an actor that policy
        named when the grant became live (`offline_enders`) may still revoke it.
        """
        req = self._load(request_id, self.clock(), {ACTIVE, APPROVED}, "revoke")
        decision, offline = self._permit_ending(actor, "revoke", req, actor_role, authentication)
        with self.store.transaction():
            now = self.clock()
            req = self._load(request_id, now, {ACTIVE, APPROVED}, "revoke")
            self._move(req, REVOKED, now, actor, "revoked", decision, reason, offline=offline)
        self._in_force(req)
        return req

    def relinquish(self, request_id: str, actor: str, reason: str = "") -> Request:
        """The requester gives a grant back before it expires (as `revoke`, OPA or not)."""
        req = self._load(request_id, self.clock(), {ACTIVE}, "relinquish")
        decision, offline = self._permit_ending(actor, "relinquish", req)
        with self.store.transaction():
            now = self.clock()
            req = self._load(request_id, now, {ACTIVE}, "relinquish")
            self._move(
                req, RELINQUISHED, now, actor, "relinquished", decision, reason, offline=offline
            )
        self._in_force(req)
        return req

    def end_access_of(self, subject: str, actor: str, reason: str) -> list[Request]:
        """Cancel every pending or approved request of `subject` and revoke every grant
        they hold: directory sync deprovisioned them. Call inside the transaction of the
        directory change, so state, audit and grant outbox commit with it; apply the
        outbox after the commit (`grants.apply`). No decision is asked: like expiry,
        this is not a choice policy makes (the IdP said the person is gone), and
        reducing access never waits for OPA."""
        now, ended = self.clock(), []
        held = "requester = ? AND state IN (?, ?, ?)"
        for req in self.store.requests(held, [subject, PENDING, APPROVED, ACTIVE]):
            state = effective_state(req, now)
            if state in (PENDING, APPROVED):
                self._move(req, CANCELLED, now, actor, "cancelled", None, reason)
            elif state == ACTIVE:
                self._move(req, REVOKED, now, actor, "revoked", None, reason)
            else:  # lapsed or expired by the clock already: the sweep writes it down
                continue
            ended.append(req)
        return ended

    def _permit_ending(
        self,
        actor: str,
        action: str,
        req: Request,
        actor_role: str | None = None,
        authentication: Identity | None = None,
    ) -> tuple[Decision, bool]:
        """The lifecycle decision to end `req`, and whether it is taken offline: OPA could
        not be asked and policy had named `actor` for this when the grant became live."""
        asked = {"actor": actor, "action": action, "request": request_input(req)}
        if actor_role is not None:
            asked["actor_role"] = actor_role
        if req.supervised:  # a supervisor present may end it from the watch, as policy says
            asked["supervising"] = self.supervising(req.id, actor)
        decision = self.decide(LIFECYCLE, self._signed_in(asked, authentication))
        if decision.allow:
            return decision, False
        if decision.codes == ["policy_unavailable"] and actor in req.offline_enders.get(action, []):
            return decision, True
        raise Denied(f"{action} refused", decision)

    def supervising(self, grant_id: str, actor: str) -> bool:
        """Whether `actor` holds a supervisor lease on `grant_id` that is alive now (the
        only thing about presence the engine itself decides: a time against its clock)."""
        now = self.clock()
        return any(
            row["supervisor"] == actor and row["held_until"] >= now
            for row in self.store.supervisors(grant_id)
        )

    def extend(self, request_id: str, actor: str, extra_s: int, reason: str = "") -> Request:
        """Ask to lengthen an active grant: a new decision, approved as policy says.

        Returns the extension request; when policy needs no approval it is applied at once.
        """
        grant = self._extendable(request_id, self.clock())
        decision = self.decide(
            EXTENSION,
            {
                "subject": actor,
                "grant": {
                    **request_input(grant),
                    "starts_ns": epoch_ns(grant.activated_at),
                    "expires_ns": epoch_ns(grant.expires_at),
                    "extended_s": grant.extended_s,
                },
                "extra_s": extra_s,
                "reason": reason,
            },
        )
        if not decision.allow:
            raise Denied("extension refused", decision)
        with self.store.transaction() as db:
            now = self.clock()
            decided_on = grant
            grant = self._extendable(request_id, now)
            if (grant.expires_at, grant.extended_s) != (
                decided_on.expires_at,
                decided_on.extended_s,
            ):
                raise Conflict(f"{grant.id} was extended meanwhile; ask again")
            ext = dataclasses.replace(
                grant,
                id=_new_id(),
                requester=actor,
                reason=reason,
                duration_s=extra_s,
                state=PENDING,
                created_at=now,
                pending_until=grant.expires_at,  # an extension cannot outlive its grant
                approvals_required=decision.result["approvals_required"],
                revision=self.revision,
                decision_id=decision.decision_id,
                kind=EXTENSION_KIND,
                parent_id=grant.id,
                **_UNSET_GRANT_FIELDS,
            )
            db["requests"].insert(ext.to_row())
            self.audit_event(now, actor, "extension_requested", ext, decision, {"extra_s": extra_s})
            if decision.result["quorum_met"]:
                self._quorum_met(ext, now, actor)
        if ext.state == APPROVED:
            self._in_force(grant)
        return ext

    def _reviewable(self, request_id: str) -> Request:
        req = self.get(request_id)
        if req.kind != BREAKGLASS_KIND:
            raise Conflict(f"{req.id} is not a break-glass grant; only those are reviewed")
        if req.reviewed_at is not None:
            raise Conflict(f"{req.id} was already reviewed by {req.reviewed_by}")
        return req

    def _extendable(self, request_id: str, now: float) -> Request:
        grant = self._load(request_id, now, {ACTIVE}, "extend")
        if grant.kind == EXTENSION_KIND:
            raise Conflict(f"{grant.id} is an extension request; extend the grant itself")
        for other in self.store.requests("parent_id = ? AND state = ?", [grant.id, PENDING]):
            if effective_state(other, now) == PENDING:
                raise Conflict(f"extension {other.id} of {grant.id} is already pending")
        return grant

    def review(
        self,
        request_id: str,
        reviewer: str,
        outcome: str,
        notes: str = "",
        authentication: Identity | None = None,
    ) -> Request:
        """Record the mandatory post-hoc review of a break-glass grant."""
        if outcome not in REVIEW_OUTCOMES:
            raise DataVisaError(f"outcome must be one of {', '.join(REVIEW_OUTCOMES)}")
        decision = self._permit(
            reviewer, "review", self._reviewable(request_id), authentication=authentication
        )
        with self.store.transaction():
            now = self.clock()
            req = self._reviewable(request_id)
            changes = {"reviewed_at": now, "reviewed_by": reviewer, "review_outcome": outcome}
            self.store.update(req.id, changes)
            req = dataclasses.replace(req, **changes)
            detail = {"outcome": outcome, "notes": notes, "due": req.review_due}
            self.audit_event(now, reviewer, "reviewed", req, decision, detail)
        return self.view(req, now)

    # -- time -----------------------------------------------------------------------------

    def sweep(self) -> dict[str, int]:
        """Write down the expiries and lapses the clock has already decided."""
        counts: Counter[str] = Counter()
        expired_subjects = set()  # whose live grants changed
        with self.store.transaction():
            now = self.clock()
            for req in self.store.requests(
                "(state = ? AND expires_at <= ?) OR (state = ? AND pending_until <= ?) "
                "OR (state = ? AND activate_by <= ?)",
                [ACTIVE, now, PENDING, now, APPROVED, now],
            ):
                to = effective_state(req, now)
                if req.state == ACTIVE:
                    expired_subjects.add(req.requester)
                self._move(req, to, now, SYSTEM, to, None, ended_at=due_at(req))
                counts[to] += 1
        if expired_subjects:
            self.grants.apply()  # what a sink misses, the runner applies again
        for grant_id, why in self.grants.unprovisioned(self.clock()):
            with contextlib.suppress(Conflict):  # ended meanwhile
                self.fail_activation(grant_id, why)
                counts["activation_failed"] += 1
        for grant_id, why in self.grants.ended():
            with contextlib.suppress(Conflict):
                self.end_on_drift(grant_id, why)
                counts["ended_on_drift"] += 1
        return dict(counts)

    # -- reading --------------------------------------------------------------------------

    def get(self, request_id: str) -> Request:
        """The request, in the state the clock says it is in."""
        req = self.store.get(request_id)
        if req is None:
            raise NotFound(f"no request with id {request_id!r}")
        return self.view(req, self.clock())

    def approvals(self, request_id: str) -> list[Approval]:
        return self.store.approvals(request_id)

    def trail(self, request_id: str | None = None) -> list[dict[str, Any]]:
        """The audit events, all or those of one request, oldest first."""
        return audit.trail(self.store.db, request_id)

    def list_requests(
        self, state: str | None = None, requester: str | None = None, overdue: bool = False
    ) -> list[Request]:
        """Requests oldest first; `state` is the effective state, `overdue` break-glass
        grants whose review is past its deadline."""
        now = self.clock()
        clauses, params = [], []
        if state is not None:
            if state not in STATES:
                raise DataVisaError(f"unknown state {state!r}: one of {', '.join(sorted(STATES))}")
            stored = {state} | ({ACTIVE} if state == EXPIRED else set())
            stored |= {PENDING, APPROVED} if state == LAPSED else set()
            clauses.append(f"state IN ({', '.join('?' * len(stored))})")
            params += sorted(stored)
        if requester is not None:
            clauses.append("requester = ?")
            params.append(requester)
        if overdue:
            clauses.append("kind = ? AND reviewed_at IS NULL AND review_due <= ?")
            params += [BREAKGLASS_KIND, now]
        where = " AND ".join(clauses) or None
        views = [self.view(r, now) for r in self.store.requests(where, params)]
        return [r for r in views if state is None or r.state == state]

    # -- access ---------------------------------------------------------------------------

    def check(
        self,
        subject: str,
        resource: str,
        action: str,
        location: str,
        context: dict[str, Any] | None = None,
        caller: str | None = None,
        origin: Origin | None = None,
    ) -> Decision:
        """May `subject` do `action` on `resource` from `location` now? OPA's clock decides
        (see `Check`); `location` and `origin` as for `request`."""
        location, where = located(location, origin)
        check = Check(subject, resource, action, location, context, caller, origin=where)
        return self.check_many([check])[0]

    def check_many(self, checks: list[Check]) -> list[Decision]:
        """`check` for several at once: one OPA query and one log commit for them all (the
        server coalesces the checks that arrive together). OPA gets what is left of the
        timeout of the check asked first, so none waits longer than that in all."""
        asked, due = self._access_asked(checks)
        return decide_many(
            self.opa, ACCESS, asked, log=self.log, revision=self.revision, amend=self._held, due=due
        )

    async def check_many_async(
        self,
        checks: list[Check],
        opa: AsyncOpaClient | None,
        offload: Offload,
    ) -> list[Decision]:
        """`check_many` for the server: OPA asked from the event loop through `opa` (which
        follows `self.opa`), the store's part in `offload`, a worker thread."""
        asked, due = self._access_asked(checks)
        return await decide_many_async(
            opa if self.opa else None, ACCESS, asked, offload=offload, log=self.log,
            revision=self.revision, amend=self._held, due=due,
        )  # fmt: skip

    async def check_transfers_async(
        self,
        checks: list[TransferAsk],
        opa: AsyncOpaClient | None,
        offload: Offload,
    ) -> list[Decision]:
        """`transfers.check` for the server, as `check_many_async` for access checks: the
        store read in `offload`, every check of the batch in one OPA query and one
        commit of the decision log."""

        def inputs() -> list[tuple[dict[str, Any], str | None]]:
            return [
                (self.transfers.check_asked(c.transfer_id, c.resource, c.target_region, c.importer),
                 c.caller)
                for c in checks
            ]  # fmt: skip

        asked = await offload(inputs)
        due = self._due(c.asked_at for c in checks)
        return await decide_many_async(
            opa if self.opa else None, TRANSFER_CHECK, asked, offload=offload, log=self.log,
            revision=self.revision, due=due,
        )  # fmt: skip

    def _access_asked(
        self, checks: list[Check]
    ) -> tuple[list[tuple[dict[str, Any], str | None]], float | None]:
        """The checks as (input, caller) pairs, and when OPA must have answered them: what
        is left of the timeout of the check asked first, so none waits longer than that."""
        asked = [(check.input(), check.caller or check.subject) for check in checks]
        due = self._due(c.asked_at for c in checks)
        return asked, due

    async def answer_many_async(
        self,
        asked: list[tuple[dict[str, Any], str | None, float]],
        opa: AsyncOpaClient | None,
        offload: Offload,
    ) -> list[GatewayAnswer]:
        """The whole answer to each gateway request (input, caller, asked_at), in one OPA
        query (datavisa.gateway.answer: route and access together): each recorded as the
        access decision it leads to, or the route's deny; an allow on a grant the store
        does not hold is a deny, as for `check_many`."""
        due = self._due(at for _, _, at in asked)
        return await answer_many_async(
            opa if self.opa else None, [(i, c) for i, c, _ in asked], offload=offload,
            log=self.log, revision=self.revision, amend=self._held, due=due,
        )  # fmt: skip

    def _due(self, asked_at: Iterable[float]) -> float | None:
        """When OPA must have answered a batch: what is left of the timeout of the check
        asked first, so none waits longer than that (None without an OPA)."""
        return min(asked_at) + self.opa.timeout if self.opa else None

    def _held(self, inputs: list[dict[str, Any]], decisions: list[Decision]) -> list[Decision]:
        """The decisions, with every allow on a grant the store does not hold active for
        that subject turned into a deny: OPA may not have applied a revoke yet, or its
        data was written by someone else. The store is the record of which grants live."""
        cited = {d.result.get("grant_id") for d in decisions if d.allow} - {None}
        if not cited:
            return decisions
        held = self.store.active_holders(cited)
        return [
            d
            if not d.allow
            or d.result.get("grant_id") is None
            or (i["subject"], d.result["grant_id"]) in held
            else _not_held(d)
            for i, d in zip(inputs, decisions, strict=True)
        ]

    def _in_force(self, req: Request) -> None:
        """After a commit that changed `req`: note who may end it offline if it just became
        live, apply the grant outbox to every sink, and say if one has not taken it."""
        if req.state == ACTIVE and not req.offline_enders:
            self._plan_offline_ending(req)
        pending = self.grants.apply() and self.grants.pending(req.id)
        if req.state == ACTIVE and (why := self.grants.refused(req.id)):
            raise ActivationFailed(self.fail_activation(req.id, why), why)
        if not pending and req.state in _TAKEN_AWAY:
            # Access taken away is in force only once the OPAs of the other engines on
            # the store (answering behind the same load balancer) took it away too.
            pending = self.grants.others_behind(req.id, OTHER_ENGINES_WAIT_S)
        if pending:
            raise NotYetEnforced(self.view(req, self.clock()), pending)

    def fail_activation(self, request_id: str, why: str) -> Request:
        """End an active grant that a data system could not provision (the reason in the
        trail): a grant is never left active where it does not hold."""
        with self.store.transaction():
            now = self.clock()
            req = self._load(request_id, now, {ACTIVE}, "end")
            self._move(req, REVOKED, now, SYSTEM, "activation_failed", None, why)
        self.grants.apply()
        return req

    def end_on_drift(self, request_id: str, why: str) -> Request:
        """End an active grant a data system found used against its terms where policy
        said to end it (a password the holder set for itself): the reason in the trail."""
        with self.store.transaction():
            now = self.clock()
            req = self._load(request_id, now, {ACTIVE}, "end")
            self._move(req, REVOKED, now, SYSTEM, "ended_on_drift", None, why)
        self.grants.apply()
        return req

    def _plan_offline_ending(self, req: Request) -> None:
        """Ask policy now who may end this grant while it cannot be asked (datavisa.offline)."""
        approvers = [a.approver for a in self.approvals(req.id) if a.verdict == "approve"]
        decision = self.decide(
            OFFLINE, {"request": request_input(req), "approvals": approvers}, caller=SYSTEM
        )
        if not decision.allow:  # OPA unreachable: nobody may end it offline
            return
        enders = {"revoke": decision.result["revoke"], "relinquish": decision.result["relinquish"]}
        with self.store.transaction():
            self.store.update(req.id, {"offline_enders": enders})
        req.offline_enders = enders

    # -- transitions ----------------------------------------------------------------------

    # -- the surface other packages act on a grant through (supervision, chat) -----------

    def decide(
        self,
        path: str,
        input: dict[str, Any],
        caller: str | None = None,
        authentication: Identity | None = None,
    ) -> Decision:
        """Ask OPA, fail closed, and record the decision in the log before acting on it;
        with `authentication`, the caller's sign-in goes in the input as the step-up and
        IdP rules read it (`_signed_in`)."""
        if authentication is not None:
            input = self._signed_in(input, authentication)
        asker = caller or input.get("subject") or input.get("approver") or input.get("actor")
        return decide(self.opa, path, input, log=self.log, caller=asker, revision=self.revision)

    def _load(self, request_id: str, now: float, states: set[str], verb: str) -> Request:
        req = self.store.get(request_id)
        if req is None:
            raise NotFound(f"no request with id {request_id!r}")
        state = effective_state(req, now)
        if state not in states:
            wanted = " or ".join(sorted(states))
            raise Conflict(f"cannot {verb} {req.id}: it is {state}, not {wanted}")
        return req

    def _permit(
        self,
        actor: str,
        action: str,
        req: Request,
        actor_role: str | None = None,
        authentication: Identity | None = None,
    ) -> Decision:
        asked = {"actor": actor, "action": action, "request": request_input(req)}
        if actor_role is not None:
            asked["actor_role"] = actor_role
        decision = self.decide(LIFECYCLE, self._signed_in(asked, authentication))
        if not decision.allow:
            raise Denied(f"{action} refused", decision)
        return decision

    def _quorum_met(self, req: Request, now: float, actor: str) -> Request:
        """The approvals are in: extend the grant, schedule it, or activate it now."""
        if req.kind == EXTENSION_KIND:
            grant = self._load(req.parent_id, now, {ACTIVE}, "extend")
            changes = {
                "expires_at": grant.expires_at + req.duration_s,
                "extended_s": grant.extended_s + req.duration_s,
            }
            self.store.update(grant.id, changes)
            grant = dataclasses.replace(grant, **changes)
            self.grants.record(grant, ADD, now)
            self.audit_event(now, actor, "extended", grant, None, {"extension": req.id, **changes})
            self._move(req, APPROVED, now, actor, "extension_applied", None, approved_at=now)
            return grant
        if req.start_at is not None and now < req.start_at:
            activate_by = req.start_at + req.activation_deadline_s
            self._move(
                req, APPROVED, now, actor, "scheduled", None,
                approved_at=now, activate_by=activate_by,
            )  # fmt: skip
            return req
        req.approved_at = now
        self._activate(req, now, actor)
        return req

    def _activate(
        self, req: Request, now: float, actor: str, decision: Decision | None = None
    ) -> None:
        # A supervised grant starts with no supervisor present: it works once one joins.
        watched = {"supervision_state": ABSENT, "supervision_since": now} if req.supervised else {}
        self._move(
            req, ACTIVE, now, actor, "activated", decision,
            approved_at=req.approved_at or now, activated_at=now,
            expires_at=now + req.duration_s, **deletion_deadline(req, now), **watched,
        )  # fmt: skip
        start_deadlines(self.store, req, now, self.revision)

    def _move(
        self,
        req: Request,
        to: str,
        now: float,
        actor: str,
        event: str,
        decision: Decision | None,
        reason: str | None = None,
        offline: bool = False,
        **changes: Any,
    ) -> None:
        """The one place a state changes: checked, written, audited, and put in the grant
        outbox together."""
        if to not in _NEXT.get(req.state, ()):
            raise Conflict(f"{req.id} cannot go from {req.state} to {to}")
        if (to == ACTIVE or req.state == ACTIVE) and req.kind != TRANSFER_KIND:
            self.grants.record(req, ADD if to == ACTIVE else REMOVE, now)
        changes["state"] = to
        if to in FINAL:
            changes.setdefault("ended_at", now)
            changes.update(ended_by=actor, end_reason=reason)
        self.store.update(req.id, changes)
        for key, value in changes.items():
            setattr(req, key, value)
        detail: dict[str, Any] = {"reason": reason} if reason else {}
        if offline:  # OPA could not be asked; policy had named this actor beforehand
            detail["offline"] = True
        self.audit_event(now, actor, event, req, decision, detail)

    def audit_event(
        self,
        now: float,
        actor: str,
        event: str,
        req: Request,
        decision: Decision | None,
        detail: dict[str, Any],
    ) -> None:
        """Append the audit event of a change to `req`, inside the caller's transaction
        (with the change and its grant-outbox row: `grants.record`)."""
        audit.append(
            self.store.db,
            at=now,
            actor=actor,
            event=event,
            request_id=req.id,
            detail={"state": req.state, **detail},
            decision_id=decision.decision_id if decision else None,
            revision=self.revision,
        )

    def view(self, req: Request, now: float) -> Request:
        """`req` as the clock says it is at `now` (an expiry or lapse not yet swept)."""
        state = effective_state(req, now)
        if state == req.state:
            return req
        return dataclasses.replace(req, state=state, ended_at=due_at(req), ended_by=SYSTEM)


_UNSET_GRANT_FIELDS = {
    name: None
    for name in (
        "start_at", "activate_by", "approved_at", "activated_at", "expires_at",
        "ended_at", "ended_by", "end_reason", "review_due",
    )
}  # fmt: skip


def _not_held(decision: Decision) -> Decision:
    grant_id = decision.result["grant_id"]
    reason = {
        "code": "grant_not_active",
        "message": f"grant {grant_id} is not active in the store (revoked, relinquished or "
        "expired); the decision point has not caught up yet, so deny",
    }
    result = {k: v for k, v in decision.result.items() if k not in ("grant_id", "expires_at")}
    return dataclasses.replace(
        decision,
        allow=False,
        reasons=[reason],
        result={**result, "allow": False, "reasons": [reason]},
    )


def _new_id() -> str:
    return secrets.token_hex(6)


def approved_so_far(approvals: Iterable[Approval]) -> dict[str, Any]:
    """A request's approvals as decisions read them: `approvals`, who approved so far, and
    `idp_groups`, the IdP groups each one's token named (by approver)."""
    approved = [a for a in approvals if a.verdict == "approve"]
    return {
        "approvals": [a.approver for a in approved],
        "idp_groups": {
            a.approver: json.loads(a.idp_groups) for a in approved if a.idp_groups is not None
        },
    }


def request_input(req: Request) -> dict[str, Any]:
    """A request as the decisions about it read it (their input's `request`)."""
    return {
        "id": req.id,
        "requester": req.requester,
        "resource": req.resource,
        "actions": req.actions,
        "duration_s": req.duration_s,
        "location": req.location,
        "kind": req.kind,
        "evidence": req.evidence,  # what the residency basis rests on, of every kind
        **transfer_input(req),
    }


def located(location: str, origin: Origin | None) -> tuple[str, dict[str, Any]]:
    """The country a decision judges and its input's `origin`: the CLI's in-process engine
    has only the caller's word (`location`); a server says how it knows (`origin`)."""
    origin = origin or Origin.local(location)
    return origin.country, origin.facts()


def _stepped_up(authentication: Identity | None) -> dict[str, Any] | None:
    """The console step-up the caller's session holds (engine/stepup): its method and
    when, for the decision input and the audit trail; None without one."""
    if authentication is None or authentication.step_up_at is None:
        return None
    return {"method": authentication.step_up_method, "at": authentication.step_up_at}
