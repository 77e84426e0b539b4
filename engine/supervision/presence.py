"""Supervised grants: a grant policy made supervised works only while a supervisor is present.

Presence is a lease stored with the grant (the store's `supervisors`): a supervisor joins
(`join`: a lease until now + the lease policy gives), renews it with each heartbeat (the
same call), and leaves (`leave`: the lease ends). Whether that person may supervise is a
logged decision (datavisa.supervision), asked at every join; a heartbeat renews a live
lease on its standing decision until policy's `redecide_every` heartbeats have passed, or
the policy revision or the supervisor's location changed, and is decided again then, so a
person policy no longer lets supervise stops counting within that many heartbeats. The
only thing decided here is "is a lease alive" (its expiry against the clock).

A supervised active grant is in one of three states (`Request.supervision_state`):

    present ──no lease alive──► absent ──grace_s later──► ended
       ▲                          │                         │
       └──────── a supervisor joins (grant_resumed) ◄───────┘

- present: the grant works;
- absent: the access check denies (supervisor_absent, decided in datavisa.access) and the
  data systems refuse the grant's login; its open sessions run on for the grace;
- ended: absent past the grace: its open sessions are ended too.

The grant's clock keeps running in every state. Each transition is written with its audit
events and a grant-outbox row in one transaction, so every sink (the OPAs, the sidecar
bundle, the databases) takes it like any other grant change; a lapsed lease is noticed by
`settle`, which every engine on a store runs (`SupervisionTimer`), at the instant the
soonest lease runs out or grace ends: the transition is made once, by whichever engine
gets there first, and the outbox's NOTIFY carries it to the others.

May import: `model`, `store`, `ledger`, `policy`, `lifecycle`. Never `api`.
"""

from __future__ import annotations

import logging
from typing import Any

from ..identity.oidc import Identity
from ..lifecycle.engine import Engine, located, request_input
from ..location.origin import Origin
from ..model.errors import Conflict, Denied, NotFound
from ..model.records import (
    ABSENT,
    ACTIVE,
    ADD,
    PRESENT,
    SESSION_FAILED,
    SESSION_NOT_FOUND,
    SESSION_PENDING,
    SYSTEM,
    UNWATCHED,
    Request,
)
from ..model.worker import Worker
from ..policy.decide import LIFECYCLE, SUPERVISION

log = logging.getLogger("datavisa.supervision")

POLL_S = 0.25  # the longest the timer waits before it looks again (another engine's join)


