"""Supervised grants in the lifecycle (engine/supervision), on SQLite and PostgreSQL with
the session's OPA and the shipped policy: what policy said is kept on the record; presence
is a lease judged against the engine's clock (advanced here, so nothing waits); each
transition is audited with an outbox row; the access decision denies while no supervisor
is present; a supervisor present may revoke.
"""

from __future__ import annotations

import pytest

from datavisa.engine.api.tokens import SUBJECT_PATTERN
from datavisa.engine.directory.directory import Directory
from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.location.origin import Origin
from datavisa.engine.model.errors import Conflict, Denied, NotFound
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store import open_store
from datavisa.engine.supervision import Supervision

pytestmark = pytest.mark.stores

RESOURCE = "eu-customer-analytics"  # write is supervised (bundles/default/supervision.yaml)


def _grant(engine, actions=("read", "write")) -> str:
    req = engine.request("alice", RESOURCE, list(actions), 3600, "DE", "INC-33: supervised")
    return engine.approve(req.id, "bob", "DE").id


def _events(engine, grant_id: str) -> list[str]:
    return [e["event"] for e in engine.trail(grant_id)]


def _codes(decision) -> set[str]:
    return {r["code"] for r in decision.reasons}


def test_policy_s_requirement_is_kept_and_the_grant_starts_without_a_supervisor(engine):
    grant = engine.get(_grant(engine))
    assert grant.supervision == {"supervised": True, "lease_s": 15, "heartbeat_s": 5, "grace_s": 30}
    assert grant.supervision_state == "absent"
    assert _codes(engine.check("alice", RESOURCE, "write", "DE")) == {"supervisor_absent"}
    assert _codes(engine.check("alice", RESOURCE, "read", "DE")) == {"supervisor_absent"}
    asked = engine.request("oscar", RESOURCE, ["read"], 600, "DE", "reading only")
    unsupervised = engine.approve(asked.id, "bob", "DE")
    assert unsupervised.supervision["supervised"] is False and unsupervised.state == "active"
    assert engine.check("oscar", RESOURCE, "read", "DE").allow
    with pytest.raises(Conflict, match="not supervised"):
        Supervision(engine).join(unsupervised.id, "erin", "DE")


def test_presence_is_a_lease_against_the_clock(engine, clock):
    supervision = Supervision(engine)
    grant_id = _grant(engine)
    joined = supervision.join(grant_id, "erin", "DE")
    assert joined["joined"] is True and joined["lease_s"] == 15 and joined["heartbeat_s"] == 5
    assert engine.get(grant_id).supervision_state == "present"
    assert engine.check("alice", RESOURCE, "write", "DE").allow
    clock.advance(10)
    assert supervision.join(grant_id, "erin", "DE")["joined"] is False  # a heartbeat
    clock.advance(10)
    supervision.settle()
    assert engine.get(grant_id).supervision_state == "present"  # renewed 10 s ago
    clock.advance(6)
    supervision.settle()
    assert engine.get(grant_id).supervision_state == "absent"  # 16 s since the heartbeat
    assert _codes(engine.check("alice", RESOURCE, "write", "DE")) == {"supervisor_absent"}
    clock.advance(29)
    supervision.settle()
    assert engine.get(grant_id).supervision_state == "absent"  # the grace is 30 s
    clock.advance(2)
    supervision.settle()
    assert engine.get(grant_id).supervision_state == "ended"
    expires = engine.get(grant_id).expires_at
    supervision.join(grant_id, "bob", "DE")
    assert engine.get(grant_id).supervision_state == "present"
    assert engine.get(grant_id).expires_at == expires  # the clock kept running
    left = [e for e in engine.trail(grant_id) if e["event"] == "supervisor_left"]
    assert [(e["detail"]["supervisor"], e["detail"]["how"]) for e in left] == [("erin", "lapsed")]
    assert _events(engine, grant_id)[-7:] == [
        "supervisor_joined", "grant_resumed", "supervisor_left", "grant_paused",
        "grant_sessions_ended", "supervisor_joined", "grant_resumed",
    ]  # fmt: skip


