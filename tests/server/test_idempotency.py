"""Retries are safe: a state-changing POST with an Idempotency-Key is answered once."""

from __future__ import annotations

import pytest
from live_server import Api

pytestmark = pytest.mark.stores  # each test on SQLite and on PostgreSQL


def test_a_retried_approve_gets_the_original_answer_not_409(api: Api):
    req = api.request("alice")
    bob = api.as_("bob")
    path, key = f"/v1/requests/{req['id']}/approve", {"Idempotency-Key": "approve-7f3a"}
    first = bob.post(path, {"location": "DE"}, headers=key)
    again = bob.post(path, {"location": "DE"}, headers=key)
    assert first.status_code == 200 and first.json()["state"] == "active"
    assert (again.status_code, again.json()) == (200, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert bob.post(path, {"location": "DE"}).status_code == 409  # without the key: as before
    trail = api.service.engine.trail(req["id"])
    assert [e["event"] for e in trail].count("approved") == 1


def test_a_key_is_the_callers_and_bound_to_its_body(api: Api):
    first = api.request("alice")
    key = {"Idempotency-Key": "k-1"}
    body = {"resource": first["resource"], "duration": "20m", "location": "DE", "reason": "x"}
    cancel = f"/v1/requests/{first['id']}/cancel"
    assert api.as_("alice").post(cancel, {}, headers=key).status_code == 200
    other_path = api.as_("alice").post("/v1/requests", body, headers=key)
    assert other_path.status_code == 201  # the key is bound to the path too
    other_body = api.as_("alice").post(cancel, {"unexpected": 1}, headers=key)
    assert other_body.status_code == 422
    assert other_body.json()["error"]["code"] == "idempotency_key_reused"
    # Another caller's same key is theirs alone: carol gets her own answer (a refusal).
    assert api.as_("carol").post(cancel, {}, headers=key).status_code in (403, 409)


def test_a_malformed_key_is_refused_naming_the_header(api: Api):
    req = api.request("alice")
    bad = api.as_("alice").post(
        f"/v1/requests/{req['id']}/cancel", {}, headers={"Idempotency-Key": "has space"}
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "Idempotency-Key"
    assert api.service.engine.get(req["id"]).state == "pending"  # nothing changed
