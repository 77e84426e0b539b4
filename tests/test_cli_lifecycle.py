"""Every lifecycle verb from the command line: readable by default, JSON with --json."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.stores  # each test on SQLite and on PostgreSQL

RESOURCE = "eu-customer-analytics"
WHEN = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \((in \w+|\w+ ago)\)"


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def _request(run, *extra: str, who: str = "alice"):
    args = ["request", RESOURCE, "--for", "30m", "--from", "DE", "--reason", "INC-1"]
    return json.loads(_ok(run(*args, "--as", who, "--json", *extra)).stdout)


def test_scheduled_request_is_approved_then_activated(run):
    req = _request(run, "--start", "1h")
    approved = json.loads(
        _ok(run("approve", req["id"], "--as", "bob", "--from", "DE", "--json")).stdout
    )
    assert approved["state"] == "approved"
    assert approved["activate_by"] > approved["start_at"]
    early = run("activate", req["id"], "--as", "alice")
    assert early.exit_code == 1
    assert "may be activated from its start" in early.stderr
    shown = _ok(run("show", req["id"])).stdout
    assert f"request {req['id']}: approved" in shown
    assert re.search(r"starts\s+" + WHEN, shown)
    assert re.search(r"activate by\s+" + WHEN, shown)
    assert re.search(r"approved\s+by bob from DE", shown)
    assert "scheduled" in shown  # the audit events follow


def test_revoke_relinquish_deny_cancel_from_the_cli(run):
    a = _request(run)
    _ok(run("approve", a["id"], "--as", "bob"))
    revoked = _ok(run("revoke", a["id"], "--as", "bob", "--reason", "incident closed")).stdout
    assert f"request {a['id']}: revoked" in revoked
    assert "ended by    bob: incident closed" in revoked
    assert run("check", "alice", RESOURCE, "--from", "DE").exit_code == 1

    b = _request(run)
    denied = _ok(run("deny", b["id"], "--as", "bob", "--reason", "use the extract")).stdout
    assert f"{b['id']}: denied" in denied

    c = _request(run)
    assert f"{c['id']}: cancelled" in _ok(run("cancel", c["id"], "--as", "alice")).stdout

    d = _request(run)
    _ok(run("approve", d["id"], "--as", "bob"))
    given_back = _ok(run("relinquish", d["id"], "--as", "alice", "--reason", "fixed")).stdout
    assert f"{d['id']}: relinquished" in given_back
    assert "ended by    alice: fixed" in given_back

    listed = _ok(run("list")).stdout.splitlines()
    assert listed[0].split() == ["ID", "STATE", "KIND", "REQUESTER", "RESOURCE", "ACTIONS",
                                 "FROM", "FOR", "UNTIL"]  # fmt: skip
    states = [line.split()[1] for line in listed[1:]]
    assert states == ["revoked", "denied", "cancelled", "relinquished"]
    only = json.loads(_ok(run("list", "--state", "denied", "--json")).stdout)
    assert [r["id"] for r in only] == [b["id"]]


def test_extension_too_early_is_explained(run):
    req = _request(run)
    _ok(run("approve", req["id"], "--as", "bob"))
    result = run("extend", req["id"], "--for", "30m", "--reason", "more", "--as", "alice")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: extension refused: ")


def test_break_glass_and_review_from_the_cli(run):
    grant = json.loads(
        _ok(run("break-glass", RESOURCE, "--for", "10m", "--from", "DE", "--reason", "INC-9",
                "--as", "oscar", "--json")).stdout
    )  # fmt: skip
    assert (grant["state"], grant["kind"]) == ("active", "breakglass")
    shown = _ok(run("show", grant["id"])).stdout
    assert f"break-glass grant {grant['id']}: active" in shown
    assert re.search(r"review due\s+" + WHEN, shown)
    assert _ok(run("list", "--overdue")).stdout.strip() == "no requests"
    reviewed = _ok(run("review", grant["id"], "--as", "bob", "--outcome", "accepted")).stdout
    assert "reviewed    accepted by bob" in reviewed
    bad = run("review", grant["id"], "--as", "bob", "--outcome", "fine")
    assert bad.exit_code == 2


def test_sweep_reports_what_it_did(run):
    assert _ok(run("sweep")).stdout.strip() == "swept: nothing due"
    assert json.loads(_ok(run("sweep", "--json")).stdout) == {}


def test_bad_start_times(run, db):
    past = run("request", RESOURCE, "--for", "1h", "--from", "DE", "--reason", "x", "--as",
               "alice", "--start", "2020-01-01T00:00:00Z")  # fmt: skip
    assert past.exit_code == 1
    assert "start is in the past" in past.stderr
    garbage = run("request", RESOURCE, "--for", "1h", "--from", "DE", "--reason", "x",
                  "--start", "tomorrow")  # fmt: skip
    assert garbage.exit_code == 2
    assert "neither a time" in garbage.stderr
    naive = run("request", RESOURCE, "--for", "1h", "--from", "DE", "--reason", "x",
                "--start", "2030-01-01T00:00:00")  # fmt: skip
    assert naive.exit_code == 2
    assert "no time zone" in naive.stderr
    assert json.loads(_ok(run("list", "--json")).stdout) == []


def test_unknown_id_and_illegal_transition_exit_non_zero(run):
    missing = run("revoke", "nope", "--as", "bob")
    assert missing.exit_code == 1
    assert "no request with id 'nope'" in missing.stderr
    req = _request(run)
    _ok(run("deny", req["id"], "--as", "bob"))
    again = run("approve", req["id"], "--as", "bob")
    assert again.exit_code == 1
    assert "it is denied, not pending" in again.stderr


def test_evidence_the_data_jurisdiction_does_not_know_is_refused_naming_what_it_knows(run):
    refused = run(
        "request", RESOURCE, "--for", "20m", "--from", "DE", "--reason", "INC-9",
        "--evidence", "cac_assessment", "--as", "alice",
    )  # fmt: skip
    assert refused.exit_code == 1
    assert '"cac_assessment" is no evidence the law of EU knows (it knows: bcr, scc)' in (
        refused.output
    )
    listed = run("request", "--help")
    known = (
        "(accreditation_certificate, bcr, cac, cac_security_assessment,"
        " cisa_security_requirements, dsp_compliance_program, international_agreement, pia,"
        " pipl_certification, pipl_standard_contract, risk_assessment, scc, tia_dossier)"
    )
    assert known in " ".join(listed.output.split())
