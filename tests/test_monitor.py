"""Monitoring: the alert rules in Rego judge each decision as it is recorded, against a real
OPA and a real SQLite file; the monitor only gathers facts and stores what the rules raise."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import CliRunner

from datavisa.cli.main import cli
from datavisa.engine.model.errors import DataVisaError
from datavisa.engine.model.records import Alert
from datavisa.engine.monitoring.monitor import (
    CURSOR,
    MAX_EVIDENCE,
    Alerts,
    Monitor,
    for_rules,
)
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.opa import OpaClient, OpaUnavailable
from datavisa.engine.policy.process import free_port
from datavisa.engine.store.sqlite import Store

pytestmark = pytest.mark.stores  # each test on SQLite and on PostgreSQL

CONFIDENTIAL = "eu-customer-analytics"  # EU personal data; bob is its data owner
RESTRICTED = "eu-payments-ledger"
DAY = 86400


@pytest.fixture
def monitor(engine):
    monitor = Monitor(engine.log, engine.opa, clock=engine.clock, backoff_max_s=0.5)
    yield monitor
    monitor.stop()


def raised(monitor: Monitor, rule: str) -> list[Alert]:
    """Judge what was logged since the last call; the alerts of one rule among them.

    Other rules may fire too (outside_working_hours depends on when the test runs)."""
    return [a for a in monitor.run_once() if a.rule == rule]


def decision_ids(engine, path: str) -> list[str]:
    return [e["decision_id"] for e in engine.log.query(path=path, limit=1000)]


def wait_for(find, timeout_s: float = 15.0):
    """Poll until `find()` is truthy; its value (bounded, never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := find():
            return value
        time.sleep(0.05)
    raise AssertionError(f"nothing turned up within {timeout_s}s")


def test_break_glass_use_raises_an_alert_citing_its_decision(engine, monitor):
    grant = engine.break_glass("oscar", CONFIDENTIAL, ["read"], 600, "DE", "INC-99 outage")
    [alert] = raised(monitor, "break_glass_used")
    assert (alert.severity, alert.subject, alert.state) == ("high", "oscar", "open")
    assert alert.evidence == [grant.decision_id]
    assert alert.decision_id == grant.decision_id
    assert "oscar broke glass into eu-customer-analytics from DE for 600s" in alert.message


def test_an_attempt_from_a_country_never_seen_for_the_subject(engine, monitor):
    engine.check("alice", CONFIDENTIAL, "read", "DE")
    assert raised(monitor, "new_country") == []  # the first country is no news
    engine.check("alice", CONFIDENTIAL, "read", "DE")
    assert raised(monitor, "new_country") == []
    decision = engine.check("alice", CONFIDENTIAL, "read", "BR")
    [alert] = raised(monitor, "new_country")
    assert (alert.subject, alert.severity) == ("alice", "medium")
    assert alert.evidence == [decision.decision_id]
    assert "from BR" in alert.message and "seen: DE" in alert.message
    engine.check("alice", CONFIDENTIAL, "read", "BR")
    assert raised(monitor, "new_country") == []  # seen now


def test_an_access_without_a_grant_on_restricted_data(engine, monitor):
    engine.check("alice", CONFIDENTIAL, "read", "DE")  # confidential: no alert
    assert raised(monitor, "no_grant_on_restricted") == []
    decision = engine.check("alice", RESTRICTED, "read", "DE")
    [alert] = raised(monitor, "no_grant_on_restricted")
    assert (alert.severity, alert.evidence) == ("high", [decision.decision_id])
    assert "no_active_grant" in alert.message


def test_an_access_just_after_a_grant_was_revoked(engine, monitor):
    req = engine.request("alice", CONFIDENTIAL, ["read"], 1200, "DE", "INC-1")
    engine.approve(req.id, "bob", "DE")
    assert engine.check("alice", CONFIDENTIAL, "read", "DE").allow
    engine.revoke(req.id, "bob", "done")
    monitor.run_once()
    denied = engine.check("alice", CONFIDENTIAL, "read", "DE")
    assert not denied.allow
    [alert] = raised(monitor, "access_after_grant_end")
    assert alert.severity == "high"
    assert alert.evidence == sorted([denied.decision_id, req.decision_id])
    assert f"after their grant {req.id} was revoked" in alert.message


def test_records_judged_in_one_batch_each_see_the_grant_that_ended_before_them(engine, monitor):
    def grant() -> str:
        req = engine.request("alice", CONFIDENTIAL, ["read"], 1200, "DE", "INC-1")
        engine.approve(req.id, "bob", "DE")
        return req.id

    first = grant()
    engine.relinquish(first, "alice", "done")
    monitor.run_once()  # what came before is history; the rest is judged in one batch
    early = engine.check("alice", CONFIDENTIAL, "read", "DE")
    second = grant()
    engine.revoke(second, "bob", "done")
    late = engine.check("alice", CONFIDENTIAL, "read", "DE")
    found = sorted(raised(monitor, "access_after_grant_end"), key=lambda a: a.severity)
    assert [(a.severity, a.decision_id) for a in found] == [
        ("high", late.decision_id),  # after the second grant was revoked
        ("medium", early.decision_id),  # after the first was relinquished, before the second
    ]
    assert f"after their grant {second} was revoked" in found[0].message
    assert f"after their grant {first} was relinquished" in found[1].message


def test_a_grant_that_ends_within_a_batch_is_seen_by_the_records_after_it(engine, monitor):
    """The monitor asks once a batch whether any of a subject's grants on a resource
    ended by the batch's newest record; a grant that ended after the batch's first record
    of theirs still counts for the records after it."""
    monitor.run_once()  # what came before is history; the rest is judged in one batch
    before = engine.check("alice", CONFIDENTIAL, "read", "DE")
    req = engine.request("alice", CONFIDENTIAL, ["read"], 1200, "DE", "INC-1")
    engine.approve(req.id, "bob", "DE")
    engine.revoke(req.id, "bob", "done")
    after = engine.check("alice", CONFIDENTIAL, "read", "DE")
    assert not before.allow and not after.allow
    [alert] = raised(monitor, "access_after_grant_end")
    assert alert.decision_id == after.decision_id
    assert f"after their grant {req.id} was revoked" in alert.message


def test_approvals_concentrated_on_one_approver(engine, monitor):
    for n in range(5):
        req = engine.request("alice", CONFIDENTIAL, ["read"], 600, "DE", f"INC-{n}")
        engine.approve(req.id, "bob", "DE")
        engine.relinquish(req.id, "alice")
        found = raised(monitor, "approver_concentration")
        assert bool(found) == (n == 4), f"after {n + 1} approvals"
    [alert] = found
    assert alert.subject == "bob"
    assert alert.evidence == sorted(decision_ids(engine, "datavisa/approval/decision"))
    assert alert.message == "bob gave 5 of the last 5 approvals within 86400s"


def test_concentration_is_one_alert_counting_each_approval_that_raised_it(engine, monitor):
    """The rule holds on every approval once the threshold is met: that is one finding,
    counted, not an alert per approval (6,754 alerts in a minute under load)."""
    for n in range(8):
        req = engine.request("alice", CONFIDENTIAL, ["read"], 600, "DE", f"INC-{n}")
        engine.approve(req.id, "bob", "DE")
        engine.relinquish(req.id, "alice")
    monitor.run_once()
    [alert] = alerts_of(monitor, "approver_concentration")
    assert (alert.subject, alert.count) == ("bob", 4)  # the 5th approval to the 8th
    assert alert.message == "bob gave 8 of the last 8 approvals within 86400s"
    ids = [e["decision_id"] for e in engine.log.query(path="datavisa/approval/decision")]
    assert set(alert.evidence) == set(ids)


def test_an_overdue_break_glass_review_is_found_by_the_periodic_check(engine, monitor, clock):
    clock.advance(-(DAY + 60))  # the grant was taken a day and a minute ago
    grant = engine.break_glass("oscar", CONFIDENTIAL, ["read"], 600, "DE", "INC-99 outage")
    clock.advance(DAY + 60)
    [alert] = monitor.check_reviews()
    assert (alert.rule, alert.severity, alert.subject) == ("review_overdue", "critical", "oscar")
    assert alert.evidence == [grant.decision_id]
    assert alert.decision_id is None
    assert monitor.check_reviews() == []  # raised once
    engine.review(grant.id, "bob", "accepted")
    assert monitor.check_reviews() == []


def test_an_alert_is_stored_once_per_rule_subject_and_evidence(engine, monitor):
    found = {"rule": "r", "severity": "low", "subject": "s", "message": "m", "evidence": ["b", "a"]}
    with engine.store.transaction():
        [first] = monitor.alerts.add([found], 1.0, None, None)
        assert monitor.alerts.add([{**found, "evidence": ["a", "b"]}], 2.0, None, None) == []
        [other] = monitor.alerts.add([{**found, "subject": "t"}], 3.0, None, None)
    assert first.evidence == ["a", "b"]
    assert [a.id for a in monitor.alerts.query()] == [first.id, other.id]


def alerts_of(monitor: Monitor, rule: str) -> list[Alert]:
    return monitor.alerts.query(rule=rule)


def test_repeats_within_the_rules_window_are_counted_on_one_alert(engine, monitor, clock):
    first = engine.check("alice", RESTRICTED, "read", "DE")
    [alert] = raised(monitor, "no_grant_on_restricted")
    assert (alert.count, alert.last_raised_at, alert.dedup_key) == (1, alert.raised_at, RESTRICTED)
    repeats = []
    for _ in range(MAX_EVIDENCE + 4):  # judged a few at a time, as the worker does
        clock.advance(10)
        repeats.append(engine.check("alice", RESTRICTED, "read", "DE").decision_id)
        assert raised(monitor, "no_grant_on_restricted") == []  # a repeat is not news
    [counted] = alerts_of(monitor, "no_grant_on_restricted")
    assert counted.id == alert.id and counted.count == MAX_EVIDENCE + 5
    assert counted.raised_at == alert.raised_at
    assert counted.last_raised_at >= alert.raised_at + 10 * (MAX_EVIDENCE + 4)  # the clock moved
    assert counted.evidence == repeats[-MAX_EVIDENCE:]  # the newest, bounded
    assert first.decision_id not in counted.evidence


def test_a_raise_after_the_window_opens_a_new_alert(engine, monitor, clock):
    engine.check("alice", RESTRICTED, "read", "DE")
    engine.check("alice", RESTRICTED, "read", "DE")
    [first] = raised(monitor, "no_grant_on_restricted")
    clock.advance(3600)  # the rule's dedup_s in bundles/default/monitoring.yaml
    later = engine.check("alice", RESTRICTED, "read", "DE")
    [second] = raised(monitor, "no_grant_on_restricted")
    assert second.id != first.id
    assert (second.count, second.evidence) == (1, [later.decision_id])
    assert [a.count for a in alerts_of(monitor, "no_grant_on_restricted")] == [2, 1]


def test_a_repeat_after_an_acknowledgement_opens_a_new_alert(engine, monitor):
    engine.check("alice", RESTRICTED, "read", "DE")
    [first] = raised(monitor, "no_grant_on_restricted")
    monitor.alerts.ack(first.id, "erin")
    engine.check("alice", RESTRICTED, "read", "DE")
    [second] = raised(monitor, "no_grant_on_restricted")
    assert second.id != first.id and second.state == "open"


def test_repeats_are_told_apart_by_severity_and_dedup_key(engine, monitor):
    base = {"rule": "r", "severity": "low", "subject": "s", "message": "m", "window_s": 60}
    with engine.store.transaction():
        [one] = monitor.alerts.add([{**base, "evidence": ["a"], "dedup_key": "x"}], 1.0, None, None)
        assert (
            monitor.alerts.add([{**base, "evidence": ["b"], "dedup_key": "x"}], 2.0, None, None)
            == []
        )
        [other] = monitor.alerts.add(
            [{**base, "evidence": ["c"], "dedup_key": "y"}], 3.0, None, None
        )
        [loud] = monitor.alerts.add(
            [{**base, "evidence": ["d"], "dedup_key": "x", "severity": "high"}], 4.0, None, None
        )
        # The same evidence again (a periodic check finding the same thing) counts nothing.
        assert (
            monitor.alerts.add([{**base, "evidence": ["a"], "dedup_key": "x"}], 5.0, None, None)
            == []
        )
        # The window runs from the first raise: 61 s after it, a new alert.
        [late] = monitor.alerts.add(
            [{**base, "evidence": ["e"], "dedup_key": "x"}], 61.0, None, None
        )
    got = {a.id: a for a in monitor.alerts.query()}
    assert (got[one.id].count, got[one.id].evidence, got[one.id].last_raised_at) == (
        2,
        ["a", "b"],
        2.0,
    )
    assert [got[a.id].count for a in (other, loud, late)] == [1, 1, 1]


def test_an_alerts_table_from_before_counting_is_upgraded(tmp_path):
    """An SQLite file from before schema versions, its alerts from before repeats were
    counted: opening it brings the table up to date, and opening it again changes nothing."""
    old = sqlite_utils.Database(tmp_path / "old.db")
    old["alerts"].create(
        {
            "id": int, "key": str, "rule": str, "severity": str, "subject": str,
            "message": str, "evidence": str, "raised_at": float, "state": str,
            "decision_id": str, "seq": int, "acked_by": str, "acked_at": float,
        },
        pk="id",
    )  # fmt: skip
    old["alerts"].insert(
        {"key": "k", "rule": "new_country", "severity": "medium", "subject": "alice",
         "message": "m", "evidence": '["d1"]', "raised_at": 5.0, "state": "open"}
    )  # fmt: skip
    old.close()
    store = Store(tmp_path / "old.db")
    [alert] = Alerts(store).query()
    assert (alert.count, alert.last_raised_at, alert.dedup_key, alert.evidence) == (
        1, 5.0, "", ["d1"],
    )  # fmt: skip
    store.close()
    again = Store(tmp_path / "old.db")  # upgrading twice changes nothing
    assert Alerts(again).query() == [alert]
    again.close()


def test_records_judged_in_one_batch_see_the_places_of_those_before_them(engine, monitor):
    engine.check("alice", CONFIDENTIAL, "read", "DE")
    first_br = engine.check("alice", CONFIDENTIAL, "read", "BR")
    engine.check("alice", CONFIDENTIAL, "read", "BR")  # seen by now, in the same batch
    engine.check("bob", CONFIDENTIAL, "read", "BR")  # a first place is no news
    alerts = raised(monitor, "new_country")
    assert [(a.subject, a.evidence) for a in alerts] == [("alice", [first_br.decision_id])]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # an SQLite file from before
def test_places_seen_before_the_monitor_kept_them_still_count(engine, monitor, db):
    """An SQLite file from before the monitor kept its table of places (an upgrade)."""
    engine.check("alice", CONFIDENTIAL, "read", "DE")
    engine.check("alice", CONFIDENTIAL, "read", "BR")
    assert len(raised(monitor, "new_country")) == 1
    engine.store.db["monitor_seen"].drop()
    engine.store.db.execute("DELETE FROM schema_migrations")  # as before versions
    reopened = Store(db)
    rows = reopened.db.execute("SELECT subject, location FROM monitor_seen ORDER BY 2")
    assert rows.fetchall() == [("alice", "BR"), ("alice", "DE")]
    later = Monitor(engine.log, engine.opa, clock=engine.clock)
    engine.check("alice", CONFIDENTIAL, "read", "BR")
    engine.check("alice", CONFIDENTIAL, "read", "DE")
    assert raised(later, "new_country") == []
    reopened.close()


def test_the_worker_raises_alerts_within_seconds_of_the_decision(engine, monitor):
    monitor.start()
    decision = engine.check("alice", RESTRICTED, "read", "DE")
    alert = wait_for(lambda: monitor.alerts.query(rule="no_grant_on_restricted"))[0]
    assert alert.evidence == [decision.decision_id]


def test_when_opa_cannot_answer_the_monitor_waits_and_tries_the_same_record_again(engine, monitor):
    engine.check("alice", RESTRICTED, "read", "DE")
    good, monitor.opa = monitor.opa, OpaClient(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    with pytest.raises(OpaUnavailable):
        monitor.run_once()
    assert engine.store.cursor(CURSOR) == 0  # nothing judged, nothing skipped
    monitor.start()  # the worker logs the failure and backs off; serve stays up
    time.sleep(1.0)
    assert monitor.alerts.query() == []
    monitor.opa = good
    wait_for(lambda: monitor.alerts.query(rule="no_grant_on_restricted"))


def test_the_monitors_own_queries_uploaded_by_an_opa_are_not_judged(engine, monitor):
    engine.log.ingest(
        [{"decision_id": "m1", "path": "datavisa/monitor/alerts", "input": {}, "result": []}]
    )
    monitor.opa = None  # were the event judged, this would fail
    assert monitor.run_once() == []
    assert engine.store.cursor(CURSOR) == 1


def test_monitoring_starts_at_the_head_of_an_existing_log(engine):
    engine.check("alice", RESTRICTED, "read", "DE")
    late = Monitor(engine.log, engine.opa)
    assert late.run_once() == []


def test_alerts_command_lists_filters_and_acknowledges(engine, monitor, db):
    engine.break_glass("oscar", CONFIDENTIAL, ["read"], 600, "DE", "INC-99 outage")
    engine.check("alice", RESTRICTED, "read", "DE")
    monitor.run_once()
    runner = CliRunner()

    def alerts(*args: str):
        result = runner.invoke(cli, ["alerts", *args, "--db", str(db)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    table = alerts()
    assert table.splitlines()[0].split()[:5] == ["ID", "RAISED", "SEVERITY", "RULE", "SUBJECT"]
    assert "break_glass_used" in table and "no_grant_on_restricted" in table
    rows = json.loads(alerts("--rule", "break_glass_used", "--json"))
    assert [(r["rule"], r["subject"], r["state"]) for r in rows] == [
        ("break_glass_used", "oscar", "open")
    ]
    assert rows[0]["raised_at"].endswith("Z")
    assert "acked by erin" in alerts("ack", str(rows[0]["id"]), "--as", "erin")
    assert json.loads(alerts("--state", "acked", "--json"))[0]["acked_by"] == "erin"
    assert json.loads(alerts("--severity", "critical", "--json")) == []
    missing = runner.invoke(cli, ["alerts", "ack", "999", "--db", str(db), "--as", "erin"])
    assert missing.exit_code == 1 and "no alert with id 999" in missing.output


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DEFAULT_BUNDLE_DIR, tmp_path / "bundle"))


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("      severity: medium\n      min_history", "      severity: loud\n      min_history",
         "monitoring.rules.new_country.severity: 'loud' is not one of"),
        ("min_share_pct: 60", "min_share_pct: 160",
         "monitoring.rules.approver_concentration.min_share_pct: 160 is greater than"),
        ("tiers: [restricted]", "tiers: [secret]",
         "'secret' names nothing defined in tiers"),
        ('UTC, days: [Monday, Tuesday, Wednesday, Thursday, Friday], start: "07:00"',
         'UTC, days: [Monday, Tuesday, Wednesday, Thursday, Friday], start: "7am"',
         "monitoring.default_working_hours.start: '7am' does not match"),
        ("    EU: {timezone", "    XX: {timezone", "'XX' names nothing defined in jurisdictions"),
        ("      dedup_s: 3600\n", "      dedup_s: -1\n",
         "monitoring.rules.no_grant_on_restricted.dedup_s: -1 is below the minimum of 0"),
        ("      dedup_s: 900 # per subject and resource, whichever grant ended\n", "",
         "monitoring.rules.access_after_grant_end: 'dedup_s' is a required property"),
    ],
)  # fmt: skip
def test_bad_monitoring_data_is_rejected_with_file_line_and_path(data_dir, old, new, problem):
    path = data_dir / "monitoring.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(DataVisaError) as e:
        bundle.load_data(data_dir)
    assert f"{path}:" in str(e.value)
    assert problem in str(e.value)


