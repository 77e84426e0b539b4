"""The grant lifecycle through the engine's API, against a real OPA, on SQLite and PostgreSQL.

Access requests and transfers share it: every test that applies to both runs for both
kinds (`kind`), the same state machine, quorum and audit chain answering.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from datavisa.engine.ledger import audit
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.model.errors import Conflict, DataVisaError, Denied, NotFound
from datavisa.engine.model.records import Request

pytestmark = pytest.mark.stores  # each test on SQLite and on PostgreSQL

CONFIDENTIAL, RESTRICTED = "eu-customer-analytics", "eu-payments-ledger"
# Where a transfer of each copies to: inside the EU, so it needs the approvers an access
# from DE does (the data owner; for restricted data a security officer too).
TARGETS = {CONFIDENTIAL: "azure:westeurope", RESTRICTED: "aws:eu-central-1"}


@dataclass(frozen=True)
class Kind:
    """How a test asks for, and uses, a request of one kind."""

    name: str
    noun: str  # what a Conflict calls it
    requested: str  # the audit event that files it
    gone: str  # the reason a use is refused once it ended

    def ask(self, engine: Engine, resource: str = CONFIDENTIAL, requester: str = "alice", **kw):
        kw.setdefault("duration_s", 1800)
        if self.name == "transfer":
            return engine.transfers.request(
                requester, resource, TARGETS[resource], reason="INC-1", **kw
            )
        return engine.request(requester, resource, ["read"], location="DE", reason="INC-1", **kw)

    def use(self, engine: Engine, req: Request):
        """The decision a use of `req` gets now: an access check, or a pipeline's check."""
        if self.name == "transfer":
            return engine.transfers.check(resource=req.resource, target_region=req.target_region)
        return engine.check(req.requester, req.resource, "read", "DE")


KINDS = [
    Kind("access", "request", "requested", "no_active_grant"),
    Kind("transfer", "transfer", "transfer_requested", "no_approved_transfer"),
]


@pytest.fixture(params=KINDS, ids=[k.name for k in KINDS])
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param


def events(engine: Engine, request_id: str) -> list[str]:
    return [e["event"] for e in engine.trail(request_id)]


def test_restricted_needs_a_data_owner_and_a_security_officer(engine, kind):
    req = kind.ask(engine, RESTRICTED)
    assert req.approvals_required == [
        {"group": "data_owner", "count": 1},
        {"group": "security_officer", "count": 1},
    ]
    assert engine.approve(req.id, "dave", "IE").state == "pending"
    with pytest.raises(Denied, match="already approved"):
        engine.approve(req.id, "dave", "IE")
    with pytest.raises(Denied, match="no approver group"):
        engine.approve(req.id, "bob", "DE")  # a data owner, but of another team's data
    assert engine.approve(req.id, "erin", "DE").state == "active"
    assert [a.approver for a in engine.approvals(req.id)] == ["dave", "erin"]
    assert events(engine, req.id) == [kind.requested, "approved", "approved", "activated"]


def test_the_requester_never_counts(engine, kind):
    req = kind.ask(engine)
    with pytest.raises(Denied, match="own request"):
        engine.approve(req.id, "alice", "DE")
    assert engine.get(req.id).state == "pending"
    assert engine.approvals(req.id) == []


def test_one_deny_ends_the_request(engine, kind):
    req = kind.ask(engine, RESTRICTED)
    engine.approve(req.id, "dave", "IE")
    denied = engine.deny(req.id, "erin", "use the extract")
    assert (denied.state, denied.ended_by, denied.end_reason) == (
        "denied",
        "erin",
        "use the extract",
    )
    with pytest.raises(Conflict, match="it is denied, not pending"):
        engine.approve(req.id, "erin", "DE")
    assert engine.get(req.id).state == "denied"


def test_only_an_approver_may_deny(engine, kind):
    req = kind.ask(engine)
    with pytest.raises(Denied, match="not an approver"):
        engine.deny(req.id, "carol")


