"""Bad input gets a 4xx JSON error that names the field, and stores nothing."""

from __future__ import annotations

import json

import pytest
from live_server import RESOURCE

from datavisa.engine.ledger import audit

GOOD = {"resource": RESOURCE, "duration": "20m", "location": "DE", "reason": "INC-1"}
CHECK = {"resource": RESOURCE, "action": "read", "location": "DE"}


def _nothing_stored(api) -> bool:
    store = api.service.engine.store
    events = [e["event"] for e in audit.trail(store.db)]
    # The test's own tokens are audited when issued; nothing else may be.
    return store.requests() == [] and set(events) <= {"token_issued"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"location": "Germany"}, "location"),
        ({"location": "de"}, "location"),
        ({"location": "D"}, "location"),
        ({"location": "12"}, "location"),
        ({"location": None}, "location"),
        ({"duration": "ten minutes"}, "duration"),
        ({"duration": "1h1h"}, "duration"),
        ({"duration": "30m1h"}, "duration"),  # on the wire the units go d, h, m, s
        ({"duration": "1H"}, "duration"),
        ({"duration": " 1h"}, "duration"),
        ({"duration": "1234567s"}, "duration"),  # more digits than the schema allows
        ({"duration": 0}, "duration"),
        ({"duration": -60}, "duration"),
        ({"duration": 1.5}, "duration"),
        ({"duration": True}, "duration"),
        ({"actions": "read"}, "actions"),
        ({"actions": []}, "actions"),
        ({"actions": [7]}, "actions.0"),
        ({"resource": 42}, "resource"),
        ({"resource": ""}, "resource"),
        ({"reason": ["x"]}, "reason"),
        ({"reason": "x" * 5000}, "reason"),
        ({"start_at": "tomorrow"}, "start_at"),
        ({"start_at": "2030-01-01T10:00:00"}, "start_at"),
        ({"requester": "bob"}, "requester"),
        ({"policy": {"allow": True}}, "policy"),
    ],
)
def test_a_bad_field_is_named(api, change, field):
    response = api.as_("alice").post("/v1/requests", GOOD | change)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["field"] == field
    assert _nothing_stored(api)


@pytest.mark.parametrize(
    ("duration", "code"),
    [("0s", "duration_invalid"), ("9999d", "duration_exceeds_tier_max"), (10**9, None)],
)
def test_a_duration_the_schema_allows_is_policy_s_to_judge(api, duration, code):
    """Whatever the schema allows the server takes; how long is too long is policy's:
    a 403 with the reason, never a 422 for input the document says is valid."""
    response = api.as_("alice").post("/v1/requests", GOOD | {"duration": duration})
    assert response.status_code == 403, response.text
    codes = {r["code"] for r in response.json()["error"]["reasons"]}
    assert code in codes if code else "duration_exceeds_tier_max" in codes
    assert _nothing_stored(api)


def test_a_scheduled_start_is_taken_as_rfc_3339_text(api):
    """A strict body took no time as text at all (every start_at was refused)."""
    response = api.as_("alice").post("/v1/requests", GOOD | {"start_at": "2099-01-01T09:00:00Z"})
    assert response.status_code == 403, response.text  # 73 years ahead: policy says no
    assert [r["code"] for r in response.json()["error"]["reasons"]] == ["start_too_far_ahead"]
    soon = api.as_("alice").post("/v1/requests", GOOD | {"start_at": _in_an_hour()})
    assert soon.status_code == 201, soon.text
    assert soon.json()["start_at"] is not None


def _in_an_hour() -> str:
    import time

    from datavisa.engine.model.durations import rfc3339

    return rfc3339(time.time() + 3600)


@pytest.mark.parametrize("missing", ["resource", "duration", "location"])
def test_a_missing_field_is_named(api, missing):
    body = {k: v for k, v in GOOD.items() if k != missing}
    response = api.as_("alice").post("/v1/requests", body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == missing
    assert _nothing_stored(api)


@pytest.mark.parametrize("raw", ["{", '{"resource": ', "not json", '{"a": 1,}'])
def test_malformed_json_is_400(api, raw):
    response = api.as_("alice").post(
        "/v1/requests", data=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("malformed_json", "body")
    assert _nothing_stored(api)


@pytest.mark.parametrize("body", [[], "text", 5, None])
def test_a_body_that_is_not_an_object_is_refused(api, body):
    response = api.as_("alice").post(
        "/v1/requests", data=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "body"
    assert _nothing_stored(api)


def test_a_body_not_sent_as_json_is_415(api):
    response = api.as_("alice").post(
        "/v1/requests", data=json.dumps(GOOD), headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert _nothing_stored(api)


def test_an_oversize_body_is_413(api):
    body = GOOD | {"evidence": ["x" * 100] * 200}  # ~20 KiB, over the test limit of 16 KiB
    response = api.as_("alice").post("/v1/requests", body)
    assert response.status_code == 413
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("body_too_large", "body")
    assert _nothing_stored(api)


def test_an_oversize_streamed_body_is_413(api):
    def chunks():
        yield b'{"resource": "'
        for _ in range(40):
            yield b"x" * 1024
        yield b'"}'

    response = api.as_("alice").post(
        "/v1/requests", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert _nothing_stored(api)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/access/check", CHECK | {"location": "XXX"}, "location"),
        ("/v1/access/check", {"resource": RESOURCE, "action": "read"}, "location"),
        ("/v1/access/check", CHECK | {"action": 1}, "action"),
        ("/v1/access/check", CHECK | {"at": 1}, "at"),
        ("/v1/access/check", CHECK | {"subject": ""}, "subject"),
        ("/v1/requests/abc/approve", {"location": "Deutschland"}, "location"),
        ("/v1/requests/abc/cancel", {"now": True}, "now"),
        ("/v1/grants/abc/extend", {"duration": "forever"}, "duration"),
        ("/v1/grants/abc/review", {"outcome": "maybe"}, "outcome"),
        ("/v1/requests/a%20b", None, "request_id"),
    ],
)
def test_other_endpoints_name_the_bad_field(api, path, body, field):
    caller = api.as_("alice")
    response = caller.get(path) if body is None else caller.post(path, body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize(
    ("params", "field"),
    [({"state": "sleeping"}, "state"), ({"overdue": "maybe"}, "overdue")],
)
def test_bad_query_parameters_are_named(api, params, field):
    response = api.as_("alice").get("/v1/requests", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


def test_unknown_paths_and_methods_answer_json(api):
    missing = api.as_("alice").get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = api.as_("alice").session.delete(api.url + "/v1/requests")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"
