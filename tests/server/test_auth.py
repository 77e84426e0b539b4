"""Bearer tokens: kept as hashes, the acting subject is the token's, 401 and 403 in JSON."""

from __future__ import annotations

import hashlib

import pytest
from live_server import RESOURCE

CHECK = {"resource": RESOURCE, "action": "read", "location": "DE"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer dvt_000000000000_" + "x" * 43},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="},
    ],
    ids=["none", "unknown", "malformed", "basic"],
)
def test_calls_without_a_valid_token_get_401_in_json(api, headers):
    response = api.anonymous().post("/v1/access/check", CHECK, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthenticated"


def test_a_revoked_token_stops_working(api):
    token, record = api.service.tokens.issue("alice")
    caller = api.anonymous()
    headers = {"Authorization": f"Bearer {token}"}
    assert caller.get("/v1/whoami", headers=headers).json() == {"subject": "alice", "role": "user"}
    api.service.tokens.revoke(record.id)
    assert caller.get("/v1/whoami", headers=headers).status_code == 401


def test_only_a_hash_of_the_token_is_stored(api):
    token, record = api.service.tokens.issue("alice")
    rows = list(api.service.tokens.db["tokens"].rows)
    assert not any(token in str(value) for row in rows for value in row.values())
    stored = next(r for r in rows if r["id"] == record.id)
    assert stored["hash"] == hashlib.sha256(token.encode()).hexdigest()


def test_the_acting_subject_comes_from_the_token_never_the_body(api):
    response = api.as_("alice").post(
        "/v1/requests",
        {"resource": RESOURCE, "duration": "1h", "location": "DE", "requester": "bob"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "requester"
    req = api.request("alice")
    assert req["requester"] == "alice"


def test_a_user_may_check_only_their_own_access(api):
    response = api.as_("alice").post("/v1/access/check", {**CHECK, "subject": "bob"})
    assert response.status_code == 403
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("forbidden", "subject")
    own = api.as_("alice").post("/v1/access/check", {**CHECK, "subject": "alice"})
    assert own.status_code == 200


def test_a_service_may_check_any_subject(api):
    api.grant("alice")
    response = api.as_("db-proxy", role="service").post(
        "/v1/access/check", {**CHECK, "subject": "alice"}
    )
    assert response.status_code == 200
    assert response.json()["allow"] is True


def test_nobody_approves_as_someone_else(api):
    req = api.request("alice")
    response = api.as_("alice").post(f"/v1/requests/{req['id']}/approve", {"approver": "bob"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "approver"
    refused = api.as_("alice").post(f"/v1/requests/{req['id']}/approve")
    assert refused.status_code == 403
    assert "self_approval" in {r["code"] for r in refused.json()["error"]["reasons"]}