def test_pending_request_lapses_by_time_and_the_sweep_records_it(engine, kind, clock):
    req = kind.ask(engine)
    clock.advance(req.pending_until - clock() + 1)
    assert engine.get(req.id).state == "lapsed"
    with pytest.raises(Conflict, match="it is lapsed"):
        engine.approve(req.id, "bob", "DE")
    assert engine.sweep() == {"lapsed": 1}
    assert engine.sweep() == {}
    stored = engine.store.get(req.id)
    assert (stored.state, stored.ended_at, stored.ended_by) == (
        "lapsed",
        req.pending_until,
        "datavisa",
    )
    assert events(engine, req.id) == [kind.requested, "lapsed"]


def test_scheduled_start_waits_for_activation_and_the_clock_starts_then(engine, kind, clock):
    start = clock() + 600
    req = kind.ask(engine, start_at=start)
    approved = engine.approve(req.id, "bob", "DE")
    assert approved.state == "approved"
    assert approved.activate_by == start + approved.activation_deadline_s
    with pytest.raises(Conflict, match="from its start"):
        engine.activate(req.id, "alice")
    clock.advance(700)
    with pytest.raises(Denied, match="only the requester"):
        engine.activate(req.id, "bob")
    active = engine.activate(req.id, "alice")
    assert active.state == "active"
    assert active.expires_at == pytest.approx(clock() + 1800, abs=1)
    assert events(engine, req.id) == [kind.requested, "approved", "scheduled", "activated"]


def test_approved_grant_lapses_at_its_activation_deadline(engine, kind, clock):
    req = kind.ask(engine, start_at=clock() + 60)
    approved = engine.approve(req.id, "bob", "DE")
    clock.advance(approved.activate_by - clock())
    with pytest.raises(Conflict, match="it is lapsed, not approved"):
        engine.activate(req.id, "alice")
    assert engine.sweep() == {"lapsed": 1}


def test_start_in_the_past_is_refused_and_stores_nothing(engine, kind, clock):
    with pytest.raises(Denied, match="start is in the past") as refused:
        kind.ask(engine, start_at=clock() - 1)
    assert [r["code"] for r in refused.value.decision.reasons] == ["start_in_past"]
    assert engine.list_requests() == []


def test_a_start_further_ahead_than_policy_allows_is_refused(engine, kind, clock):
    """Policy says how far ahead a start may be (30 days where the tier does not say)."""
    kind.ask(engine, start_at=clock() + 30 * 86400)
    with pytest.raises(Denied, match="at most 2592000s ahead") as refused:
        kind.ask(engine, requester="carol", start_at=clock() + 30 * 86400 + 1)
    assert [r["code"] for r in refused.value.decision.reasons] == ["start_too_far_ahead"]


def test_second_request_for_the_same_thing_is_refused(engine, kind):
    first = kind.ask(engine)
    with pytest.raises(Conflict, match=f"already has {kind.noun} {first.id} pending"):
        kind.ask(engine)
    engine.approve(first.id, "bob", "DE")
    with pytest.raises(Conflict, match="active"):
        kind.ask(engine)
    assert len(engine.list_requests()) == 1
    assert kind.ask(engine, requester="oscar").state == "pending"


def test_revoke_takes_effect_before_it_returns(engine, kind):
    req = kind.ask(engine)
    engine.approve(req.id, "bob", "DE")
    assert kind.use(engine, req).allow
    revoked = engine.revoke(req.id, "bob", "done")
    assert revoked.state == "revoked"
    decision = kind.use(engine, req)
    assert not decision.allow
    assert decision.codes == [kind.gone]
    with pytest.raises(Conflict, match="it is revoked"):
        engine.revoke(req.id, "bob")


