"""The forward-auth endpoints (/v1/authz/...) as nginx, Caddy, Traefik and Envoy ask them:
what each protocol sends, what it takes as an allow, and every bad input a recorded deny."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
import requests
from live_server import Api, uvicorn_thread

from datavisa.engine.api.app import create_app
from datavisa.engine.api.config import GatewayConfig
from datavisa.engine.api.service import Service

HOST = "analytics.localhost"  # the shipped route to eu-customer-analytics (routes.yaml)
GATEWAY = GatewayConfig(
    country_header="x-client-country",
    networks=((ipaddress.ip_network("10.20.0.0/16"), "DE"),),
)


@pytest.fixture
def gw(service: Service) -> Iterator[Api]:
    live = Service(service.engine, service.tokens, gateway=GATEWAY)
    with uvicorn_thread(create_app(live)) as url:
        yield Api(url, live)
    live.close()


@pytest.fixture
def gateway_token(gw: Api) -> str:
    return gw.service.tokens.issue("edge-gateway", "service")[0]


def _nginx(gw: Api, token: str | None, **headers: str) -> requests.Response:
    sent = {"X-Original-Method": "GET", "X-Original-URI": "/reports?id=7", "X-Original-Host": HOST}
    if token:
        sent["X-DataVisa-Gateway-Token"] = token
    return requests.get(f"{gw.url}/v1/authz/nginx", headers=sent | headers, timeout=10)


def _as_alice(token: str) -> dict[str, str]:
    return {"X-DataVisa-Gateway-Token": token, "X-Auth-Request-User": "alice"}


def test_nginx_denies_without_a_grant_and_allows_with_one(gw, gateway_token):
    denied = _nginx(gw, gateway_token, **{"X-Auth-Request-User": "alice", "X-Client-Country": "DE"})
    assert denied.status_code == 403
    assert denied.headers["X-DataVisa-Reasons"] == "no_active_grant"
    assert denied.json()["error"]["code"] == "access_denied"
    grant = gw.grant("alice")
    allowed = _nginx(
        gw, gateway_token, **{"X-Auth-Request-User": "alice", "X-Client-Country": "DE"}
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["X-DataVisa-Grant-Id"] == grant["id"]
    assert allowed.headers["X-DataVisa-Subject"] == "alice"
    assert allowed.headers["X-DataVisa-Expires-At"].endswith("Z")
    assert allowed.headers["X-DataVisa-Decision-Id"]


def test_a_country_the_grant_does_not_cover_is_denied(gw, gateway_token):
    gw.grant("alice")
    from_us = _nginx(
        gw, gateway_token, **{"X-Auth-Request-User": "alice", "X-Client-Country": "US"}
    )
    assert from_us.status_code == 403
    assert "location_not_permitted" in from_us.headers["X-DataVisa-Reasons"]


def test_the_country_comes_from_the_networks_when_no_header_says(gw, gateway_token):
    gw.grant("alice")
    inside = _nginx(
        gw, gateway_token, **{"X-Auth-Request-User": "alice", "X-Forwarded-For": "10.20.3.4"}
    )
    assert inside.status_code == 200, inside.text
    # A client cannot pick its network: only the entry the gateway appended counts.
    spoofed = {"X-Auth-Request-User": "alice", "X-Forwarded-For": "10.20.3.4, 203.0.113.9"}
    outside = _nginx(gw, gateway_token, **spoofed)
    assert outside.status_code == 403
    assert "location_not_permitted" in outside.headers["X-DataVisa-Reasons"]


def test_forward_auth_reads_the_forwarded_headers_and_a_revoke_denies_at_once(gw, gateway_token):
    grant = gw.grant("alice")
    sent = _as_alice(gateway_token) | {
        "X-Forwarded-Method": "POST",
        "X-Forwarded-Uri": "/reports",
        "X-Forwarded-Host": HOST,
        "X-Client-Country": "DE",
    }
    write = requests.get(f"{gw.url}/v1/authz/forward", headers=sent, timeout=10)
    assert write.status_code == 403  # the grant is for read; POST maps to write
    assert write.headers["X-DataVisa-Reasons"] == "action_not_permitted"
    read = requests.get(
        f"{gw.url}/v1/authz/forward", headers=sent | {"X-Forwarded-Method": "GET"}, timeout=10
    )
    assert read.status_code == 200
    revoked = gw.as_("bob").post(f"/v1/grants/{grant['id']}/revoke", {"reason": "done"})
    assert revoked.status_code == 200, revoked.text
    again = requests.get(
        f"{gw.url}/v1/authz/forward", headers=sent | {"X-Forwarded-Method": "GET"}, timeout=10
    )
    assert again.status_code == 403


def test_envoy_appends_the_path_and_keeps_the_method_and_only_200_allows(gw, gateway_token):
    gw.grant("alice")
    sent = _as_alice(gateway_token) | {"Host": HOST, "X-Client-Country": "DE"}
    ok = requests.get(f"{gw.url}/v1/authz/envoy/reports/q1?x=1", headers=sent, timeout=10)
    assert ok.status_code == 200
    write = requests.delete(f"{gw.url}/v1/authz/envoy/reports/q1", headers=sent, timeout=10)
    assert write.status_code == 403
    partial = sent | {"x-envoy-auth-partial-body": "true"}
    cut = requests.post(f"{gw.url}/v1/authz/envoy/reports", headers=partial, timeout=10)
    assert cut.status_code == 403
    assert "partial_body" in cut.headers["X-DataVisa-Reasons"]
    # The raw path is judged: an encoded dot segment never reaches another route.
    sneaky = requests.get(f"{gw.url}/v1/authz/envoy/docs/%2e%2e/reports", headers=sent, timeout=10)
    assert sneaky.headers["X-DataVisa-Reasons"] == "path_not_canonical"


def test_a_user_token_asks_about_itself(gw):
    gw.grant("alice")
    headers = {
        "Authorization": f"Bearer {gw.as_('alice').token}",
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Uri": "/",
        "X-Forwarded-Host": HOST,
    }
    # No vouched-for country and a loopback peer in no network: unknown, which no grant covers.
    answer = requests.get(f"{gw.url}/v1/authz/forward", headers=headers, timeout=10)
    assert answer.status_code == 403
    assert "location_not_permitted" in answer.headers["X-DataVisa-Reasons"]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"X-Original-Host": "nowhere.example"}, "no_route"),
        ({"X-Client-Country": "Germany"}, "country_header_invalid"),
        ({"X-Client-Country": "XX"}, "country_header_invalid"),
        ({"X-Original-URI": "/" + "a" * 5000}, "header_too_large"),
        ({"X-Auth-Request-User": "alice" * 1000}, "header_too_large"),
    ],
)
def test_bad_input_is_a_recorded_deny_with_its_reason(gw, gateway_token, headers, code):
    gw.grant("alice")
    answer = _nginx(gw, gateway_token, **({"X-Auth-Request-User": "alice"} | headers))
    assert answer.status_code == 403
    assert code in answer.headers["X-DataVisa-Reasons"].split(",")
    logged = gw.as_("audit", role="auditor").get("/v1/logs", params={"reason": code}).json()
    assert logged["events"], f"{code} is not in the decision log"
    assert logged["events"][-1]["path"] == "datavisa/gateway/decision"


def test_an_identity_header_without_the_gateway_credential_is_a_recorded_deny(gw):
    gw.grant("alice")
    alone = _nginx(gw, None, **{"X-Auth-Request-User": "alice"})
    assert alone.status_code == 403
    assert alone.headers["X-DataVisa-Reasons"] == "identity_without_credential"
    # A user's own token cannot name someone else either.
    as_bob = _nginx(
        gw,
        None,
        **{"X-Auth-Request-User": "alice", "Authorization": f"Bearer {gw.as_('bob').token}"},
    )
    assert as_bob.status_code == 403
    assert "identity_without_credential" in as_bob.headers["X-DataVisa-Reasons"]
    logged = gw.as_("audit", role="auditor").get(
        "/v1/logs", params={"reason": "identity_without_credential"}
    )
    assert len(logged.json()["events"]) == 2


def test_credentials_that_do_not_verify_are_401(gw):
    assert _nginx(gw, None).status_code == 401
    assert _nginx(gw, "not-a-token", **{"X-Auth-Request-User": "alice"}).status_code == 401
    user_token = gw.as_("alice").token
    assert _nginx(gw, user_token, **{"X-Auth-Request-User": "alice"}).status_code == 401


def test_every_allowed_gateway_access_is_logged_with_method_host_and_masked_path(gw, gateway_token):
    gw.grant("alice")
    sent = {
        "X-Auth-Request-User": "alice",
        "X-Client-Country": "DE",
        "X-Forwarded-For": "10.20.3.4",
    }
    assert _nginx(gw, gateway_token, **sent).status_code == 200
    events = gw.as_("audit", role="auditor").get("/v1/logs", params={"result": "allow"}).json()
    context = events["events"][-1]["input"]["context"]
    assert context["method"] == "GET" and context["host"] == HOST and context["path"] == "/reports"
    assert "query" not in context  # the query string may hold personal data: masked
    assert context["client_ip"] == "10.20.3.0/24"