def test_leaving_pauses_only_when_no_supervisor_is_left(engine):
    supervision = Supervision(engine)
    grant_id = _grant(engine)
    supervision.join(grant_id, "erin", "DE")
    supervision.join(grant_id, "bob", "DE")
    assert supervision.leave(grant_id, "erin").supervision_state == "present"
    assert supervision.leave(grant_id, "bob").supervision_state == "absent"
    with pytest.raises(NotFound):
        supervision.leave(grant_id, "bob")
    changes = [row.grant_id for row in engine.store.grant_changes(0, 1000)]
    assert changes.count(grant_id) == 3  # activated, resumed, paused: each in the outbox


def test_who_may_supervise_is_a_logged_decision(engine):
    supervision = Supervision(engine)
    grant_id = _grant(engine)
    for who, code in (("alice", "self_supervision"), ("oscar", "supervisor_not_eligible")):
        with pytest.raises(Denied) as refused:
            supervision.join(grant_id, who, "DE")
        assert code in refused.value.decision.codes
        path = "datavisa/supervision/decision"
        assert engine.log.query(path=path, subject=who, grant_id=grant_id, allow=False)
    assert supervision.supervisors(grant_id) == []


def test_a_supervisor_present_may_revoke_and_end_a_session(engine):
    supervision = Supervision(engine)
    grant_id = _grant(engine)
    with pytest.raises(Denied):  # erin approves nothing here, and is not present yet
        engine.revoke(grant_id, "erin", "not yet")
    supervision.join(grant_id, "erin", "DE")
    with pytest.raises(NotFound, match="no open session"):  # no data system here
        supervision.end_session(grant_id, "erin", "1234")
    with pytest.raises(Denied):
        supervision.end_session(grant_id, "oscar", "1234")
    assert engine.revoke(grant_id, "erin", "saw a DROP coming").state == "revoked"
    with pytest.raises(Conflict):
        supervision.join(grant_id, "erin", "DE")


def _decisions(engine, grant_id: str) -> int:
    return len(engine.log.query(path="datavisa/supervision/decision", grant_id=grant_id))


def test_a_heartbeat_renews_the_lease_without_a_decision_until_policy_s_redecide_point(
    engine, clock
):
    """Joining is a logged decision; a heartbeat of the same supervisor on a live lease
    only moves its expiry, until the 12th (policy's redecide_every), which decides again."""
    supervision = Supervision(engine)
    grant_id = _grant(engine)
    assert supervision.join(grant_id, "erin", "DE")["decided"] is True
    assert _decisions(engine, grant_id) == 1
    trail = len(engine.trail(grant_id))
    for _ in range(10):
        clock.advance(5)
        renewed = supervision.join(grant_id, "erin", "DE")
        assert renewed["decided"] is False and renewed["joined"] is False
        assert renewed["held_until"] == pytest.approx(clock() + 15, abs=1)
    assert _decisions(engine, grant_id) == 1  # ten heartbeats, no entry in the decision log
    assert len(engine.trail(grant_id)) == trail  # nor in the audit trail
    clock.advance(5)
    assert supervision.join(grant_id, "erin", "DE")["decided"] is False  # the 11th
    clock.advance(5)
    assert supervision.join(grant_id, "erin", "DE")["decided"] is True  # the 12th decides
    assert _decisions(engine, grant_id) == 2
    assert supervision.join(grant_id, "erin", "DE")["decided"] is False  # counted afresh


def test_a_heartbeat_is_decided_again_on_a_new_policy_or_from_another_place(engine, clock):
    supervision = Supervision(engine)
    grant_id = _grant(engine)
    supervision.join(grant_id, "erin", "DE")
    engine.revision = "test-2"  # another policy revision than the lease was decided on
    assert supervision.join(grant_id, "erin", "DE")["decided"] is True
    assert supervision.join(grant_id, "erin", "DE")["decided"] is False
    assert supervision.join(grant_id, "erin", "FR")["decided"] is True  # elsewhere now
    # A lease that ran out is a join again, decided and audited.
    clock.advance(16)
    supervision.settle()
    again = supervision.join(grant_id, "erin", "FR")
    assert again["decided"] is True and again["joined"] is True


