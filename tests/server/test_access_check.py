"""POST /v1/access/check answers exactly what OPA answers for the same input."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from live_server import RESOURCE, Caller, uvicorn_thread

from datavisa.engine.api.app import create_app
from datavisa.engine.api.service import Service
from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.policy.decide import ACCESS
from datavisa.engine.policy.process import free_port
from datavisa.engine.store.sqlite import Store

# (subject, resource, action, location) after alice holds a read grant from DE.
CASES = [
    ("alice", RESOURCE, "read", "DE"),
    ("alice", RESOURCE, "read", "US"),
    ("alice", RESOURCE, "write", "DE"),
    ("alice", RESOURCE, "read", "unknown"),
    ("alice", "public-docs", "read", "US"),
    ("alice", "no-such-data", "read", "DE"),
    ("bob", RESOURCE, "read", "DE"),
    ("nobody", RESOURCE, "read", "DE"),
    ("alice", "eu-payments-ledger", "read", "DE"),
]


def _opa_direct(opa_url: str, subject, resource, action, location) -> dict:
    response = requests.post(
        f"{opa_url}/v1/data/{ACCESS}",
        json={
            "input": {
                "subject": subject,
                "resource": resource,
                "action": action,
                "location": location,
            }
        },
        timeout=10,
    )
    return response.json()


def test_the_endpoint_answers_what_opa_answers(api, opa):
    api.grant("alice")
    service = api.as_("pep", role="service")
    for subject, resource, action, location in CASES:
        ours = service.post(
            "/v1/access/check",
            {"subject": subject, "resource": resource, "action": action, "location": location},
        )
        assert ours.status_code == 200, ours.text
        body = ours.json()
        # No credential: anyone may ask the engine's OPA for an access decision.
        direct = _opa_direct(opa.url, subject, resource, action, location)
        assert body["decision_id"] and direct["decision_id"]
        assert body["revision"] == "test"
        mine = {k: v for k, v in body.items() if k not in ("decision_id", "revision")}
        assert mine == direct["result"], (subject, resource, action, location)


def test_an_allow_names_the_grant_and_its_expiry(api):
    grant = api.grant("alice")
    body = (
        api.as_("alice")
        .post("/v1/access/check", {"resource": RESOURCE, "action": "read", "location": "DE"})
        .json()
    )
    assert body["allow"] is True
    assert body["reasons"] == []
    assert body["grant_id"] == grant["id"]
    assert body["expires_at"] == grant["expires_at"]


def test_revocation_is_immediate(api):
    grant = api.grant("alice")
    check = {"resource": RESOURCE, "action": "read", "location": "DE"}
    assert api.as_("alice").post("/v1/access/check", check).json()["allow"] is True
    revoked = api.as_("bob").post(f"/v1/grants/{grant['id']}/revoke", {"reason": "done"})
    assert revoked.status_code == 200
    assert revoked.json()["state"] == "revoked"
    assert api.as_("alice").post("/v1/access/check", check).json()["allow"] is False


@pytest.fixture
def dead_opa_api(tmp_path, opa):
    """The service after its OPA stopped answering: started against the session's OPA
    (so it holds the API permissions), then pointed at a loopback port nothing listens on."""
    db = tmp_path / "datavisa.db"
    store, tokens = Store(db), TokenStore(db)
    client = opa.client(timeout=1.0)
    svc = Service(Engine(store, client, revision="test"), tokens)
    client.point(f"http://127.0.0.1:{free_port()}", None)
    token, _ = tokens.issue("alice")
    with uvicorn_thread(create_app(svc)) as url:
        yield Caller(url, token), Caller(url)
    svc.close()
    tokens.close()
    store.close()


def test_opa_down_is_a_deny_with_policy_unavailable_and_health_unready(dead_opa_api):
    alice, anonymous = dead_opa_api
    response = alice.post(
        "/v1/access/check", {"resource": RESOURCE, "action": "read", "location": "DE"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["allow"] is False
    assert [r["code"] for r in body["reasons"]] == ["policy_unavailable"]
    health = anonymous.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unready"
    metrics = anonymous.get("/metrics").text
    assert "datavisa_opa_up 0.0" in metrics
    assert 'datavisa_decisions_total{reason="policy_unavailable",result="deny"} 1.0' in metrics


def test_a_request_while_opa_is_down_is_refused_and_stores_nothing(dead_opa_api):
    alice, _ = dead_opa_api
    response = alice.post(
        "/v1/requests", {"resource": RESOURCE, "duration": "1h", "location": "DE", "reason": "x"}
    )
    assert response.status_code == 403
    assert [r["code"] for r in response.json()["error"]["reasons"]] == ["policy_unavailable"]
    assert alice.get("/v1/requests").json() == {"requests": []}


def test_concurrent_checks_all_get_the_right_answer(api):
    """A bounded burst from 8 threads on loopback: the shared engine answers each one."""
    grant = api.grant("alice")
    token, _ = api.service.tokens.issue("alice")

    def burst(location: str) -> list[tuple[int, bool, str | None]]:
        caller = Caller(api.url, token)
        check = {"resource": RESOURCE, "action": "read", "location": location}
        out = []
        for _ in range(25):
            response = caller.post("/v1/access/check", check)
            body = response.json()
            out.append((response.status_code, body["allow"], body.get("grant_id")))
        return out

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(burst, ["DE", "US"] * 4))
    for location, answers in zip(["DE", "US"] * 4, results, strict=True):
        expected = (200, True, grant["id"]) if location == "DE" else (200, False, None)
        assert set(answers) == {expected}
    metrics = api.anonymous().get("/metrics").text
    assert "datavisa_decision_seconds_count 200.0" in metrics


def test_the_fast_lane_and_the_declared_route_answer_alike(api):
    """Well-formed JSON checks take the fast lane; the same check sent as another JSON
    media type (+json) goes through FastAPI's own handling. Answers and errors match."""
    api.grant("alice")
    service, alice = api.as_("pep", role="service"), api.as_("alice")

    def both(caller: Caller, body: dict) -> list[tuple[int, dict]]:
        out = []
        for media in ("application/json", "application/vnd.datavisa+json"):
            response = caller.session.post(
                caller.base + "/v1/access/check",
                data=json.dumps(body),
                headers={"Content-Type": media},
                timeout=10,
            )
            answer = response.json()
            answer.pop("decision_id", None)
            out.append((response.status_code, answer))
        return out

    for subject, resource, action, location in CASES:
        check = {"subject": subject, "resource": resource, "action": action, "location": location}
        fast, declared = both(service, check)
        assert fast == declared and fast[0] == 200, check
    check = {"subject": "bob", "resource": RESOURCE, "action": "read", "location": "DE"}
    fast, declared = both(alice, check)  # a user may not ask about someone else
    assert fast == declared and fast[0] == 403
    assert fast[1]["error"]["field"] == "subject"
    fast, declared = both(alice, {"resource": RESOURCE, "action": "read", "location": "Germany"})
    assert fast == declared and fast[0] == 422
    assert fast[1]["error"]["field"] == "location"
