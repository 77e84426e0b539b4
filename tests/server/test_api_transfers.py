"""Transfers over HTTP: bad input named, the pipeline's check with a service token, the
copy reported deleted; and end to end, a real pipeline process refused before approval,
allowed in its window, refused after it, and the overdue deletion raised as an alert."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from live_server import RESOURCE, Caller, wait_for

from datavisa.engine.ledger import audit

PIPELINE = Path(__file__).with_name("transfer_pipeline.py")
UPI, SINGAPORE = "in-upi-transactions", "aws:ap-southeast-1"
GOOD = {
    "resource": UPI,
    "target_region": SINGAPORE,
    "keep": "24h",
    "window": "1h",
    "reason": "CHG-42 fraud model backfill",
}


def _nothing_stored(api) -> bool:
    store = api.service.engine.store
    return store.requests() == [] and {e["event"] for e in audit.trail(store.db)} <= {
        "token_issued"
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"target_region": 7}, "target_region"),
        ({"target_region": "not a region!"}, "target_region"),
        ({"keep": "a while"}, "keep"),
        ({"keep": 0}, "keep"),
        ({"keep": True}, "keep"),
        ({"window": "0.5h"}, "window"),
        ({"importer": ""}, "importer"),
        ({"evidence": "scc"}, "evidence"),
        ({"requester_kind": "a court!"}, "requester_kind"),
        ({"requester": "bob"}, "requester"),
    ],
)
def test_a_bad_field_is_named_and_nothing_stored(api, change, field):
    response = api.as_("priya").post("/v1/transfers", GOOD | change)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert _nothing_stored(api)


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"resource": "nope"}, "unknown_resource", "resource"),
        ({"target_region": "mars:olympus-1"}, "unknown_region", "target_region"),
        ({"target_region": "aws:ap-south-1"}, "same_region", "target_region"),
        ({"keep": "48h"}, "retention_exceeds_localisation_max", "keep"),
        ({"keep": "forever"}, "retention_exceeds_localisation_max", "keep"),
        ({"evidence": ["cac"]}, "unknown_evidence", "evidence"),
        ({"importer": "acme-mars"}, "unknown_importer", "importer"),
        ({"requester_kind": "police"}, "unknown_requester_kind", "requester_kind"),
        ({"window": "2d", "keep": "24h"}, "duration_exceeds_transfer_max", "window"),
    ],
)
def test_a_policy_refusal_names_the_field_is_logged_and_stores_nothing(api, change, code, field):
    response = api.as_("priya").post("/v1/transfers", GOOD | change)
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert code in {r["code"] for r in error["reasons"]}
    assert error["field"] == field
    assert error["message"].startswith("transfer refused: ")
    assert _nothing_stored(api)
    [logged] = [
        e
        for e in api.service.engine.log.query()
        if e["path"] == "datavisa/transfer_request/decision"
    ]
    assert (logged["decision_id"], logged["result"]["allow"]) == (error["decision_id"], False)


def test_localised_data_is_refused_at_once_naming_the_law(api):
    body = GOOD | {"resource": "au-my-health-records", "target_region": "aws:ap-southeast-1"}
    response = api.as_("jack").post("/v1/transfers", body | {"keep": "forever"})
    assert response.status_code == 403
    assert "My Health Records Act 2012" in response.json()["error"]["message"]


def test_the_check_names_what_it_needs(api):
    pipeline = api.as_("etl-eu", "service")
    for body, field in [({}, "resource"), ({"resource": RESOURCE}, "target_region")]:
        response = pipeline.post("/v1/transfers/check", body)
        assert response.status_code == 422
        assert response.json()["error"]["field"] == field
    asked = pipeline.post("/v1/transfers/check", {"resource": RESOURCE, "target_region": "x:y"})
    assert asked.status_code == 200
    assert asked.json()["allow"] is False
    assert [r["code"] for r in asked.json()["reasons"]] == ["no_approved_transfer"]
    assert asked.json()["decision_id"]


def test_a_transfer_is_listed_shown_and_its_copy_reported_deleted_by_its_pipeline(api):
    body = {"resource": RESOURCE, "target_region": "azure:westeurope", "keep": "1h"}
    filed = api.as_("alice").post("/v1/transfers", body | {"window": "30m", "reason": "CHG-1"})
    assert filed.status_code == 201, filed.text
    req = filed.json()
    assert (req["kind"], req["target_region"], req["retention_s"]) == (
        "transfer",
        "azure:westeurope",
        3600,
    )
    approved = api.as_("bob").post(f"/v1/requests/{req['id']}/approve", {"location": "DE"})
    assert approved.json()["delete_by"]
    metrics = api.anonymous().get("/metrics").text
    assert "datavisa_live_grants 0.0" in metrics  # an open transfer grants no access
    listed = api.as_("alice").get("/v1/transfers", params={"state": "active"}).json()
    assert [r["id"] for r in listed["requests"]] == [req["id"]]
    assert api.as_("alice").get("/v1/transfers", params={"overdue": "true"}).json() == {
        "requests": []
    }
    other = api.as_("bob").post(f"/v1/transfers/{req['id']}/deleted", {})
    assert other.status_code == 403
    deleted = api.as_("etl-eu", "service").post(f"/v1/transfers/{req['id']}/deleted")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted_by"] == "etl-eu"
    trail = api.as_("alice").get("/v1/audit", params={"request_id": req["id"]}).json()
    assert [e["event"] for e in trail["events"]] == [
        "transfer_requested",
        "approved",
        "activated",
        "copy_deleted",
    ]
    missing = api.as_("alice").post("/v1/transfers/000000000000/deleted")
    assert (missing.status_code, missing.json()["error"]["field"]) == (404, "request_id")


def test_a_pipeline_is_refused_before_allowed_during_refused_after_and_alerted(
    monitored_api, tmp_path
):
    """End to end, real time: OPA's clock decides the window and the deletion deadline."""
    api = monitored_api
    token, _ = api.service.tokens.issue("etl-in", "service")
    out = tmp_path / "copied.txt"

    def pipeline(transfer_id: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(PIPELINE), api.url, transfer_id, str(out)],
            env={**os.environ, "DATAVISA_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=60,
        )

    body = GOOD | {"window": "8s", "keep": "8s"}
    filed = api.as_("priya").post("/v1/transfers", body)
    assert filed.status_code == 201, filed.text
    transfer_id = filed.json()["id"]

    before = pipeline(transfer_id)
    assert before.returncode == 1, before.stdout + before.stderr
    assert "refused: no_approved_transfer" in before.stdout
    assert not out.exists()

    approved = api.as_("dave").post(f"/v1/requests/{transfer_id}/approve", {"location": "DE"})
    assert approved.json()["state"] == "active", approved.text
    during = pipeline(transfer_id)
    assert during.returncode == 0, during.stdout + during.stderr
    assert out.read_text().startswith(f"copied under {transfer_id} until ")

    after = wait_for(lambda: (p := pipeline(transfer_id)).returncode == 1 and p, "the window")
    assert "refused: transfer_window_closed" in after.stdout
    copies = out.read_text()
    assert pipeline(transfer_id).returncode == 1
    assert out.read_text() == copies  # refused: nothing copied after the window

    monitor = api.service.monitor
    [alert] = wait_for(monitor.check_deletions, "the deletion deadline")
    assert (alert.rule, alert.subject) == ("deletion_overdue", "priya")
    assert transfer_id in alert.message
    alerts = api.as_("aud", "auditor").get("/v1/alerts", params={"rule": "deletion_overdue"})
    assert [a["id"] for a in alerts.json()["alerts"]] == [alert.id]
    overdue = api.as_("priya").get("/v1/transfers", params={"overdue": "true"}).json()
    assert [r["id"] for r in overdue["requests"]] == [transfer_id]
    blocked = api.as_("priya").post("/v1/transfers", GOOD | {"target_region": "gcp:europe-west3"})
    assert blocked.status_code == 403
    assert [r["code"] for r in blocked.json()["error"]["reasons"]] == ["deletion_overdue"]

    checks = [
        e["result"]["allow"]
        for e in api.service.engine.log.query()
        if e["path"] == "datavisa/transfer_check/decision"
    ]
    assert checks[:2] == [False, True] and checks[-1] is False