def test_a_heartbeat_policy_would_now_refuse_is_refused(engine):
    """A heartbeat from where the network places the supervisor elsewhere than they say
    is decided again (another place) and refused (location_mismatch); the lease is not
    renewed, and the refusal is in the decision log."""
    supervision = Supervision(engine)
    grant_id = _grant(engine)
    held = supervision.join(grant_id, "erin", "DE")["held_until"]
    elsewhere = Origin(channel="api", declared="DE", derived="US", address="192.0.2.7")
    with pytest.raises(Denied) as refused:
        supervision.join(grant_id, "erin", "DE", elsewhere)
    assert "location_mismatch" in refused.value.decision.codes
    assert [r["held_until"] for r in supervision.supervisors(grant_id)] == [held]
    path = "datavisa/supervision/decision"
    assert engine.log.query(path=path, subject="erin", grant_id=grant_id, allow=False)


def test_whether_a_grant_is_supervised_is_decided_again_at_approval(engine):
    """A request filed when policy asked no supervisor of it (here: filed by an older
    release, which kept no requirement) is supervised if the approval's policy says so."""
    req = engine.request("alice", RESOURCE, ["read", "write"], 3600, "DE", "INC-33")
    with engine.store.transaction():
        engine.store.update(req.id, {"supervision": {}})
    grant = engine.approve(req.id, "bob", "DE")
    assert grant.supervised and grant.supervision["supervised"] is True
    assert grant.supervision_state == "absent"
    decided = [e for e in engine.trail(grant.id) if e["event"] == "supervision_decided"]
    assert decided and decided[0]["detail"]["now"]["supervised"] is True
    assert _codes(engine.check("alice", RESOURCE, "write", "DE")) == {"supervisor_absent"}


@pytest.fixture(scope="module")
def own_opa(tmp_path_factory: pytest.TempPathFactory):
    """An OPA of this module's own: the directory pushed to it must not reach other tests."""
    out = tmp_path_factory.mktemp("bundle") / "bundle.tar.gz"
    with OpaProcess(bundle.build(POLICY_DIR, DEFAULT_BUNDLE_DIR, out, "test")) as opa:
        yield opa


def test_a_supervisor_deprovisioned_meanwhile_is_refused_at_the_redecide_point(
    tmp_path, own_opa, clock
):
    """The directory (SCIM) deprovisions erin while she supervises, policy's data changes
    but not the bundle's revision: her heartbeats renew on the standing decision until the
    12th (redecide_every), which policy refuses; her lease then runs out as any other."""
    store = open_store(tmp_path / "d.db")
    engine = Engine(store, own_opa.client(), revision="test", clock=clock,
                    log=DecisionLog(store, b"test-key"))  # fmt: skip
    engine.grants.sync()
    directory = Directory(engine, SUBJECT_PATTERN)
    schema = "urn:ietf:params:scim:schemas:core:2.0:User"
    erin = directory.create_user({"schemas": [schema], "userName": "erin", "active": True}, "okta")
    supervision = Supervision(engine)
    grant_id = _grant(engine)
    supervision.join(grant_id, "erin", "DE")
    directory.delete_user(erin.id, "okta")
    for _ in range(10):  # heartbeats 1-10 after the join, then the 11th
        clock.advance(1)
        assert supervision.join(grant_id, "erin", "DE")["decided"] is False
    clock.advance(1)
    assert supervision.join(grant_id, "erin", "DE")["decided"] is False
    clock.advance(1)
    with pytest.raises(Denied) as refused:  # the 12th: decided again, on today's directory
        supervision.join(grant_id, "erin", "DE")
    assert refused.value.decision.codes == ["unknown_supervisor"]  # deprovisioned: gone
    clock.advance(16)
    supervision.settle()
    assert engine.get(grant_id).supervision_state == "absent"
    store.close()
