"""What a grant is in the data systems it was provisioned in: its credentials, handed to
its holder as an access decision, where it stands in each sink, what it did there, and
the timer that acts on expiry at the expiry instant.

The connectors (engine/connectors) carry changes out as sinks of the grant outbox; this
module is the lifecycle's side of them, and knows them only by the shape below.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ..identity.oidc import Identity
from ..ledger import audit
from ..location.origin import Origin
from ..model.errors import Conflict, Denied, NotFound
from ..model.records import ACTIVE, FINAL
from ..model.worker import Worker
from ..policy.decide import LIFECYCLE
from .engine import Engine
from .grants import ABANDONED, KEPT

log = logging.getLogger("datavisa.provisioned")

TIMER_POLL_S = 1.0  # the longest the timer waits before it looks for a sooner expiry


class IssuesCredentials(Protocol):
    name: str

    def issue_credentials(self, grant_id: str, rotate: bool = False) -> dict[str, Any]:
        """A new password for the grant's account, once (again only with `rotate`)."""


def credential_sink(engine: Engine, grant_id: str | None = None) -> IssuesCredentials | None:
    """The sink that issues credentials for `grant_id` (the one that provisioned it),
    else the first that issues any, when serve has one."""
    issuing = [s for s in engine.grants.sinks if hasattr(s, "issue_credentials")]
    for sink in issuing:
        holds = getattr(sink, "holds", None)
        if grant_id is not None and holds is not None and holds(grant_id):
            return sink  # type: ignore[return-value]
    return issuing[0] if issuing else None  # type: ignore[return-value]


def credentials(
    engine: Engine,
    grant_id: str,
    holder: str,
    location: str,
    rotate: bool = False,
    origin: Origin | None = None,
    authentication: Identity | None = None,
) -> dict[str, Any]:
    """The connection details of `holder`'s grant `grant_id`, issued once (`rotate`: a new
    password). Itself an access decision: the holder's access from `location` must be
    allowed on this very grant (with the step-up the tier may want of `authentication`,
    how the IdP signed them in), and the decision is logged; the issue is audited, the
    password never recorded."""
    req = engine.get(grant_id)
    if req.requester != holder:
        raise NotFound(f"{holder} holds no grant {grant_id!r}")
    if req.state != ACTIVE:
        raise Conflict(f"grant {grant_id} is {req.state}: credentials are for active grants")
    sink = credential_sink(engine, grant_id)
    if sink is None:
        raise Conflict("no data system to issue credentials in: serve's config has no connections")
    decision = engine.check(
        holder,
        req.resource,
        req.actions[0],
        location,
        context={"purpose": "credentials", "grant_id": grant_id, "rotate": rotate},
        origin=origin,
    )
    if not decision.allow or decision.result.get("grant_id") != grant_id:
        raise Denied("credentials refused", decision)
    engine.stepped_up(holder, req.resource, "credentials", authentication)
    issued = sink.issue_credentials(grant_id, rotate)
    with engine.store.transaction():
        audit.append(
            engine.store.db, at=engine.clock(), actor=holder,
            event="credentials_rotated" if rotate else "credentials_issued",
            request_id=grant_id, detail={"location": location, "sink": sink.name},
            decision_id=decision.decision_id, revision=engine.revision,
        )  # fmt: skip
    return {**issued, "decision_id": decision.decision_id}


def abandon_removal(
    engine: Engine, grant_id: str, actor: str, reason: str, actor_role: str | None = None
) -> list[str]:
    """Give up the removal of an ended grant from the data systems that have not confirmed
    it (`revoke --force`): an admin's call, with a reason, audited and raised as a critical
    alert (`removal_abandoned`). The systems keep being retried; the grant no longer
    counts as pending. The names of the sinks given up."""
    req = engine.get(grant_id)
    if req.state not in FINAL:
        raise Conflict(f"grant {grant_id} is {req.state}: revoke it first, then --force")
    pending = engine.grants.pending(grant_id)
    if not pending:
        raise Conflict(f"nothing to abandon: every system confirmed the removal of {grant_id}")
    asked: dict[str, Any] = {
        "actor": actor, "action": "abandon_removal", "reason": reason,
        "request": {"id": req.id, "requester": req.requester, "resource": req.resource,
                    "kind": req.kind},
    }  # fmt: skip
    if actor_role is not None:
        asked["actor_role"] = actor_role
    decision = engine.decide(LIFECYCLE, asked)
    if not decision.allow:
        raise Denied("abandoning the removal refused", decision)
    now = engine.clock()
    with engine.store.transaction():
        audit.append(
            engine.store.db, at=now, actor=actor, event="removal_abandoned",
            request_id=grant_id, detail={"state": req.state, "sinks": pending, "reason": reason},
            decision_id=decision.decision_id, revision=engine.revision,
        )  # fmt: skip
    for sink in pending:
        engine.store.set_provisioning(sink, grant_id, ABANDONED, f"by {actor}: {reason}", now)
    log.critical(
        "removal of grant %s from %s abandoned by %s: %s", grant_id, pending, actor, reason
    )
    return pending