def test_the_rules_are_given_the_documented_parts_of_a_record_only() -> None:
    recorded = {
        "decision_id": "d-1", "path": "datavisa/access/decision",
        "timestamp": "2026-12-01T00:00:00Z", "input": {"subject": "alice", "location": "US"},
        "result": {
            "allow": False, "reasons": [{"code": "location_not_permitted", "message": "x" * 300}],
        },
        "labels": {"app": "datavisa"}, "bundles": {"datavisa": {"revision": "r"}},
        "custom": {"source": "engine"}, "requested_by": "svc",
    }  # fmt: skip
    assert for_rules(recorded) == {
        "decision_id": "d-1", "path": "datavisa/access/decision",
        "timestamp": "2026-12-01T00:00:00Z", "input": {"subject": "alice", "location": "US"},
        "result": {"allow": False, "reasons": [{"code": "location_not_permitted"}]},
    }  # fmt: skip


def test_two_engines_monitors_on_one_store_count_each_record_once(engine):
    """The monitors of two engines sharing a store race for the same records and may both
    judge one: a record already in an alert's evidence is not counted again, and a new
    alert is inserted once (its key), so each record counts once."""
    first, second = (Monitor(engine.log, engine.opa, clock=engine.clock) for _ in range(2))
    for _ in range(6):
        engine.check("alice", RESTRICTED, "read", "DE")
        barrier = threading.Barrier(2)

        def judge(monitor: Monitor, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            monitor.run_once()

        threads = [threading.Thread(target=judge, args=(m,)) for m in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    [alert] = alerts_of(first, "no_grant_on_restricted")
    assert alert.count == 6
    assert engine.store.cursor(CURSOR) == engine.log.query(limit=1000)[-1]["seq"]
