"""Transfers through the engine: asked, approved, checked by pipelines, their copies
reported deleted, against a real OPA and a real SQLite file. The lifecycle they share with
access requests is tested for both kinds in test_lifecycle.py."""

from __future__ import annotations

import pytest

from datavisa.engine.ledger import audit
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.model.errors import Conflict, DataVisaError, Denied
from datavisa.engine.monitoring.monitor import Monitor

ANALYTICS, UPI = "eu-customer-analytics", "in-upi-transactions"
US, SINGAPORE, FRANKFURT = "aws:us-east-1", "aws:ap-southeast-1", "gcp:europe-west3"


def transfer(engine: Engine, requester: str = "alice", **kw):
    kw.setdefault("resource", ANALYTICS)
    kw.setdefault("target_region", US)
    kw.setdefault("duration_s", 3600)
    kw.setdefault("reason", "CHG-12 migration")
    if kw["resource"] == ANALYTICS and kw["target_region"] == US:
        kw.setdefault("importer", "acme-inc")
    return engine.transfers.request(requester, **kw)


def check(engine: Engine, **kw):
    return engine.transfers.check(caller="etl-eu", **kw)


def nothing_stored(engine: Engine) -> bool:
    return engine.store.requests() == [] and audit.trail(engine.store.db) == []


def logged(engine: Engine, path: str) -> list[dict]:
    return [e for e in engine.log.query() if e["path"] == path]


def test_policy_names_the_approvers_and_the_numbers(engine, clock):
    req = transfer(engine)
    assert (req.kind, req.state, req.actions) == ("transfer", "pending", ["copy"])
    assert (req.target_region, req.importer, req.retention_s) == (US, "acme-inc", None)
    assert req.approvals_required == [
        {"group": "data_owner", "count": 1},
        {"group": "dpo", "count": 1},
    ]
    assert req.pending_until == pytest.approx(req.created_at + 3600)
    assert req.countries == ["US"]
    assert engine.approve(req.id, "bob", "DE").state == "pending"
    with pytest.raises(Denied, match="no approver group"):
        engine.approve(req.id, "erin", "DE")
    opened = engine.approve(req.id, "petra", "DE")
    assert opened.state == "active"
    assert opened.delete_by is None  # kept for ever: nothing to report
    assert [e["event"] for e in engine.trail(req.id)] == [
        "transfer_requested",
        "approved",
        "approved",
        "activated",
    ]


def test_a_pipeline_is_allowed_only_what_an_open_transfer_covers_exactly(engine):
    req = transfer(engine)
    before = check(engine, resource=ANALYTICS, target_region=US, importer="acme-inc")
    assert (before.allow, before.codes) == (False, ["no_approved_transfer"])
    engine.approve(req.id, "bob", "DE")
    engine.approve(req.id, "petra", "DE")
    during = check(engine, resource=ANALYTICS, target_region=US, importer="acme-inc")
    assert during.allow, during.reasons
    assert during.result["transfer_id"] == req.id
    assert check(engine, transfer_id=req.id).allow
    for other in (
        {"resource": ANALYTICS, "target_region": US},  # no importer named
        {"resource": ANALYTICS, "target_region": US, "importer": "partner-llc"},
        {"resource": ANALYTICS, "target_region": "aws:us-west-2", "importer": "acme-inc"},
        {"resource": "us-crm-contacts", "target_region": US, "importer": "acme-inc"},
        {"transfer_id": "000000000000"},
    ):
        assert check(engine, **other).codes == ["no_approved_transfer"], other
    engine.revoke(req.id, "petra", "migration done")
    after = check(engine, transfer_id=req.id)
    assert after.codes == ["no_approved_transfer"]
    checks = logged(engine, "datavisa/transfer_check/decision")
    assert len(checks) == 9
    assert {e["requested_by"] for e in checks} == {"etl-eu"}
    assert [e["result"]["allow"] for e in checks] == [False, True, True] + [False] * 6


def test_a_transfer_never_grants_access(engine):
    req = transfer(engine, resource=ANALYTICS, target_region="azure:westeurope")
    engine.approve(req.id, "bob", "DE")
    assert engine.get(req.id).state == "active"
    assert engine.grants.sinks[0].read_all().get("alice", {}) == {}
    for action in ("read", "copy"):
        assert not engine.check("alice", ANALYTICS, action, "DE").allow


def test_access_and_transfer_of_the_same_data_do_not_conflict(engine):
    access = engine.request("alice", ANALYTICS, ["read"], 1800, "DE", "INC-1")
    copy = transfer(engine)
    assert {access.state, copy.state} == {"pending"}
    with pytest.raises(Conflict, match=f"already has transfer {copy.id} pending"):
        transfer(engine)


@pytest.mark.parametrize(
    ("ask", "code", "field"),
    [
        ({"resource": "nope"}, "unknown_resource", "resource"),
        ({"target_region": "mars:olympus-1"}, "unknown_region", "target_region"),
        ({"target_region": "aws:eu-central-1"}, "same_region", "target_region"),
        ({"resource": UPI, "target_region": SINGAPORE, "retention_s": 2 * 86400}, None, "keep"),
        ({"resource": UPI, "target_region": SINGAPORE}, None, "keep"),  # kept for ever
        ({"evidence": ["cac"]}, "unknown_evidence", "evidence"),
        ({"duration_s": 7200, "retention_s": 3600}, "window_exceeds_retention", "window"),
        ({"reason": ""}, "justification_required", "reason"),
    ],
)
def test_bad_input_names_the_field_stores_nothing_and_is_logged(engine, ask, code, field):
    with pytest.raises(Denied, match=f"{field}: ") as refused:
        transfer(engine, **ask)
    reasons = refused.value.decision.reasons
    assert field in {r.get("field") for r in reasons}
    if code:
        assert code in {r["code"] for r in reasons}
    assert nothing_stored(engine)
    [asked] = logged(engine, "datavisa/transfer_request/decision")
    assert asked["result"]["allow"] is False


