"""China's PIPL export route by the exporter's yearly count: transfers declare how many
individuals they carry, are counted when approved (in that transaction), and are refused
once the year's count with them reaches a route whose evidence is not on file; splitting
does not dodge it, concurrent approvals cannot both slip under a threshold, the count
starts again on 1 January in Shanghai. On each store, with a real OPA, through the
engine, the CLI and `policy eval --at`."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from datavisa.cli.main import cli
from datavisa.engine.ledger import audit
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.model.errors import DataVisaError, Denied
from datavisa.engine.store import open_store

pytestmark = pytest.mark.stores  # each test on SQLite and on PostgreSQL

CN, JAPAN = "cn-customer-profiles", "aws:ap-northeast-1"  # its controller is acme-china
EXPORTER, COUNTER = "acme-china", "pipl_export"
REQUESTERS = ("alice", "oscar", "grace", "heidi")  # one transfer each: no duplicates


def this_year() -> int:
    """The calendar year in Shanghai now, as OPA's (real) clock decides it."""
    return datetime.now(ZoneInfo("Asia/Shanghai")).year


def ask(engine: Engine, who: str, individuals: int | None, sensitive: int | None = 0, **kw):
    return engine.transfers.request(
        who, CN, JAPAN, 3600, reason="CHG-51 CRM sync",
        individuals=individuals, sensitive_individuals=sensitive, **kw,
    )  # fmt: skip


def approve(engine: Engine, request_id: str):
    """The data owner, then the data protection officer of China: the quorum."""
    engine.approve(request_id, "bob", "DE")
    return engine.approve(request_id, "mei", "CN")


def counts(engine: Engine) -> list[tuple[str, str, int, int, int]]:
    return [
        (c["counter"], c["exporter"], c["year"], c["individuals"], c["sensitive_individuals"])
        for c in engine.store.export_counts()
    ]


def test_a_transfer_counts_when_approved_not_when_asked(engine):
    pending = ask(engine, "alice", 60000)
    assert (pending.individuals, pending.sensitive_individuals) == (60000, 0)
    assert counts(engine) == []  # asked, not approved: nothing may be copied yet
    engine.approve(pending.id, "bob", "DE")
    assert counts(engine) == []  # the quorum is not met
    active = engine.approve(pending.id, "mei", "CN")
    assert active.state == "active"
    assert counts(engine) == [(COUNTER, EXPORTER, this_year(), 60000, 0)]
    [counted] = engine.get(active.id).exports
    assert counted["route"] == "exempt"
    assert (counted["before_individuals"], counted["individuals"]) == (0, 60000)
    [event] = [e for e in engine.trail(active.id) if e["event"] == "export_counted"]
    assert (event["actor"], event["detail"]["total_individuals"]) == ("mei", 60000)
    assert engine.transfers.check(active.id).allow


def test_splitting_into_small_transfers_is_refused_once_the_sum_crosses(engine):
    approve(engine, ask(engine, "alice", 60000).id)
    approve(engine, ask(engine, "oscar", 39999).id)  # 99,999 this year: still exempt
    with pytest.raises(Denied) as refused:
        ask(engine, "grace", 1)  # the 100,000th individual
    assert refused.value.decision.codes == ["export_route_evidence_required"]
    message = str(refused.value)
    assert "reach 100000 individuals" in message
    assert "standard contract or certification route" in message
    assert "Art. 8" in message and "2026-01-01" in message
    assert counts(engine) == [(COUNTER, EXPORTER, this_year(), 99999, 0)]
    # with the standard contract filed, the route is open
    grace = approve(engine, ask(engine, "grace", 1, evidence=["pipl_standard_contract"]).id)
    assert grace.exports[0]["route"] == "standard_contract_or_certification"
    assert counts(engine) == [(COUNTER, EXPORTER, this_year(), 100000, 0)]
    # the earlier transfers' checks keep the route they were approved on
    first = engine.transfers.list(requester="alice")[0]
    assert engine.transfers.check(first.id).allow


def test_an_approval_is_judged_again_on_the_counts_of_now(engine):
    first, second = ask(engine, "alice", 60000), ask(engine, "oscar", 60000)  # each exempt alone
    approve(engine, first.id)
    trail = audit.trail(engine.store.db)
    with pytest.raises(Denied) as refused:
        engine.approve(second.id, "bob", "DE")
    assert "export_route_evidence_required" in refused.value.decision.codes
    assert "reach 120000 individuals" in str(refused.value)
    assert engine.get(second.id).state == "pending"
    assert counts(engine) == [(COUNTER, EXPORTER, this_year(), 60000, 0)]
    assert audit.trail(engine.store.db) == trail


