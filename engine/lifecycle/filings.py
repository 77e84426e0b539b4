"""Filing deadlines: a filing a law wants within a time of an exporter's first transfer
(Vietnam's cross-border transfer impact dossier, 60 days after the first transfer of
Vietnamese personal data abroad, access from abroad included).

Policy says which grants and transfers start one (the request decisions' `filings`,
rego/datavisa/filing) and how long the exporter has; the engine keeps one deadline per
filing and exporter, started in the transaction that first activates such a grant or
transfer, and gives the request decisions those not filed, so that policy refuses the
exporter's next transfers once one is overdue by its clock. The monitor alerts on an
overdue one (`Monitor.check_filings`). Recording the filing (`Filings.record`, policy
decides who may) ends the deadline, audited on the first transfer's trail.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..ledger import audit
from ..model.decision import Decision
from ..model.durations import epoch_ns
from ..model.errors import Conflict, Denied
from ..model.records import Request
from ..policy.decide import FILING
from ..store import Store


class Lifecycle(Protocol):
    """What the filing verbs need of the lifecycle (engine.py provides it)."""

    store: Store
    revision: str

    def clock(self) -> float: ...

    def decide(self, path: str, input: dict[str, Any], caller: str | None = None) -> Decision: ...


class Filings:
    """The filing verbs (`engine.filings`)."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle

    def record(
        self, filing: str, exporter: str, actor: str, actor_role: str | None = None
    ) -> dict[str, Any]:
        """Record that `exporter` filed `filing` (policy decides who may): its deadline
        ends, and transfers it blocked may be asked again."""
        lifecycle = self._lifecycle
        asked: dict[str, Any] = {
            "actor": actor,
            "action": "record",
            "filing": filing,
            "exporter": exporter,
        }
        if actor_role is not None:
            asked["actor_role"] = actor_role
        decision = lifecycle.decide(FILING, asked)
        if not decision.allow:
            raise Denied("filing refused", decision)
        store = lifecycle.store
        with store.transaction() as db:
            now = lifecycle.clock()
            if not store.file_deadline(filing, exporter, now, actor):
                found = store.filing_deadline(filing, exporter)
                raise Conflict(_why_not_open(found, filing, exporter))
            deadline = store.filing_deadline(filing, exporter)
            assert deadline is not None
            audit.append(
                db,
                at=now,
                actor=actor,
                event="filing_recorded",
                request_id=deadline["first_transfer_id"],
                detail={
                    "filing": filing,
                    "exporter": exporter,
                    "due": deadline["due_at"],
                    "late": now > deadline["due_at"],
                },
                decision_id=decision.decision_id,
                revision=lifecycle.revision,
            )
        return deadline

    def list(self, overdue: bool = False) -> list[dict[str, Any]]:
        """Every filing deadline by due time; `overdue`: those past due and not filed."""
        now = self._lifecycle.clock()
        return [
            d
            for d in self._lifecycle.store.filing_deadlines(open_only=overdue)
            if not overdue or d["due_at"] <= now
        ]


def _why_not_open(deadline: dict[str, Any] | None, filing: str, exporter: str) -> str:
    if deadline is None:
        return (
            f"no {filing} deadline is running for {exporter}: none of its transfers started one yet"
        )
    return f"{exporter}'s {filing} was already recorded, by {deadline['filed_by']}"


def open_deadlines(store: Store) -> list[dict[str, Any]]:
    """The deadlines not filed, as the request decisions take them (filing_deadlines)."""
    return [
        {
            "filing": d["filing"],
            "exporter": d["exporter"],
            "first_transfer_id": d["first_transfer_id"],
            "first_transfer_ns": epoch_ns(d["first_transfer_at"]),
            "due_ns": epoch_ns(d["due_at"]),
        }
        for d in store.filing_deadlines(open_only=True)
    ]


def start_deadlines(store: Store, req: Request, now: float, revision: str) -> None:
    """`req` becomes active at `now`: start each deadline policy said it starts, unless
    its exporter's was started before; call inside the activating transaction."""
    for f in req.filings:
        due = now + f["within_s"]
        started = store.start_filing_deadline(
            f["filing"], f["exporter"], req.id, now, due, req.decision_id
        )
        if started:
            audit.append(
                store.db,
                at=now,
                actor=req.requester,
                event="filing_deadline_started",
                request_id=req.id,
                detail={"filing": f["filing"], "exporter": f["exporter"], "due": due},
                decision_id=req.decision_id,
                revision=revision,
            )
