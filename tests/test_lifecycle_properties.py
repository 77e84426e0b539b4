"""Random sequences of lifecycle operations by random actors, with time passing, against
the real OPA; after every step the lifecycle's invariants must hold."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from datavisa.engine.ledger import audit
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.model.errors import DataVisaError
from datavisa.engine.model.records import ACTIVE, APPROVED, FINAL
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store.sqlite import Store

RESOURCES = ["eu-customer-analytics", "eu-payments-ledger"]
REQUESTERS = ["alice", "oscar"]
# Weighted towards what moves a request along, so grants do activate and end.
ACTORS = ["bob", "bob", "dave", "erin", "alice", "oscar", "carol"]
LOCATIONS = ["DE", "DE", "IE", "US", "unknown"]
APPROVERS = {
    "eu-customer-analytics": [("bob", "DE")],
    "eu-payments-ledger": [("dave", "IE"), ("erin", "DE")],
}


def test_lifecycle_invariants_hold_under_random_operations(opa: OpaProcess):
    class Lifecycle(RuleBasedStateMachine):
        requests = Bundle("requests")

        @initialize()
        def start(self) -> None:
            self.tmp = tempfile.TemporaryDirectory()
            self.store = Store(Path(self.tmp.name) / "datavisa.db")
            self.engine = Engine(self.store, opa.client(), revision="test")
            self.engine.grants.sync()
            self.final: dict[str, str] = {}
            self.resource: dict[str, str] = {}

        def teardown(self) -> None:
            if hasattr(self, "store"):
                self.store.close()
                self.tmp.cleanup()

        def _try(self, call, *args):
            try:
                return call(*args)
            except DataVisaError:
                return None  # refusals are fine; the invariants say what must never happen

        @rule(
            target=requests,
            requester=st.sampled_from(REQUESTERS),
            resource=st.sampled_from(RESOURCES),
            duration_s=st.sampled_from([1, 2, 600, 600]),
            location=st.sampled_from(["DE", "DE", "DE", "US"]),
        )
        def request(self, requester, resource, duration_s, location):
            req = self._try(
                self.engine.request, requester, resource, ["read"], duration_s, location, "why"
            )
            if req is None:
                return multiple()
            self.resource[req.id] = resource
            return req.id

        @rule(rid=requests, actor=st.sampled_from(ACTORS), location=st.sampled_from(LOCATIONS))
        def approve(self, rid, actor, location):
            self._try(self.engine.approve, rid, actor, location)

        @rule(rid=requests, pick=st.integers(0, 1))
        def approve_as_an_approver(self, rid, pick):
            # The fixture directory's approvers of each resource, so quorums do complete.
            approvers = APPROVERS[self.resource[rid]]
            self._try(self.engine.approve, rid, *approvers[pick % len(approvers)])

        @rule(rid=requests, actor=st.sampled_from(ACTORS))
        def deny(self, rid, actor):
            self._try(self.engine.deny, rid, actor, "no")

        @rule(rid=requests, actor=st.sampled_from(ACTORS))
        def cancel(self, rid, actor):
            self._try(self.engine.cancel, rid, actor)

        @rule(rid=requests, actor=st.sampled_from(ACTORS))
        def revoke(self, rid, actor):
            self._try(self.engine.revoke, rid, actor, "done")

        @rule(rid=requests, actor=st.sampled_from(ACTORS))
        def relinquish(self, rid, actor):
            self._try(self.engine.relinquish, rid, actor)

        @rule()
        def sweep(self):
            self.engine.sweep()

        @rule(seconds=st.sampled_from([0.3, 0.7]))
        def time_passes(self, seconds):
            time.sleep(seconds)

        @invariant()
        def never_active_without_distinct_eligible_approvals(self):
            for req in self.engine.list_requests():
                if req.activated_at is None and req.state != APPROVED:
                    continue
                approvers = [
                    a.approver for a in self.engine.approvals(req.id) if a.verdict == "approve"
                ]
                assert req.requester not in approvers
                assert len(set(approvers)) == len(approvers)
                assert len(approvers) >= sum(r["count"] for r in req.approvals_required)

        @invariant()
        def never_allowed_past_expiry_or_after_an_end(self):
            for subject in REQUESTERS:
                for resource in RESOURCES:
                    before = time.time()
                    decision = self.engine.check(subject, resource, "read", "DE")
                    if not decision.allow:
                        continue
                    grant = self.store.get(decision.result["grant_id"])
                    assert grant.state == ACTIVE, grant
                    assert grant.expires_at > before

        @invariant()
        def never_back_from_a_final_state(self):
            for req in self.engine.list_requests():
                if req.id in self.final:
                    assert req.state == self.final[req.id]
                elif req.state in FINAL:
                    self.final[req.id] = req.state

        @invariant()
        def audit_chain_intact(self):
            assert audit.verify(self.store.db).ok

    run_state_machine_as_test(
        Lifecycle,
        settings=settings(
            max_examples=12,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