def test_only_approvers_revoke_and_only_the_requester_relinquishes(engine, kind):
    req = kind.ask(engine)
    engine.approve(req.id, "bob", "DE")
    with pytest.raises(Denied, match="not an approver"):
        engine.revoke(req.id, "carol")
    with pytest.raises(Denied, match="only the requester"):
        engine.relinquish(req.id, "bob")
    assert engine.relinquish(req.id, "alice").state == "relinquished"
    assert not kind.use(engine, req).allow
    with pytest.raises(Conflict, match="it is relinquished"):
        engine.relinquish(req.id, "alice")


def test_cancel_is_for_the_requester_before_activation(engine, kind):
    req = kind.ask(engine)
    with pytest.raises(Denied, match="only the requester"):
        engine.cancel(req.id, "bob")
    assert engine.cancel(req.id, "alice").state == "cancelled"
    with pytest.raises(Conflict, match="it is cancelled"):
        engine.approve(req.id, "bob", "DE")
    other = kind.ask(engine, requester="oscar")
    engine.approve(other.id, "bob", "DE")
    with pytest.raises(Conflict, match="it is active, not approved or pending"):
        engine.cancel(other.id, "oscar")


def test_expired_grant_cannot_be_revoked_or_extended(engine, kind, clock):
    req = kind.ask(engine)
    engine.approve(req.id, "bob", "DE")
    clock.advance(1801)
    assert engine.get(req.id).state == "expired"
    with pytest.raises(Conflict, match="it is expired"):
        engine.revoke(req.id, "bob")
    with pytest.raises(Conflict, match="it is expired"):
        engine.extend(req.id, "alice", 600)
    assert engine.sweep() == {"expired": 1}
    assert events(engine, req.id)[-1] == "expired"


@pytest.mark.parametrize(
    "call",
    [
        lambda e: e.approve("nope", "bob"),
        lambda e: e.deny("nope", "bob"),
        lambda e: e.cancel("nope", "alice"),
        lambda e: e.activate("nope", "alice"),
        lambda e: e.revoke("nope", "bob"),
        lambda e: e.relinquish("nope", "alice"),
        lambda e: e.extend("nope", "alice", 60),
        lambda e: e.review("nope", "bob", "accepted"),
        lambda e: e.get("nope"),
    ],
)
def test_unknown_ids_are_not_found(engine, call):
    with pytest.raises(NotFound, match="no request with id 'nope'"):
        call(engine)


def test_list_filters_by_effective_state_and_requester(engine, kind, clock):
    a = kind.ask(engine)
    b = kind.ask(engine, requester="oscar")
    engine.approve(b.id, "bob", "DE")
    assert [r.id for r in engine.list_requests("pending")] == [a.id]
    assert [r.id for r in engine.list_requests("active")] == [b.id]
    assert [r.id for r in engine.list_requests(requester="oscar")] == [b.id]
    clock.advance(1801)
    assert [r.id for r in engine.list_requests("expired")] == [b.id]
    assert engine.list_requests("active") == []
    with pytest.raises(DataVisaError, match="unknown state"):
        engine.list_requests("sleeping")


def test_every_transition_is_audited_in_an_intact_chain(engine, kind, clock):
    a = kind.ask(engine)
    engine.approve(a.id, "bob", "DE")
    engine.relinquish(a.id, "alice")
    b = kind.ask(engine)
    engine.cancel(b.id, "alice")
    c = kind.ask(engine)
    clock.advance(4000)
    engine.sweep()
    verdict = audit.verify(engine.store.db)
    assert verdict.ok
    assert verdict.checked == 8
    assert events(engine, c.id) == [kind.requested, "lapsed"]


def test_an_approver_may_change_their_mind_and_deny(engine, kind):
    req = kind.ask(engine, RESTRICTED)
    engine.approve(req.id, "dave", "IE")
    assert engine.deny(req.id, "dave", "second thoughts").state == "denied"
    assert [a.verdict for a in engine.approvals(req.id)] == ["approve", "deny"]
