"""The thin slice end to end: the CLI against a real OPA and a real SQLite file."""

from __future__ import annotations

import json
import time

from datavisa.engine.ledger import audit
from datavisa.engine.store.sqlite import Store

RESOURCE = "eu-customer-analytics"


def _request(run, *extra: str, duration: str = "20m"):
    return run(
        "request",
        RESOURCE,
        "--for",
        duration,
        "--from",
        "DE",
        "--reason",
        "INC-1",
        "--as",
        "alice",
        "--json",
        *extra,
    )


def _check(run, location: str = "DE", action: str = "read"):
    result = run("check", "alice", RESOURCE, "--from", location, "--action", action, "--json")
    return result.exit_code, json.loads(result.stdout)


def _codes(decision) -> set[str]:
    return {r["code"] for r in decision["reasons"]}


def test_request_is_pending_until_a_data_owner_approves(run):
    result = _request(run)
    assert result.exit_code == 0, result.output
    req = json.loads(result.stdout)
    assert req["state"] == "pending"
    assert req["approvals_required"] == [{"group": "data_owner", "count": 1}]

    code, decision = _check(run)
    assert code == 1
    assert _codes(decision) == {"no_active_grant"}

    refused = run("approve", req["id"], "--as", "alice")
    assert refused.exit_code == 1
    assert "nobody may approve their own request" in refused.stderr

    approved = run("approve", req["id"], "--as", "bob", "--json")
    assert approved.exit_code == 0, approved.output
    grant = json.loads(approved.stdout)
    assert grant["state"] == "active"

    code, decision = _check(run)
    assert code == 0
    assert decision["allow"] is True
    assert decision["grant_id"] == req["id"]
    assert decision["expires_at"] == grant["expires_at"]
    assert decision["decision_id"]


def test_check_from_a_country_the_grant_does_not_cover_is_denied(run):
    req = json.loads(_request(run).stdout)
    run("approve", req["id"], "--as", "bob")
    code, decision = _check(run, location="US")
    assert code == 1
    assert _codes(decision) == {"location_not_permitted"}
    code, decision = _check(run, action="write")
    assert _codes(decision) == {"action_not_permitted"}


def test_grant_expires_by_the_decision_points_clock(run):
    req = json.loads(_request(run, duration="1s").stdout)
    grant = json.loads(run("approve", req["id"], "--as", "bob", "--json").stdout)
    assert grant["state"] == "active"
    time.sleep(1.2)
    code, decision = _check(run)
    assert code == 1
    assert _codes(decision) == {"grant_expired"}


def test_ineligible_approver_is_refused_and_nothing_changes(run, db):
    req = json.loads(_request(run).stdout)
    result = run("approve", req["id"], "--as", "carol")
    assert result.exit_code == 1
    assert "approver_not_eligible" not in result.stderr  # people read messages, not codes
    assert "no approver group" in result.stderr
    store = Store(db)
    assert store.get(req["id"]).state == "pending"
    assert store.approvals(req["id"]) == []


def test_approving_an_unknown_request_says_so(run):
    result = run("approve", "does-not-exist", "--as", "bob")
    assert result.exit_code == 1
    assert "no request with id 'does-not-exist'" in result.stderr


def test_approving_an_active_grant_again_is_refused(run):
    req = json.loads(_request(run).stdout)
    run("approve", req["id"], "--as", "bob")
    result = run("approve", req["id"], "--as", "bob")
    assert result.exit_code == 1
    assert "it is active, not pending" in result.stderr


def test_every_change_is_in_an_intact_audit_chain(run, db):
    req = json.loads(_request(run).stdout)
    run("approve", req["id"], "--as", "bob")
    events = audit.trail(Store(db).db, req["id"])
    assert [e["event"] for e in events] == ["requested", "approved", "activated"]
    assert [e["actor"] for e in events] == ["alice", "bob", "bob"]
    assert all(e["decision_id"] for e in events[:2])
    result = run("audit", "verify")
    assert result.exit_code == 0
    assert "3 events" in result.stdout


def test_list_and_show_print_readable_records(run):
    req = json.loads(_request(run).stdout)
    listed = run("list")
    assert listed.exit_code == 0
    assert req["id"] in listed.stdout and "pending" in listed.stdout
    shown = run("show", req["id"])
    assert f"request {req['id']}: pending" in shown.stdout
    assert "1 from data_owner" in shown.stdout