def test_concurrent_approvals_cannot_both_slip_under_the_threshold(engine, db: Path):
    """Two engines on the one store (as behind a load balancer) give the last approval of
    two transfers at once; together they would cross 100,000 individuals."""
    other = Engine(open_store(db), engine.opa, revision="test", log=engine.log)
    try:
        for round_ in range(3):
            a, b = REQUESTERS[2 * (round_ % 2)], REQUESTERS[2 * (round_ % 2) + 1]
            pending = [ask(engine, a, 60000), ask(engine, b, 60000)]
            for req in pending:
                engine.approve(req.id, "bob", "DE")
            barrier = threading.Barrier(2)
            done: dict[str, object] = {}

            def last(eng: Engine, rid: str, barrier=barrier, done=done) -> None:
                barrier.wait()
                try:
                    done[rid] = eng.approve(rid, "mei", "CN").state
                except DataVisaError as e:
                    done[rid] = e

            threads = [
                threading.Thread(target=last, args=(eng, req.id))
                for eng, req in zip((engine, other), pending, strict=True)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            outcomes = sorted(done.values(), key=str)
            assert sum(o == "active" for o in outcomes) == 1, outcomes
            [lost] = [o for o in outcomes if o != "active"]
            assert isinstance(lost, Denied), lost
            assert "export_route_evidence_required" in lost.decision.codes
            total = sum(c[3] for c in counts(engine))
            assert total == 60000 * (round_ + 1)
            # a new year of counts for the next round, as 1 January would make it
            with engine.store.transaction() as tx:
                tx.execute("UPDATE export_counts SET year = year - ?", [round_ + 1])
            for req in pending:
                if engine.get(req.id).state == "active":
                    engine.revoke(req.id, "bob")
                else:
                    engine.cancel(req.id, req.requester)
    finally:
        other.store.close()


def test_the_count_starts_again_in_a_new_shanghai_year(engine):
    """Last year's count (as the store holds it once 1 January has come in Shanghai)
    does not count towards this year's."""
    last_year = this_year() - 1
    with engine.store.transaction():
        engine.store.add_to_export_count(COUNTER, EXPORTER, last_year, 950000, 9000, 0.0)
    req = approve(engine, ask(engine, "alice", 60000).id)
    assert req.exports[0]["route"] == "exempt"
    assert counts(engine) == [
        (COUNTER, EXPORTER, last_year, 950000, 9000),
        (COUNTER, EXPORTER, this_year(), 60000, 0),
    ]


@pytest.mark.parametrize(
    ("individuals", "sensitive", "code", "field"),
    [
        (None, 0, "individuals_required", "individuals"),
        (10, None, "sensitive_individuals_required", "sensitive_individuals"),
        (10, 11, "sensitive_exceeds_individuals", "sensitive_individuals"),
    ],
)
def test_a_transfer_that_does_not_say_what_it_carries_is_refused(
    engine, individuals, sensitive, code, field
):
    with pytest.raises(Denied) as refused:
        ask(engine, "alice", individuals, sensitive)
    [reason] = refused.value.decision.reasons
    assert (reason["code"], reason["field"]) == (code, field)
    assert engine.store.requests() == []
    assert counts(engine) == []


def test_the_cli_declares_the_individuals_and_shows_the_count(run, engine):
    assert run("transfer", "counts").output.strip() == "no export counts"
    bad = run("transfer", "request", CN, "--to", JAPAN, "--reason", "CHG-51", "--as", "alice",
              "--individuals", "-1", "--sensitive-individuals", "0")  # fmt: skip
    assert bad.exit_code == 2
    assert "--individuals" in bad.output
    missing = run("transfer", "request", CN, "--to", JAPAN, "--reason", "CHG-51", "--as", "alice")
    assert missing.exit_code == 1
    assert "individuals: " in missing.output and "Provisions on Promoting" in missing.output
    assert engine.store.requests() == []
    filed = run("transfer", "request", CN, "--to", JAPAN, "--reason", "CHG-51", "--as", "alice",
                "--individuals", "40000", "--sensitive-individuals", "0", "--json")  # fmt: skip
    assert filed.exit_code == 0, filed.output
    transfer_id = json.loads(filed.output)["id"]
    assert json.loads(filed.output)["individuals"] == 40000
    for who, where in (("bob", "DE"), ("mei", "CN")):
        done = run("approve", transfer_id, "--as", who, "--from", where)
        assert done.exit_code == 0, done.output
    listed = run("transfer", "counts")
    assert listed.exit_code == 0, listed.output
    assert EXPORTER in listed.output and "40000" in listed.output
    [count] = json.loads(run("transfer", "counts", "--json").output)
    assert (count["exporter"], count["year"], count["individuals"]) == (
        EXPORTER, this_year(), 40000,
    )  # fmt: skip
    shown = run("show", transfer_id)
    assert "carries     40000 individuals, 0 with sensitive data" in shown.output
    assert f"counted     {EXPORTER} {this_year()}: 40000 individuals, 0 sensitive (exempt)" in (
        shown.output
    )


def _eval(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["policy", "eval", *args], catch_exceptions=False)
    return result.exit_code, json.loads(result.output)


def test_policy_eval_shows_the_switch_on_1_january_2026_and_the_new_year(tmp_path: Path):
    asked = {"resource": CN, "target_region": JAPAN, "individuals": 50000,
             "sensitive_individuals": 0, "export_counts": [
                 {"counter": COUNTER, "exporter": EXPORTER, "year": 2026,
                  "individuals": 950000, "sensitive_individuals": 0}]}  # fmt: skip
    base = ["transfer", "--db", str(tmp_path / "none.db"), "--json", "--input", json.dumps(asked)]
    code, before = _eval(*base, "--at", "2025-12-31T15:59:59Z")  # 23:59:59 in Shanghai
    assert code == 1
    assert {r["code"] for r in before["reasons"]} == {"evidence_required", "transfer_not_permitted"}
    code, late = _eval(*base, "--at", "2026-12-31T15:59:59Z")  # 1,000,000 in 2026
    assert code == 1
    assert [r["code"] for r in late["reasons"]] == ["export_route_evidence_required"]
    assert "security assessment route" in late["reasons"][0]["message"]
    code, new_year = _eval(*base, "--at", "2026-12-31T16:00:00Z")  # 1 January 2027 there
    assert code == 0
    assert new_year["exports"][0]["year"] == 2027
    assert new_year["exports"][0]["route"] == "exempt"
