"""Filing deadlines over HTTP: listed, recorded by a data protection officer, bad input
named with nothing changed."""

from __future__ import annotations

import pytest

from datavisa.engine.ledger import audit

VN, DOSSIER, EXPORTER = "vn-customer-profiles", "vn_tia_dossier", "acme-vietnam"


def _trail(api) -> list[dict]:
    """The audit trail but the tokens the test issued."""
    return [e for e in audit.trail(api.service.engine.store.db) if e["event"] != "token_issued"]


@pytest.fixture
def started(api):
    engine = api.service.engine
    req = engine.request("alice", VN, ["read"], 1800, "DE", "INC-7")
    engine.approve(req.id, "bob", "DE")
    return engine.approve(req.id, "minh", "VN")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"filing": 7, "exporter": EXPORTER}, 422, "filing"),
        ({"filing": DOSSIER}, 422, "exporter"),
        ({"filing": DOSSIER, "exporter": EXPORTER, "by": "x"}, 422, "by"),
        ({"filing": "nope", "exporter": EXPORTER}, 403, "filing"),
        ({"filing": DOSSIER, "exporter": "acme-mars"}, 403, "exporter"),
    ],
)
def test_a_bad_record_names_the_field_and_changes_nothing(api, started, body, status, field):
    petra = api.as_("petra")
    before = _trail(api)
    response = petra.post("/v1/filings", body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field
    assert _trail(api) == before
    [deadline] = petra.get("/v1/filings").json()["filings"]
    assert deadline["filed_at"] is None


def test_a_dpo_records_the_dossier_others_may_not(api, started):
    listed = api.as_("alice").get("/v1/filings", params={"overdue": "true"})
    assert (listed.status_code, listed.json()) == (200, {"filings": []})
    refused = api.as_("alice").post("/v1/filings", {"filing": DOSSIER, "exporter": EXPORTER})
    assert refused.status_code == 403
    assert "actor_not_eligible" in {r["code"] for r in refused.json()["error"]["reasons"]}
    done = api.as_("petra").post("/v1/filings", {"filing": DOSSIER, "exporter": EXPORTER})
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["filed_by"], body["first_transfer_id"]) == ("petra", started.id)
    assert body["due_at"].endswith("Z")
    again = api.as_("petra").post("/v1/filings", {"filing": DOSSIER, "exporter": EXPORTER})
    assert again.status_code == 409
