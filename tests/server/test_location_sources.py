"""Where a caller is, over real HTTP: the location's source (attested, derived, declared),
trusted proxies' X-Forwarded-For, the policy judging each source per tier, a declared
country the network disagrees with (location_mismatch, and its alert), and the decision
log keeping the client address to its network."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator

import pytest
from live_server import RESOURCE, Api, uvicorn_thread, wait_for

from datavisa.engine.api.app import create_app
from datavisa.engine.api.service import Service
from datavisa.engine.location.networks import NO_DATABASE, Networks
from datavisa.engine.monitoring.monitor import Monitor

LOOPBACK_IN_GERMANY = ((ipaddress.ip_network("127.0.0.0/8"), "DE"),)
DOCUMENTATION_IN_US = ((ipaddress.ip_network("203.0.113.0/24"), "US"),)
THIS_PROXY = (ipaddress.ip_network("127.0.0.1/32"),)
CHECK = {"resource": RESOURCE, "action": "read", "location": "DE"}


@contextlib.contextmanager
def located(service: Service, networks: Networks, monitored: bool = False) -> Iterator[Api]:
    """The API of `service`'s engine with `networks` saying where callers are."""
    monitor = Monitor(service.engine.log, service.engine.opa).start() if monitored else None
    live = Service(service.engine, service.tokens, monitor=monitor, location=networks)
    try:
        with uvicorn_thread(create_app(live)) as url:
            yield Api(url, live)
    finally:
        live.close()
        if monitor is not None:
            monitor.stop()


def _last_access(api: Api) -> dict:
    return api.service.engine.log.query(path="datavisa/access/decision")[-1]["input"]


def test_a_call_from_a_mapped_network_is_a_derived_location(service):
    with located(service, Networks(LOOPBACK_IN_GERMANY)) as api:
        api.grant("alice")
        answer = api.as_("alice").post("/v1/access/check", CHECK)
        assert answer.json()["allow"] is True, answer.text
        logged = _last_access(api)
    assert logged["location"] == "DE"
    assert logged["origin"] == {
        "source": "derived", "channel": "api", "declared": "DE", "derived": "DE",
        "address": "127.0.0.0/24", "via": "peer",
    }  # fmt: skip


def test_a_declared_country_the_network_disagrees_with_is_denied_and_alerted(service):
    with located(service, Networks(LOOPBACK_IN_GERMANY), monitored=True) as api:
        body = {"resource": RESOURCE, "duration": "20m", "location": "US", "reason": "INC-1"}
        refused = api.as_("alice").post("/v1/requests", body)
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert [r["code"] for r in error["reasons"]] == ["location_mismatch"]
        assert "declared (US) is not where the network places the caller (DE" in error["message"]
        assert api.as_("alice").get("/v1/requests").json()["requests"] == [], "nothing filed"

        def raised() -> list[dict]:
            page = api.as_("audrey", "auditor").get(
                "/v1/alerts", params={"rule": "location_mismatch"}
            )
            return page.json()["alerts"]

        [alert] = wait_for(raised, "the location_mismatch alert")
        assert (alert["subject"], alert["severity"]) == ("alice", "high")
        assert "alice declared US but the network places them in DE" in alert["message"]
        assert alert["evidence"] == [error["decision_id"]]


def test_x_forwarded_for_from_a_peer_that_is_no_trusted_proxy_is_not_read(service):
    networks = Networks(LOOPBACK_IN_GERMANY + DOCUMENTATION_IN_US)  # no proxies
    with located(service, networks) as api:
        api.grant("alice")
        alice = api.as_("alice")
        spoofed = alice.post("/v1/access/check", CHECK, headers={"X-Forwarded-For": "203.0.113.9"})
        assert spoofed.json()["allow"] is True, "the peer's own address counts: DE"
        origin = _last_access(api)["origin"]
    assert (origin["address"], origin["via"], origin["derived"]) == ("127.0.0.0/24", "peer", "DE")