def abandoned_removals(engine: Engine) -> list[dict[str, Any]]:
    """Every removal an admin abandoned, as the alert rules take them."""
    return [
        {"sink": r["sink"], "grant_id": r["grant_id"], "detail": r["detail"],
         "at_ns": int(r["at"] * 1e9)}
        for r in engine.store.provisioning_in(ABANDONED)
    ]  # fmt: skip


def residues(engine: Engine) -> list[dict[str, Any]]:
    """Every ended grant whose account a data system kept, because something of it could
    not be removed (the detail says where and what), as the alert rules take them."""
    return [
        {"sink": r["sink"], "grant_id": r["grant_id"], "detail": r["detail"],
         "at_ns": int(r["at"] * 1e9)}
        for r in engine.store.provisioning_in(KEPT)
    ]  # fmt: skip


def refusals(engine: Engine) -> list[dict[str, Any]]:
    """The grants a data system refused to provision since last asked because PUBLIC
    reaches more than the target (`public_connect: refuse`), as the alert rules take them."""
    return [
        refused
        for sink in engine.grants.sinks
        if (take := getattr(sink, "take_refusals", None))
        for refused in take()
    ]


def standing(engine: Engine, grant_id: str) -> list[dict[str, Any]]:
    """Where each data system stands with the grant (provisioned, failed and why, ...);
    one that has not confirmed the grant's last change yet is `revoking` (the grant ended)
    or `activating`, whatever it said before."""
    ended = engine.get(grant_id).state in FINAL
    data_systems = {s.name for s in engine.grants.sinks if getattr(s, "provisions", False)}
    pending = set(engine.grants.pending(grant_id)) & data_systems
    rows = {r["sink"]: r for r in engine.store.provisioning(grant_id)}
    out = []
    for sink in sorted(rows.keys() | pending):
        row = rows.get(sink, {"state": None, "detail": "", "at": None, "credentials_at": None})
        state, detail = row["state"], row["detail"]
        if sink in pending:
            state = "revoking" if ended else "activating"
            detail = "not yet confirmed by the database; retried with backoff" + (
                f" (before: {row['state']}: {row['detail']})" if row["state"] else ""
            )
        out.append({"sink": sink, "state": state, "detail": detail, "at": row["at"],
                    "credentials_issued": row["credentials_at"] is not None})  # fmt: skip
    return out


class ExpiryTimer(Worker):
    """Sweeps at the instant the soonest live grant expires (not only every sweep_every),
    so its removal from every sink starts then. Looks again every TIMER_POLL_S, so an
    extension or a new grant moves the timer."""

    def __init__(self, engine: Engine) -> None:
        super().__init__("expiry-timer")
        self.engine = engine

    def next_expiry(self) -> float | None:
        soonest = self.engine.store.requests(
            "state = ? AND expires_at IS NOT NULL", [ACTIVE], order_by="expires_at", limit=1
        )
        return soonest[0].expires_at if soonest else None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                due = self.next_expiry()
                now = self.engine.clock()
                if due is not None and due <= now:
                    self.engine.sweep()
                    continue
                wait = TIMER_POLL_S if due is None else min(TIMER_POLL_S, due - now)
            except Exception:  # a store or OPA fault: try again, never die
                log.exception("the expiry timer failed")
                wait = TIMER_POLL_S
            self._stop.wait(max(wait, 0.001))
