"""China's PIPL export route over HTTP: a transfer declares the individuals it carries
(bad counts named, nothing stored), is counted when approved, and one that would take
the exporter's year past a threshold without the route's evidence is refused, naming the
field and the law."""

from __future__ import annotations

import pytest

from datavisa.engine.ledger import audit

pytestmark = pytest.mark.stores  # each test on SQLite and on PostgreSQL

CN, JAPAN = "cn-customer-profiles", "aws:ap-northeast-1"
GOOD = {
    "resource": CN,
    "target_region": JAPAN,
    "window": "1h",
    "reason": "CHG-51 CRM sync",
    "individuals": 60000,
    "sensitive_individuals": 0,
}


def _nothing_stored(api) -> bool:
    store = api.service.engine.store
    events = {e["event"] for e in audit.trail(store.db)}
    return store.requests() == [] and store.export_counts() == [] and events <= {"token_issued"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"individuals": -1}, "individuals"),
        ({"individuals": "60000"}, "individuals"),
        ({"individuals": True}, "individuals"),
        ({"individuals": 1.5}, "individuals"),
        ({"individuals": 10**12 + 1}, "individuals"),
        ({"sensitive_individuals": -3}, "sensitive_individuals"),
        ({"sensitive_individuals": None, "individuals": []}, "individuals"),
    ],
)
def test_a_bad_count_is_named_and_nothing_stored(api, change, field):
    response = api.as_("alice").post("/v1/transfers", GOOD | change)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert _nothing_stored(api)


@pytest.mark.parametrize(
    ("drop", "code"),
    [
        ("individuals", "individuals_required"),
        ("sensitive_individuals", "sensitive_individuals_required"),
    ],
)
def test_a_copy_that_does_not_say_what_it_carries_is_refused_naming_the_field(api, drop, code):
    body = {k: v for k, v in GOOD.items() if k != drop}
    response = api.as_("alice").post("/v1/transfers", body)
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert code in {r["code"] for r in error["reasons"]}
    assert error["field"] == drop
    assert _nothing_stored(api)


def test_the_count_is_kept_on_approval_and_the_next_copy_is_refused_past_it(api):
    filed = api.as_("alice").post("/v1/transfers", GOOD)
    assert filed.status_code == 201, filed.text
    transfer_id = filed.json()["id"]
    assert api.service.engine.store.export_counts() == []
    for who in ("bob", "mei"):
        done = api.as_(who).post(f"/v1/requests/{transfer_id}/approve", {"location": "DE"})
        assert done.status_code == 200, done.text
    shown = api.as_("alice").get(f"/v1/requests/{transfer_id}").json()
    assert shown["state"] == "active"
    assert shown["exports"][0]["route"] == "exempt"
    listed = api.as_("alice").get("/v1/transfers/counts")
    assert listed.status_code == 200, listed.text
    [count] = listed.json()["counts"]
    assert (count["exporter"], count["individuals"]) == ("acme-china", 60000)
    assert count["updated_at"].endswith("Z")
    assert api.as_("etl-eu", "service").get("/v1/transfers/counts").status_code == 403

    refused = api.as_("oscar").post("/v1/transfers", GOOD)
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["field"] == "evidence"
    assert [r["code"] for r in error["reasons"]] == ["export_route_evidence_required"]
    assert "Cross-Border Data Flows" in error["message"]
    ok = api.as_("oscar").post("/v1/transfers", GOOD | {"evidence": ["pipl_certification"]})
    assert ok.status_code == 201, ok.text