class Supervision:
    """The supervision verbs on `engine`'s grants."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def join(
        self,
        grant_id: str,
        supervisor: str,
        location: str = "unknown",
        origin: Origin | None = None,
        authentication: Identity | None = None,
    ) -> dict[str, Any]:
        """Join (or, already joined, renew the lease on) supervised grant `grant_id` as
        `supervisor` from `location`: policy decides whether they may (logged), and how
        long the lease lasts. The grant resumes if no supervisor was present. Denied when
        policy refuses; the answer says until when the lease holds and how often to
        renew it.

        A heartbeat renews a live lease on its standing decision, with no new decision
        (`decided` false), until policy's `redecide_every` heartbeats have passed, the
        policy revision is another than the one the lease was decided on, or the
        supervisor speaks from elsewhere: then it is decided again (a renewal: step-up is
        the join's)."""
        engine = self.engine
        location, where = located(location, origin)
        said = f"{location}/{where.get('source', 'declared')}"
        renewed = self._renew(grant_id, supervisor, said)
        if renewed is not None:
            return renewed
        grant = self._grant(grant_id)
        asked: dict[str, Any] = {
            "supervisor": supervisor,
            "supervisor_location": location,
            "grant": {**request_input(grant), "supervised": grant.supervised},
            "origin": where,
        }
        if self._lease(grant_id, supervisor, engine.clock()) is not None:
            asked["renewal"] = True  # a heartbeat decided again: the join had the step-up
        decision = engine.decide(SUPERVISION, asked, supervisor, authentication)
        if not decision.allow:
            raise Denied("supervision refused", decision)
        lease_s = float(decision.result["lease_s"])
        decided = {
            "revision": engine.revision,
            "location": said,
            "redecide_every": int(decision.result.get("redecide_every", 1)),
            "lease_s": lease_s,
        }
        with engine.store.transaction():
            now = engine.clock()
            grant = self._grant(grant_id, now)
            held_until = now + lease_s
            joined = engine.store.hold_supervision(
                grant_id, supervisor, held_until, now, decision.decision_id, decided
            )
            if joined:
                detail = {"supervisor": supervisor, "location": location, "held_until": held_until}
                engine.audit_event(now, supervisor, "supervisor_joined", grant, decision, detail)
            resumed = grant.supervision_state != PRESENT
            if resumed:
                self._move(grant, PRESENT, now, supervisor, "grant_resumed", {})
        if resumed:
            engine.grants.apply()
        return {
            "grant_id": grant_id,
            "supervisor": supervisor,
            "joined": joined,
            "decided": True,
            "held_until": held_until,
            "lease_s": lease_s,
            "heartbeat_s": float(decision.result["heartbeat_s"]),
            "grace_s": float(decision.result["grace_s"]),
            "decision_id": decision.decision_id,
        }

    def _renew(self, grant_id: str, supervisor: str, said: str) -> dict[str, Any] | None:
        """Renew `supervisor`'s live lease on its standing decision, when policy's
        re-decide point is not reached (see `join`): the answer, None when a decision is
        due. Only the lease's expiry moves; no decision, no audit event."""
        engine = self.engine
        with engine.store.transaction():
            now = engine.clock()
            lease = self._lease(grant_id, supervisor, now)
            if (
                lease is None
                or lease["revision"] != engine.revision
                or lease["location"] != said
                or not lease["lease_s"]
                or lease["renewals"] + 1 >= (lease["redecide_every"] or 1)
            ):
                return None
            grant = self._grant(grant_id, now)
            if grant.supervision_state != PRESENT:  # a transition to write: decide it
                return None
            held_until = now + float(lease["lease_s"])
            engine.store.hold_supervision(grant_id, supervisor, held_until, now, None)
        numbers = grant.supervision
        return {
            "grant_id": grant_id,
            "supervisor": supervisor,
            "joined": False,
            "decided": False,
            "held_until": held_until,
            "lease_s": float(lease["lease_s"]),
            "heartbeat_s": float(numbers.get("heartbeat_s", lease["lease_s"])),
            "grace_s": float(numbers.get("grace_s", 0)),
            "decision_id": lease["decision_id"],
        }

    def _lease(self, grant_id: str, supervisor: str, now: float) -> dict[str, Any] | None:
        """`supervisor`'s lease on `grant_id` if it is alive at `now`."""
        return next(
            (row for row in self.engine.store.supervisors(grant_id)
             if row["supervisor"] == supervisor and row["held_until"] >= now),
            None,
        )  # fmt: skip

    def leave(self, grant_id: str, supervisor: str) -> Request:
        """End `supervisor`'s lease on `grant_id`; with no other supervisor present, the
        grant pauses. NotFound when they had none."""
        engine = self.engine
        with engine.store.transaction():
            now = engine.clock()
            grant = self._grant(grant_id, now)
            if not engine.store.drop_supervision(grant_id, supervisor):
                raise NotFound(f"{supervisor} does not supervise grant {grant_id}")
            detail = {"supervisor": supervisor, "how": "left"}
            engine.audit_event(now, supervisor, "supervisor_left", grant, None, detail)
            moved = self._settle_one(grant, now, supervisor)
        if moved:
            engine.grants.apply()
        return engine.get(grant_id)

    def end_session(self, grant_id: str, actor: str, session: str) -> dict[str, Any]:
        """Ask to end one session of the grant's account (a supervisor watching it, or
        whoever the lifecycle policy lets end_session): a logged decision; the ask, its
        audit event and a grant-outbox row in one transaction; the connector holding the
        grant ends it when it applies the outbox (audited as `session_ended`). The answer
        says how it went: `state` ended, or pending (`pending_sinks`: a data system did
        not take it yet; the outbox retries, `session_end` tells later). NotFound when no
        data system holds the grant, or the one that does has no such session; Conflict
        when the data system refused to end it."""
        engine = self.engine
        grant = self._grant(grant_id)
        asked = {"actor": actor, "action": "end_session", "request": request_input(grant),
                 "supervising": engine.supervising(grant_id, actor)}  # fmt: skip
        decision = engine.decide(LIFECYCLE, asked, caller=actor)
        if not decision.allow:
            raise Denied("end_session refused", decision)
        holders = [
            sink.name
            for sink in engine.grants.sinks
            if getattr(sink, "provisions", False) and sink.holds(grant_id)
        ]
        if not holders:
            raise NotFound(
                f"grant {grant_id} has no open session {session!r}: no data system holds it"
            )
        with engine.store.transaction():
            now = engine.clock()
            grant = self._grant(grant_id, now)
            seq = engine.store.add_session_end(grant_id, session, actor, now, decision.decision_id)
            detail = {"session": session, "sinks": holders, "end": seq}
            engine.audit_event(now, actor, "session_end_asked", grant, decision, detail)
            engine.grants.record(grant, ADD, now)  # level-triggered: the sink reads the ask
        behind = engine.grants.apply()
        answer = self.session_end(grant_id, seq)
        if answer["state"] == SESSION_NOT_FOUND:
            raise NotFound(f"grant {grant_id} has no open session {session!r}")
        if answer["state"] == SESSION_FAILED:  # the system refused it (the log says why)
            raise Conflict(f"{answer['sink']} refused to end session {session!r} of {grant_id}")
        if answer["state"] == SESSION_PENDING:
            answer["pending_sinks"] = [name for name in holders if name in behind] or holders
        return answer

    def session_end(self, grant_id: str, seq: int) -> dict[str, Any]:
        """How the session end `seq` asked of `grant_id` went: state pending, ended,
        not_found (no such session), grant_ended (the grant ended first, and its sessions
        with it) or failed. NotFound for another grant's, or none."""
        row = self.engine.store.session_end(seq)
        if row is None or row["grant_id"] != grant_id:
            raise NotFound(f"grant {grant_id} has no session end {seq}")
        return {
            "grant_id": grant_id,
            "session": row["session"],
            "end": row["seq"],
            "state": row["state"],
            "sink": row["sink"],
            "asked_by": row["asked_by"],
            "asked_at": row["asked_at"],
            "done_at": row["done_at"],
            "decision_id": row["decision_id"],
        }

    def supervisors(self, grant_id: str) -> list[dict[str, Any]]:
        """The grant's supervisor leases, each with whether it is alive now."""
        now = self.engine.clock()
        return [
            {**row, "alive": row["held_until"] >= now}
            for row in self.engine.store.supervisors(grant_id)
        ]

    def settle(self) -> float | None:
        """Write down what time decided: a present grant whose every lease ran out is
        absent, an absent one past its grace is ended. When to look next (the soonest
        lease expiry or grace end), None when no supervised grant is live."""
        engine = self.engine
        moved = False
        with engine.store.transaction():
            now = engine.clock()
            for grant in engine.store.supervised_grants({PRESENT, ABSENT}):
                if grant.expires_at is not None and grant.expires_at <= now:
                    continue  # expired: the sweep ends it
                moved |= self._settle_one(grant, now, SYSTEM)
        if moved:
            engine.grants.apply()
        return self._next_due(engine.clock())

    # -- transitions --------------------------------------------------------------------

    def _settle_one(self, grant: Request, now: float, actor: str) -> bool:
        """Move `grant` on as its leases and grace say; whether it moved. Inside the
        transaction."""
        engine = self.engine
        leases = engine.store.supervisors(grant.id)
        alive = [row for row in leases if row["held_until"] >= now]
        if grant.supervision_state == PRESENT and not alive:
            for row in leases:  # the leases that ran out: their supervisor is gone
                engine.store.drop_supervision(grant.id, row["supervisor"])
                engine.audit_event(
                    now, SYSTEM, "supervisor_left", grant, None,
                    {"supervisor": row["supervisor"], "how": "lapsed",
                     "held_until": row["held_until"]},
                )  # fmt: skip
            self._move(grant, ABSENT, now, actor, "grant_paused", {})
            return True
        grace_s = float(grant.supervision.get("grace_s", 0))
        since = grant.supervision_since or now
        if grant.supervision_state == ABSENT and not alive and now >= since + grace_s:
            self._move(grant, UNWATCHED, now, SYSTEM, "grant_sessions_ended", {"grace_s": grace_s})
            return True
        return False

    def _move(
        self, grant: Request, to: str, now: float, actor: str, event: str, detail: dict[str, Any]
    ) -> None:
        """The one place a supervised grant's presence changes: written, audited and put
        in the grant outbox together (inside the caller's transaction)."""
        engine = self.engine
        changes = {"supervision_state": to, "supervision_since": now}
        engine.store.update(grant.id, changes)
        grant.supervision_state, grant.supervision_since = to, now
        engine.grants.record(grant, ADD, now)  # level-triggered: sinks read the grant anew
        engine.audit_event(now, actor, event, grant, None, {"supervision": to, **detail})

    def _grant(self, grant_id: str, now: float | None = None) -> Request:
        grant = self.engine.store.get(grant_id)
        if grant is None:
            raise NotFound(f"no grant with id {grant_id!r}")
        now = self.engine.clock() if now is None else now
        if self.engine.view(grant, now).state != ACTIVE:
            raise Conflict(f"grant {grant_id} is {self.engine.view(grant, now).state}, not active")
        if not grant.supervised:
            raise Conflict(f"grant {grant_id} is not supervised: policy did not make it so")
        return grant

    def _next_due(self, now: float) -> float | None:
        due: list[float] = []
        for grant in self.engine.store.supervised_grants({PRESENT, ABSENT}):
            if grant.supervision_state == PRESENT:
                due += [row["held_until"] for row in self.engine.store.supervisors(grant.id)]
            else:
                since = grant.supervision_since or now
                due.append(since + float(grant.supervision.get("grace_s", 0)))
        return min(due) if due else None


class SupervisionTimer(Worker):
    """Runs `settle` at the instant the soonest lease runs out or grace ends (and at least
    every POLL_S, so a lease another engine took moves the timer): every engine sharing a
    store runs one, and a kill -9 of a supervisor's watch pauses the grant on time even
    when the engine it talked to is gone too."""

    def __init__(self, supervision: Supervision) -> None:
        super().__init__("supervision-timer")
        self.supervision = supervision

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = POLL_S
            try:
                due = self.supervision.settle()
                if due is not None:
                    wait = min(POLL_S, due - self.supervision.engine.clock())
            except Exception:  # a store or OPA fault: try again, never die
                log.exception("the supervision timer failed")
            self._stop.wait(max(wait, 0.005))
