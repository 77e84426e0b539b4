"""/health, /metrics and /openapi.json: no token needed, and they tell the truth."""

from __future__ import annotations

import pytest
from live_server import RESOURCE

pytestmark = pytest.mark.stores  # each test on SQLite and on PostgreSQL


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in metrics")


def test_health_is_ready_with_opa_answering(api):
    response = api.anonymous().get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "problems": [],
        "revision": "test",
        "enforcement": {"status": "enforced", "problems": []},
    }
    assert api.anonymous().get("/health", params={"enforcement": "true"}).status_code == 200
    refused = api.anonymous().get("/health", params={"enforcement": "maybe"})
    assert refused.status_code == 422 and "enforcement" in refused.text


def test_metrics_count_decisions_grants_and_requests(api):
    api.grant("alice")
    api.request("oscar")
    alice = api.as_("alice")
    for location in ("DE", "DE", "US"):
        check = {"resource": RESOURCE, "action": "read", "location": location}
        alice.post("/v1/access/check", check)
    response = api.anonymous().get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert 'datavisa_decisions_total{reason="none",result="allow"} 2.0' in text
    # alice's own call from loopback, which the test server places in DE, declaring US:
    assert 'datavisa_decisions_total{reason="location_mismatch",result="deny"} 1.0' in text
    assert _metric(text, "datavisa_decision_seconds_count") == 3
    assert 'datavisa_decision_seconds_bucket{le="+Inf"} 3.0' in text
    assert _metric(text, "datavisa_live_grants") == 1
    assert _metric(text, "datavisa_pending_requests") == 1
    assert _metric(text, "datavisa_opa_up") == 1
    assert _metric(text, "datavisa_opa_restarts_total") == 0


def test_openapi_documents_every_route_and_the_bearer_scheme(api):
    doc = api.anonymous().get("/openapi.json").json()
    paths = doc["paths"]
    for path, method in [
        ("/v1/requests", "post"),
        ("/v1/requests", "get"),
        ("/v1/requests/{request_id}", "get"),
        ("/v1/requests/{request_id}/approve", "post"),
        ("/v1/requests/{request_id}/deny", "post"),
        ("/v1/requests/{request_id}/cancel", "post"),
        ("/v1/grants/{request_id}/revoke", "post"),
        ("/v1/grants/{request_id}/relinquish", "post"),
        ("/v1/grants/{request_id}/extend", "post"),
        ("/v1/grants/{request_id}/review", "post"),
        ("/v1/break-glass", "post"),
        ("/v1/access/check", "post"),
        ("/v1/audit", "get"),
        ("/health", "get"),
        ("/metrics", "get"),
    ]:
        assert method in paths.get(path, {}), f"{method.upper()} {path}"
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    check = paths["/v1/access/check"]["post"]
    assert {"401", "403", "422"} <= set(check["responses"])
