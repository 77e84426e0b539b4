"""The forward-auth endpoints (/v1/authz/...) as nginx, Caddy, Traefik and Envoy ask them:
what each protocol sends, what it takes as an allow, and every bad input a recorded deny."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from hostile import (
    CANONICAL,
    NOT_CANONICAL,
    documented,
    example_gateway,
    raw_request,
)
from hostile import HOST as DOCS_HOST
from live_server import Api, uvicorn_thread

from datavisa.engine.api.app import create_app
from datavisa.engine.api.config import GatewayConfig
from datavisa.engine.api.permissions import Permissions
from datavisa.engine.api.routes.gateway import ENVOY_PREFIX, METHOD_OVERRIDES
from datavisa.engine.api.service import Service
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.location.networks import Networks
from datavisa.engine.policy.opa import OpaClient
from datavisa.engine.policy.process import free_port

HOST = "analytics.localhost"  # the shipped route to eu-customer-analytics (routes.yaml)
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout
EXAMPLES = PROJECT_ROOT / "examples"
GRANT_HEADERS = {
    "x-datavisa-subject", "x-datavisa-grant-id", "x-datavisa-expires-at", "x-datavisa-decision-id"
}  # fmt: skip
GATEWAY = GatewayConfig(country_header="x-client-country")
LOCATION = Networks(
    networks=((ipaddress.ip_network("10.20.0.0/16"), "DE"),),
    proxies=(ipaddress.ip_network("127.0.0.1/32"),),  # the tests' gateway: this loopback
)


@pytest.fixture
def gw(service: Service) -> Iterator[Api]:
    live = Service(service.engine, service.tokens, gateway=GATEWAY, location=LOCATION)
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


@pytest.fixture
def opa_gone(service: Service) -> Iterator[Api]:
    """A service whose engine's OPA does not answer, with the role table already loaded."""
    permissions = Permissions()
    permissions.load(service.engine.opa)
    dead = OpaClient(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    engine = Engine(service.engine.store, dead, revision="test", log=service.engine.log)
    live = Service(
        engine, service.tokens, permissions=permissions, gateway=GATEWAY, location=LOCATION
    )
    with uvicorn_thread(create_app(live)) as url:
        yield Api(url, live)
    live.close()
    dead.close()


def test_an_opa_that_does_not_answer_is_a_403_never_a_5xx(opa_gone):
    token = opa_gone.service.tokens.issue("edge-gateway", "service")[0]
    answer = _nginx(opa_gone, token, **{"X-Auth-Request-User": "alice"})
    assert answer.status_code == 403
    assert answer.headers["X-DataVisa-Reasons"] == "policy_unavailable"
    # Before the role table is loaded, too: a deny, not the API's 503.
    opa_gone.service.permissions = Permissions()
    unloaded = _nginx(opa_gone, token, **{"X-Auth-Request-User": "alice"})
    assert (unloaded.status_code, unloaded.json()["error"]["code"]) == (403, "policy_unavailable")


def test_the_envoy_and_traefik_examples_ask_these_endpoints_for_these_headers():
    envoy = yaml.safe_load((EXAMPLES / "envoy" / "envoy.yaml").read_text())
    manager = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    authz = manager["typed_config"]["http_filters"][0]["typed_config"]
    assert authz["failure_mode_allow"] is False  # fail closed
    service = authz["http_service"]
    assert service["path_prefix"] == ENVOY_PREFIX
    added = {h["key"] for h in service["authorization_request"]["headers_to_add"]}
    assert added == {GatewayConfig().credential_header}
    upstream = service["authorization_response"]["allowed_upstream_headers"]["patterns"]
    assert {p["exact"] for p in upstream} == GRANT_HEADERS
    asked = {p["exact"] for p in service["authorization_request"]["allowed_headers"]["patterns"]}
    assert set(METHOD_OVERRIDES) <= asked, "DataVisa judges a method override"

    traefik = yaml.safe_load((EXAMPLES / "traefik" / "dynamic.yaml").read_text())["http"]
    forward = traefik["middlewares"]["datavisa"]["forwardAuth"]
    assert forward["address"].endswith("/v1/authz/forward")
    assert forward["trustForwardHeader"] is False
    assert {h.lower() for h in forward["authResponseHeaders"]} == GRANT_HEADERS
    credential = traefik["middlewares"]["gateway-credential"]["headers"]["customRequestHeaders"]
    assert {h.lower() for h in credential} == {GatewayConfig().credential_header}


def _dropped_or_set(example: str) -> set[str]:
    """The request headers an example drops from, or sets over, what its client sent, each
    as the example says so in its own format, lower-case."""
    text = (EXAMPLES / example).read_text()
    if example.startswith("nginx"):
        # Both where it asks DataVisa and where it forwards: what both locations set.
        forward, _, ask = text.partition("location = /_datavisa")
        forwarded, asked = (
            {n.lower() for n in re.findall(r"proxy_set_header\s+(\S+)", part)}
            for part in (forward, ask)
        )
        return forwarded & asked
    if example.startswith("caddy"):
        route = text.split("forward_auth @", 1)[0]  # dropped before it asks
        return {n.lower() for n in re.findall(r"request_header\s+-(\S+)", route)}
    doc = yaml.safe_load(text)
    if example.startswith("envoy"):
        manager = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        config = manager["typed_config"]
        removed = set(config["route_config"]["virtual_hosts"][0]["request_headers_to_remove"])
        asked = config["http_filters"][0]["typed_config"]["http_service"]
        passed = {p["exact"] for p in asked["authorization_request"]["allowed_headers"]["patterns"]}
        # Envoy asks with only the allowed headers; X-Forwarded-For it appends to itself.
        xff = {"x-forwarded-for"} if config["use_remote_address"] is True else set()
        return {h for h in removed if h not in passed} | xff
    middlewares = doc["http"]["middlewares"]
    stripped = middlewares["strip-identity"]["headers"]["customRequestHeaders"]
    # trustForwardHeader: false replaces a client's X-Forwarded-For with what Traefik saw.
    xff = (
        {"x-forwarded-for"}
        if middlewares["datavisa"]["forwardAuth"]["trustForwardHeader"] is False
        else set()
    )
    return {h.lower() for h, v in stripped.items() if v == ""} | xff


@pytest.mark.parametrize(
    "example", ["nginx/nginx.conf", "caddy/Caddyfile", "envoy/envoy.yaml", "traefik/dynamic.yaml"]
)
def test_every_example_drops_every_header_the_engine_trusts(example):
    """The names come from examples/datavisa.yaml, the config the examples pair with:
    rename a header there, and each example must drop the new name."""
    trusted = set(example_gateway().trusted_headers)
    assert len(trusted) >= 5  # credential, two identities, country, X-Forwarded-For
    missing = trusted - _dropped_or_set(example)
    assert not missing, f"{example} lets a client send {sorted(missing)}"


def test_the_docs_configure_the_gateway_the_examples_pair_with():
    docs = documented(PROJECT_ROOT / "docs" / "gateway.md")["gateway"]
    example = yaml.safe_load((EXAMPLES / "datavisa.yaml").read_text())["gateway"]
    assert docs == example


def _table_request(gw: Api, how: str, path: str, token: str) -> tuple[int, dict[str, str]]:
    port = int(gw.url.rsplit(":", 1)[1])
    asked = {"X-DataVisa-Gateway-Token": token, "X-Auth-Request-User": "alice"}
    if how == "nginx":
        asked |= {"X-Original-Method": "GET", "X-Original-URI": path, "X-Original-Host": DOCS_HOST}
        status, headers, _ = raw_request(port, "/v1/authz/nginx", asked)
    elif how == "forward":
        asked |= {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": path}
        status, headers, _ = raw_request(
            port, "/v1/authz/forward", asked | {"X-Forwarded-Host": DOCS_HOST}
        )
    else:
        status, headers, _ = raw_request(port, ENVOY_PREFIX + path, asked | {"Host": DOCS_HOST})
    return status, headers


@pytest.mark.parametrize("how", ["nginx", "forward", "envoy"])
def test_each_endpoint_judges_a_path_only_in_its_canonical_form(gw, gateway_token, how):
    assert _table_request(gw, how, CANONICAL, gateway_token)[0] == 200
    for path in NOT_CANONICAL:
        status, headers = _table_request(gw, how, path, gateway_token)
        # uvicorn refuses some request lines itself (400); a judged one says why.
        assert status in (400, 403), (path, status)
        if status == 403:
            assert headers["x-datavisa-reasons"] == "path_not_canonical", path


def test_a_method_override_is_judged_as_the_method_it_names(gw, gateway_token):
    gw.grant("alice")
    asked = _as_alice(gateway_token) | {"X-Client-Country": "DE"}
    docs = {"X-Original-Method": "GET", "X-Original-URI": CANONICAL, "X-Original-Host": DOCS_HOST}
    for extra in ({"X-HTTP-Method-Override": "DELETE"}, {"X-Method-Override": "post"}):
        denied = requests.get(f"{gw.url}/v1/authz/nginx", headers=asked | docs | extra, timeout=10)
        assert denied.headers["X-DataVisa-Reasons"] == "method_override_not_routed", extra
    query = docs | {"X-Original-URI": CANONICAL + "?_method=DELETE"}
    by_query = requests.get(f"{gw.url}/v1/authz/nginx", headers=asked | query, timeout=10)
    assert by_query.headers["X-DataVisa-Reasons"] == "method_override_not_routed"
    # On a route that maps it, the override is the method judged: alice may read, not write.
    console = docs | {"X-Original-Host": HOST, "X-Original-URI": "/reports"}
    assert requests.get(f"{gw.url}/v1/authz/nginx", headers=asked | console, timeout=10).ok
    write = console | {"X-HTTP-Method-Override": "POST"}
    judged = requests.get(f"{gw.url}/v1/authz/nginx", headers=asked | write, timeout=10)
    assert judged.headers["X-DataVisa-Reasons"] == "action_not_permitted"


def test_only_a_gateway_at_a_configured_address_names_the_client_address(service, gw):
    """uvicorn would let any loopback client set its address with X-Forwarded-For; here
    only a gateway that authenticates and connects from gateway.proxies does."""
    gw.grant("alice")
    alice = {"Authorization": f"Bearer {gw.as_('alice').token}"}
    sent = alice | {
        "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/reports", "X-Forwarded-Host": HOST,
        "X-Forwarded-For": "10.20.1.1",  # Germany, in these networks
    }  # fmt: skip
    mine = requests.get(f"{gw.url}/v1/authz/forward", headers=sent, timeout=10)
    assert mine.status_code == 403, "alice's own token names no address but her own"
    assert "location_not_permitted" in mine.headers["X-DataVisa-Reasons"]
    log = gw.service.engine.log
    context = log.query(path="datavisa/access/decision")[-1]["input"]["context"]
    assert (context["client_ip"], context["client_ip_set_by"]) == ("127.0.0.0/24", "peer")

    token = gw.service.tokens.issue("edge-gateway", "service")[0]
    gatewayed = sent | {"X-DataVisa-Gateway-Token": token}
    assert requests.get(f"{gw.url}/v1/authz/forward", headers=gatewayed, timeout=10).ok
    context = log.query(path="datavisa/access/decision")[-1]["input"]["context"]
    assert (context["client_ip"], context["client_ip_set_by"]) == (
        "10.20.1.0/24",
        "gateway 127.0.0.1",
    )

    # The same gateway from an address not in gateway.proxies is a peer like any other.
    elsewhere = Service(
        service.engine,
        service.tokens,
        gateway=GATEWAY,
        location=dataclasses.replace(LOCATION, proxies=()),
    )
    with uvicorn_thread(create_app(elsewhere)) as url:
        outside = requests.get(f"{url}/v1/authz/forward", headers=gatewayed, timeout=10)
    elsewhere.close()
    assert outside.status_code == 403
    assert "location_not_permitted" in outside.headers["X-DataVisa-Reasons"]


def test_traefik_and_envoy_take_the_answers_as_their_protocols_define(gw, gateway_token):
    """Traefik allows on any 2xx and Envoy only on 200: an allow is exactly 200, and every
    deny is a 4xx they hand to the client as it is, with its reasons."""
    gw.grant("alice")
    traefik = _as_alice(gateway_token) | {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": HOST,
        "X-Forwarded-Uri": "/reports",
        "X-Forwarded-For": "198.51.100.7, 10.20.0.9",  # a client's own entry, then Traefik's
    }
    assert (
        requests.get(f"{gw.url}/v1/authz/forward", headers=traefik, timeout=10).status_code == 200
    )
    moved = traefik | {"X-Forwarded-Uri": "/../admin"}
    denied = requests.get(f"{gw.url}/v1/authz/forward", headers=moved, timeout=10)
    assert denied.status_code == 403 and denied.headers["content-type"] == "application/json"
    assert denied.json()["error"]["reasons"][0]["code"] == "path_not_canonical"
