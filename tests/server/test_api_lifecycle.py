"""Every lifecycle verb over HTTP, and the engine's errors as 403 / 404 / 409 in JSON.

The verbs access requests and transfers share run for both kinds (`filing`)."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

import pytest
from live_server import RESOURCE, Api

# How each kind is filed: its route and a body asking for 20 minutes (a transfer's copy
# goes inside the EU, so both need one data owner, bob).
FILINGS = {
    "access": ("/v1/requests", {"location": "DE", "duration": "20m"}),
    "transfer": ("/v1/transfers", {"target_region": "azure:westeurope", "window": "20m"}),
}

pytestmark = pytest.mark.stores  # each test on SQLite and on PostgreSQL


@dataclass
class Filing:
    api: Api
    kind: str

    def file(self, subject: str = "alice", **body: Any) -> dict[str, Any]:
        path, fields = FILINGS[self.kind]
        body = {"resource": RESOURCE, "reason": "INC-1", **fields, **body}
        response = self.api.as_(subject).post(path, body)
        assert response.status_code == 201, response.text
        assert response.json()["kind"] == self.kind
        return response.json()

    def grant(self, subject: str = "alice") -> dict[str, Any]:
        req = self.file(subject)
        response = self.api.as_("bob").post(f"/v1/requests/{req['id']}/approve", {"location": "DE"})
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "active"
        return response.json()


@pytest.fixture(params=sorted(FILINGS))
def filing(api: Api, request: pytest.FixtureRequest) -> Filing:
    return Filing(api, request.param)


def test_create_list_and_show_a_request(api, filing):
    req = filing.file("alice", reason="INC-7")
    assert req["state"] == "pending"
    assert req["requester"] == "alice"
    assert req["duration_s"] == 1200
    assert req["created_at"].endswith("Z")
    assert req["approvals_required"] == [{"group": "data_owner", "count": 1}]

    alice = api.as_("alice")
    shown = alice.get(f"/v1/requests/{req['id']}")
    assert shown.status_code == 200
    assert shown.json() == req
    listed = alice.get("/v1/requests", params={"state": "pending"}).json()["requests"]
    assert [r["id"] for r in listed] == [req["id"]]
    assert alice.get("/v1/requests", params={"state": "active"}).json() == {"requests": []}
    mine = alice.get("/v1/requests", params={"requester": "bob"}).json()
    assert mine == {"requests": []}


def test_approve_activates_and_records_the_approval(api, filing):
    grant = filing.grant("alice")
    assert grant["activated_at"] and grant["expires_at"]
    approvals = api.as_("alice").get(f"/v1/requests/{grant['id']}/approvals").json()["approvals"]
    assert [(a["approver"], a["verdict"], a["location"]) for a in approvals] == [
        ("bob", "approve", "DE")
    ]


def test_deny_ends_a_request(api, filing):
    req = filing.file("alice")
    response = api.as_("bob").post(f"/v1/requests/{req['id']}/deny", {"reason": "not now"})
    assert response.status_code == 200
    assert response.json()["state"] == "denied"
    again = api.as_("bob").post(f"/v1/requests/{req['id']}/approve")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"


def test_cancel_is_for_the_requester_only(api, filing):
    req = filing.file("alice")
    refused = api.as_("bob").post(f"/v1/requests/{req['id']}/cancel")
    assert refused.status_code == 403
    assert {r["code"] for r in refused.json()["error"]["reasons"]} == {"not_requester"}
    cancelled = api.as_("alice").post(f"/v1/requests/{req['id']}/cancel", {})
    assert cancelled.json()["state"] == "cancelled"


def test_relinquish_gives_a_grant_back(api, filing):
    grant = filing.grant("alice")
    response = api.as_("alice").post(f"/v1/grants/{grant['id']}/relinquish")
    assert response.status_code == 200
    assert response.json()["state"] == "relinquished"


def test_extend_after_half_the_grant_asks_for_an_approved_extension(api):
    grant = api.grant("alice", duration="2s")
    early = api.as_("alice").post(f"/v1/grants/{grant['id']}/extend", {"duration": "1m"})
    assert early.status_code == 403
    assert "extension_too_early" in {r["code"] for r in early.json()["error"]["reasons"]}
    time.sleep(1.1)
    response = api.as_("alice").post(
        f"/v1/grants/{grant['id']}/extend", {"duration": "1m", "reason": "still on it"}
    )
    assert response.status_code == 200, response.text
    ext = response.json()
    assert (ext["kind"], ext["parent_id"], ext["state"]) == ("extension", grant["id"], "pending")
    approved = api.as_("bob").post(f"/v1/requests/{ext['id']}/approve", {"location": "DE"})
    assert approved.status_code == 200, approved.text
    extended = api.as_("alice").get(f"/v1/requests/{grant['id']}").json()
    assert extended["extended_s"] == 60


def test_break_glass_then_review(api):
    response = api.as_("oscar").post(
        "/v1/break-glass",
        {"resource": RESOURCE, "duration": "10m", "location": "DE", "reason": "INC-9 outage"},
    )
    assert response.status_code == 201, response.text
    grant = response.json()
    assert (grant["kind"], grant["state"]) == ("breakglass", "active")
    assert grant["review_due"]
    own = api.as_("oscar").post(f"/v1/grants/{grant['id']}/review", {"outcome": "accepted"})
    assert own.status_code == 403
    reviewed = api.as_("bob").post(
        f"/v1/grants/{grant['id']}/review", {"outcome": "accepted", "notes": "fine"}
    )
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["review_outcome"] == "accepted"
    assert reviewed.json()["reviewed_by"] == "bob"


def test_sweep_writes_down_what_time_decided(api):
    api.grant("alice", duration="1s")
    time.sleep(1.1)
    response = api.as_("erin", role="admin").post("/v1/sweep")
    assert response.status_code == 200
    assert response.json() == {"counts": {"expired": 1}}


def test_an_unknown_id_is_404_naming_the_field(api):
    for method, path in [
        ("get", "/v1/requests/doesnotexist"),
        ("post", "/v1/requests/doesnotexist/approve"),
        ("post", "/v1/grants/doesnotexist/revoke"),
        ("get", "/v1/requests/doesnotexist/approvals"),
    ]:
        response = getattr(api.as_("bob"), method)(path)
        assert response.status_code == 404, path
        error = response.json()["error"]
        assert (error["code"], error["field"]) == ("not_found", "request_id")
        assert "doesnotexist" in error["message"]


def test_a_policy_refusal_is_403_with_reason_codes(api):
    response = api.as_("alice").post(
        "/v1/requests", {"resource": RESOURCE, "duration": "5h", "location": "DE", "reason": "x"}
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "denied"
    assert {r["code"] for r in error["reasons"]} == {"duration_exceeds_tier_max"}
    assert error["decision_id"]


def test_the_audit_trail_pages(api):
    api.grant("alice")
    alice = api.as_("alice")
    everything = alice.get("/v1/audit", params={"limit": 1000}).json()["events"]
    granted = [e["event"] for e in everything if e["request_id"]]
    assert granted == ["requested", "approved", "activated"]
    paged, after = [], 0
    while after is not None:
        page = alice.get("/v1/audit", params={"after": after, "limit": 2}).json()
        assert len(page["events"]) <= 2
        paged += page["events"]
        after = page["next_after"]
    assert paged == everything
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(everything))