def test_transfer_checks_take_the_fast_lane_and_answer_as_the_route_does(api):
    """A well-formed JSON check takes the fast lane (api/fastlane.py); the same check sent
    as another JSON media type goes through FastAPI's own handling: the answers match,
    and so do the errors."""
    pipeline = api.as_("etl-eu", "service")

    def both(body: dict) -> list[tuple[int, dict]]:
        out = []
        for media in ("application/json", "application/vnd.datavisa+json"):
            response = pipeline.session.post(
                pipeline.base + "/v1/transfers/check",
                data=json.dumps(body),
                headers={"Content-Type": media},
                timeout=10,
            )
            answer = response.json()
            answer.pop("decision_id", None)
            if "error" in answer:
                answer["error"].pop("decision_id", None)
            out.append((response.status_code, answer))
        return out

    fast, declared = both({"resource": UPI, "target_region": SINGAPORE})
    assert fast == declared and fast[0] == 200 and fast[1]["allow"] is False
    fast, declared = both({"resource": UPI})
    assert fast == declared and fast[0] == 422
    assert fast[1]["error"]["field"] == "target_region"
    fast, declared = both({"transfer_id": "no such id"})
    assert fast == declared and fast[0] == 422


def test_transfer_checks_arriving_together_are_each_answered_and_recorded(api):
    """Concurrent checks are coalesced (one OPA query, one commit a batch): each still
    gets its own answer and its own entry in the decision log."""
    pipeline = api.as_("etl-eu", "service")
    before = _transfer_checks_logged(api)

    def burst(region: str) -> set[tuple[int, bool, str]]:
        caller = Caller(api.url, pipeline.token)
        out = set()
        for _ in range(10):
            response = caller.post(
                "/v1/transfers/check", {"resource": UPI, "target_region": region}
            )
            body = response.json()
            out.add((response.status_code, body["allow"], body["reasons"][0]["code"]))
        return out

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(burst, [SINGAPORE, "gcp:europe-west3"] * 3))
    for answers in results:
        assert answers == {(200, False, "no_approved_transfer")}
    assert _transfer_checks_logged(api) - before == 60


def _transfer_checks_logged(api) -> int:
    path = "datavisa/transfer_check/decision"
    return len(api.service.engine.log.query(path=path, limit=1000))