def test_x_forwarded_for_from_a_trusted_proxy_is_the_client_and_the_log_names_the_hop(service):
    networks = Networks(DOCUMENTATION_IN_US + LOOPBACK_IN_GERMANY, proxies=THIS_PROXY)
    with located(service, networks) as api:
        api.grant("alice")
        alice = api.as_("alice")
        # The client wrote the first entry itself; the proxy appended the address it saw.
        hop = {"X-Forwarded-For": "127.0.0.5, 203.0.113.9"}
        moved = alice.post("/v1/access/check", CHECK, headers=hop).json()
        assert not moved["allow"]
        assert {r["code"] for r in moved["reasons"]} >= {"location_mismatch"}
        origin = _last_access(api)["origin"]
        assert origin == {
            "source": "derived", "channel": "api", "declared": "DE", "derived": "US",
            "address": "203.0.113.0/24", "via": "proxy 127.0.0.1",
        }  # fmt: skip
        # The offline database places what no configured network does (8.8.8.8: US).
        alice.post("/v1/access/check", CHECK, headers={"X-Forwarded-For": "8.8.8.8"})
        assert _last_access(api)["origin"]["derived"] == "US"
        # Without the proxy's entry the proxy itself is the client: Germany, allowed.
        assert alice.post("/v1/access/check", CHECK).json()["allow"] is True


def test_confidential_data_refuses_a_location_that_is_only_declared(service):
    # Loopback is nowhere: no network maps it and no database places it.
    with located(service, Networks(database=NO_DATABASE)) as api:
        api.grant("alice")  # asking may rest on her word; using the data may not
        answer = api.as_("alice").post("/v1/access/check", CHECK).json()
        assert not answer["allow"]
        [reason] = answer["reasons"]
        assert reason["code"] == "location_source_not_accepted"
        assert reason["accepted"] == ["attested", "derived"]
        assert _last_access(api)["origin"]["source"] == "declared"
        # A service asking about alice attests where she is, by its credential.
        pep = api.as_("pep", role="service")
        vouched = pep.post("/v1/access/check", CHECK | {"subject": "alice"}).json()
        assert vouched["allow"] is True, vouched
        assert _last_access(api)["origin"]["source"] == "attested"
        assert _last_access(api)["origin"]["attested_by"] == "pep"


@pytest.mark.parametrize(
    ("forwarded", "status", "field"),
    [
        ("not-an-address", 400, "X-Forwarded-For"),
        ("203.0.113.9, 999.1.1.1", 400, "X-Forwarded-For"),
    ],
)
def test_a_trusted_proxy_naming_no_address_is_refused_naming_the_header(
    service, forwarded, status, field
):
    networks = Networks(LOOPBACK_IN_GERMANY, proxies=THIS_PROXY)
    with located(service, networks) as api:
        alice = api.as_("alice")
        before = len(api.service.engine.log.query(limit=1000))
        body = {"resource": RESOURCE, "duration": "20m", "location": "DE", "reason": "INC-1"}
        for path, sent in (("/v1/access/check", CHECK), ("/v1/requests", body)):
            answer = alice.post(path, sent, headers={"X-Forwarded-For": forwarded})
            assert answer.status_code == status, answer.text
            assert answer.json()["error"]["field"] == field
        assert len(api.service.engine.log.query(limit=1000)) == before, "nothing decided"
        assert alice.get("/v1/requests").json()["requests"] == []


def test_a_bad_country_code_is_refused_naming_the_field(service):
    with located(service, Networks(LOOPBACK_IN_GERMANY)) as api:
        for location in ("Germany", "de", "XX1"):
            answer = api.as_("alice").post("/v1/access/check", CHECK | {"location": location})
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"]["field"] == "location"


def test_a_gateways_trusted_country_header_is_an_attested_location(service):
    from datavisa.engine.api.config import GatewayConfig

    live = Service(
        service.engine,
        service.tokens,
        gateway=GatewayConfig(country_header="x-client-country"),
        location=Networks(LOOPBACK_IN_GERMANY, proxies=THIS_PROXY),
    )
    with uvicorn_thread(create_app(live)) as url:
        api = Api(url, live)
        api.grant("alice")
        token = live.tokens.issue("edge-gateway", "service")[0]
        asked = {
            "X-DataVisa-Gateway-Token": token, "X-Auth-Request-User": "alice",
            "X-Client-Country": "DE", "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/reports",
            "X-Forwarded-Host": "analytics.localhost",
        }  # fmt: skip
        assert api.anonymous().get("/v1/authz/forward", headers=asked).status_code == 200
        origin = _last_access(api)["origin"]
    live.close()
    assert origin == {
        "source": "attested", "channel": "gateway", "attested": "DE",
        "attested_by": "edge-gateway", "derived": "unknown", "address": "203.0.113.0/24",
        "via": "proxy 127.0.0.1",
    }  # fmt: skip
