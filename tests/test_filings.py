"""Filing deadlines (Vietnam's transfer impact dossier, 60 days after the first transfer):
started by the first grant that policy says starts one, overdue by OPA's clock, blocking
the exporter's next transfers until recorded, alerted by the monitor; on each store, with
a real OPA, through the engine, the CLI and the HTTP API."""

from __future__ import annotations

import json

import pytest

from datavisa.engine.ledger import audit
from datavisa.engine.model.errors import Conflict, Denied
from datavisa.engine.monitoring.monitor import Monitor

pytestmark = pytest.mark.stores  # each test on SQLite and on PostgreSQL

VN = "vn-customer-profiles"  # Vietnamese personal data; its controller is acme-vietnam
DOSSIER, EXPORTER = "vn_tia_dossier", "acme-vietnam"
SIXTY_DAYS = 60 * 86400


def reach_from_abroad(engine, who: str = "alice"):
    """Access from Germany to the Vietnamese data, approved by its owner and the DPO."""
    req = engine.request(who, VN, ["read"], 1800, "DE", "INC-7")
    engine.approve(req.id, "bob", "DE")
    return engine.approve(req.id, "minh", "VN")


def make_overdue(engine) -> None:
    """OPA keeps real time: make the deadline the past in the store, as time would."""
    with engine.store.transaction() as db:
        db.execute("UPDATE filing_deadlines SET due_at = due_at - ?", [SIXTY_DAYS + 60])


def test_the_first_access_from_abroad_starts_the_exporters_dossier_deadline(engine):
    pending = engine.request("alice", VN, ["read"], 1800, "DE", "INC-7")
    assert pending.filings == [{"filing": DOSSIER, "exporter": EXPORTER, "within_s": SIXTY_DAYS}]
    assert engine.filings.list() == []  # nothing crossed a border yet
    engine.approve(pending.id, "bob", "DE")
    grant = engine.approve(pending.id, "minh", "VN")
    assert grant.state == "active"
    [deadline] = engine.filings.list()
    assert (deadline["filing"], deadline["exporter"]) == (DOSSIER, EXPORTER)
    assert deadline["first_transfer_id"] == grant.id
    assert deadline["due_at"] == pytest.approx(grant.activated_at + SIXTY_DAYS)
    assert deadline["filed_at"] is None
    started = [e for e in engine.trail(grant.id) if e["event"] == "filing_deadline_started"]
    assert started[0]["detail"]["filing"] == DOSSIER
    # a second transfer keeps the first deadline; access from inside Vietnam starts none
    reach_from_abroad(engine, "oscar")
    inside = engine.request("kenji", VN, ["read"], 1800, "VN", "INC-8")
    assert inside.filings == []
    assert [d["first_transfer_id"] for d in engine.filings.list()] == [grant.id]


def test_an_overdue_dossier_blocks_the_next_transfer_until_it_is_recorded(engine):
    first = reach_from_abroad(engine)
    monitor = Monitor(engine.log, engine.opa)
    assert monitor.check_filings() == []  # due in 60 days, by OPA's clock
    make_overdue(engine)
    assert [d["first_transfer_id"] for d in engine.filings.list(overdue=True)] == [first.id]
    with pytest.raises(Denied, match="acme-vietnam has not filed its tia_dossier") as blocked:
        engine.request("oscar", VN, ["read"], 1800, "DE", "INC-9")
    assert blocked.value.decision.codes == ["tia_dossier_overdue"]
    assert "Decree 356/2025" in str(blocked.value)
    with pytest.raises(Denied) as copy:
        engine.transfers.request("oscar", VN, "onprem:frankfurt-1", 3600, reason="CHG-9")
    assert copy.value.decision.codes == ["tia_dossier_overdue"]
    [alert] = monitor.check_filings()
    assert (alert.rule, alert.subject, alert.severity) == ("filing_overdue", EXPORTER, "high")
    assert first.id in alert.message
    assert monitor.check_filings() == []  # counted on the open alert, not raised again

    with pytest.raises(Denied, match="only a data protection officer"):
        engine.filings.record(DOSSIER, EXPORTER, "alice")
    filed = engine.filings.record(DOSSIER, EXPORTER, "petra")
    assert filed["filed_by"] == "petra"
    [recorded] = [e for e in engine.trail(first.id) if e["event"] == "filing_recorded"]
    assert (recorded["actor"], recorded["detail"]["late"]) == ("petra", True)
    assert engine.filings.list(overdue=True) == []
    assert engine.request("oscar", VN, ["read"], 1800, "DE", "INC-9").state == "pending"
    with pytest.raises(Conflict, match="already recorded, by petra"):
        engine.filings.record(DOSSIER, EXPORTER, "petra")


def test_recording_a_filing_nobody_owes_changes_nothing(engine):
    before = audit.trail(engine.store.db)
    for filing, exporter, code in [
        ("nope", EXPORTER, "unknown_filing"),
        (DOSSIER, "acme-mars", "unknown_exporter"),
    ]:
        with pytest.raises(Denied) as refused:
            engine.filings.record(filing, exporter, "petra")
        assert refused.value.decision.codes == [code]
    with pytest.raises(Conflict, match="none of its transfers started one"):
        engine.filings.record(DOSSIER, EXPORTER, "petra")
    assert audit.trail(engine.store.db) == before
    assert engine.filings.list() == []


def test_the_cli_lists_and_records_filings(run, engine):
    first = reach_from_abroad(engine)
    listed = run("filing", "list")
    assert listed.exit_code == 0, listed.output
    assert DOSSIER in listed.output and first.id in listed.output and "not filed" in listed.output
    assert run("filing", "list", "--overdue").output.strip() == "no filings"
    bad = run("filing", "record", DOSSIER, "acme-mars", "--as", "petra")
    assert bad.exit_code == 1
    assert "exporter: no legal entity named" in bad.output
    done = run("filing", "record", DOSSIER, EXPORTER, "--as", "petra", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["filed_by"] == "petra"
    again = run("filing", "record", DOSSIER, EXPORTER, "--as", "petra")
    assert again.exit_code == 1
    assert "already recorded" in again.output