def test_data_that_may_never_leave_is_refused_with_the_law_named(engine):
    with pytest.raises(Denied, match="152-FZ"):
        transfer(engine, resource="ru-customer-register", target_region="onprem:frankfurt-1")
    assert nothing_stored(engine)


def test_a_start_in_the_past_is_refused(engine, clock):
    with pytest.raises(DataVisaError, match="start is in the past"):
        transfer(engine, start_at=clock() - 1)
    assert engine.store.requests() == []


def upi(engine: Engine, target: str = SINGAPORE, requester: str = "priya"):
    """A UPI copy abroad (RBI: deleted within 24 h), approved by its data owner (dave)."""
    req = transfer(engine, requester, resource=UPI, target_region=target, retention_s=86400)
    return engine.approve(req.id, "dave", "IE")


def test_an_overdue_deletion_blocks_the_next_transfer_under_that_localisation(engine, clock):
    first = upi(engine)
    assert first.state == "active"
    assert first.delete_by == pytest.approx(first.activated_at + 86400)
    assert engine.transfers.list(overdue=True) == []
    clock.advance(86400)
    assert [t.id for t in engine.transfers.list(overdue=True)] == [first.id]
    with pytest.raises(Denied, match=f"transfer {first.id}") as blocked:
        upi(engine, FRANKFURT)
    assert blocked.value.decision.codes == ["deletion_overdue"]
    assert "RBI" in str(blocked.value)
    # data under no localisation is not blocked
    other = engine.transfers.request(
        "priya", "us-crm-contacts", "aws:us-west-2", 3600, reason="CHG-13"
    )
    assert other.state == "pending"
    deleted = engine.transfers.deleted(first.id, "priya")
    assert (deleted.deleted_by, deleted.deleted_at) == ("priya", pytest.approx(clock()))
    assert engine.trail(first.id)[-1]["detail"]["late"] is True
    assert engine.transfers.list(overdue=True) == []
    assert upi(engine, FRANKFURT).state == "active"


def test_the_overdue_deletion_alert_is_raised_once(engine, opa):
    monitor = Monitor(engine.log, engine.opa)
    first = upi(engine)
    assert monitor.check_deletions() == []  # due in 24 h, by OPA's clock
    # OPA keeps real time: make the deadline the past in the store, as time would
    engine.store.update(first.id, {"delete_by": first.activated_at - 1})
    [alert] = monitor.check_deletions()
    assert (alert.rule, alert.subject, alert.severity) == ("deletion_overdue", "priya", "high")
    assert first.id in alert.message
    assert alert.evidence == [first.decision_id]
    assert monitor.check_deletions() == []
    engine.transfers.deleted(first.id, "priya")
    assert monitor.check_deletions() == []


def test_who_may_report_a_copy_deleted(engine):
    pending = transfer(engine, resource=ANALYTICS, target_region="azure:westeurope")
    with pytest.raises(Conflict, match="never opened"):
        engine.transfers.deleted(pending.id, "alice")
    engine.approve(pending.id, "bob", "DE")
    with pytest.raises(Denied, match="only the requester"):
        engine.transfers.deleted(pending.id, "bob")
    assert engine.transfers.deleted(pending.id, "etl-eu").deleted_by == "etl-eu"  # its pipeline
    with pytest.raises(Conflict, match="already reported"):
        engine.transfers.deleted(pending.id, "alice")
    access = engine.request("oscar", ANALYTICS, ["read"], 1800, "DE", "INC-1")
    with pytest.raises(Conflict, match="not a transfer"):
        engine.transfers.deleted(access.id, "oscar")


def test_a_transfer_window_is_not_extended(engine, clock):
    req = transfer(engine, resource=ANALYTICS, target_region="azure:westeurope")
    engine.approve(req.id, "bob", "DE")
    with pytest.raises(Denied, match="not extended"):
        engine.extend(req.id, "alice", 600, "more")


def test_a_foreign_authority_gets_eu_non_personal_data_only_on_an_international_agreement(
    engine, opa
):
    ask = {
        "resource": "eu-service-metrics",
        "target_region": US,
        "importer": "acme-inc",
        "requester_kind": "foreign_public_authority",
    }
    monitor = Monitor(engine.log, engine.opa)
    with pytest.raises(Denied, match="Data Act") as refused:
        transfer(engine, "carol", **ask)
    assert refused.value.decision.codes == ["foreign_authority_request"]
    assert nothing_stored(engine)
    allowed = transfer(engine, "carol", **ask, evidence=["international_agreement"])
    assert (allowed.state, allowed.requester_kind) == ("active", "foreign_public_authority")
    assert check(engine, transfer_id=allowed.id).allow
    # the customer is told of both (the alert webhooks send it)
    notices = [a for a in monitor.run_once() if a.rule == "foreign_authority_request"]
    assert sorted("refused" in a.message for a in notices) == [False, True]
