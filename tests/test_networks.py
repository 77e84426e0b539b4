"""engine/location on its own: the client address behind trusted proxies, the country an
address is in, and which source a decision's location has."""

from __future__ import annotations

import ipaddress

import pytest

from datavisa.engine.location.networks import NO_DATABASE, BadAddress, Networks, parse
from datavisa.engine.location.origin import LOCAL, Origin

PROXIES = tuple(ipaddress.ip_network(n) for n in ("10.0.0.5/32", "10.0.0.6/32"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("192.0.2.1", ["198.51.100.7"], ("192.0.2.1", "peer")),  # no trusted proxy: not read
        ("10.0.0.5", [], ("10.0.0.5", "peer")),
        ("10.0.0.5", ["198.51.100.7"], ("198.51.100.7", "proxy 10.0.0.5")),
        ("10.0.0.5", ["203.0.113.1, 198.51.100.7"], ("198.51.100.7", "proxy 10.0.0.5")),
        ("10.0.0.5", ["203.0.113.1", "10.0.0.6"], ("203.0.113.1", "proxy 10.0.0.6, 10.0.0.5")),
        ("10.0.0.5", ["[2001:db8::1]:443"], ("2001:db8::1", "proxy 10.0.0.5")),
        ("10.0.0.5", ["198.51.100.7:5678"], ("198.51.100.7", "proxy 10.0.0.5")),
        ("::ffff:10.0.0.5", ["::ffff:198.51.100.7"], ("198.51.100.7", "proxy 10.0.0.5")),
    ],
)
def test_the_client_is_named_only_by_trusted_proxies(peer, forwarded, client):
    assert Networks(proxies=PROXIES).client(peer, forwarded) == client


def test_a_trusted_proxy_naming_no_address_is_bad_input():
    with pytest.raises(BadAddress, match="is no address") as e:
        Networks(proxies=PROXIES).client("10.0.0.5", ["evil, "])
    assert e.value.field == "X-Forwarded-For"
    assert parse("unknown") is None


def test_networks_come_first_then_the_database_else_unknown():
    networks = Networks(((ipaddress.ip_network("8.8.8.0/24"), "DE"),))
    assert networks.country("8.8.8.8") == "DE"  # the deployment knows better
    assert networks.country("8.8.4.4") == "US"  # the registry's country (iptocc)
    assert networks.country("10.1.2.3") == "unknown"  # private: no registry places it
    assert Networks(database=NO_DATABASE).country("8.8.4.4") == "unknown"
    assert networks.country(None) is None


@pytest.mark.parametrize(
    ("origin", "source", "country"),
    [
        (Origin(LOCAL, declared="DE"), "declared", "DE"),
        (Origin("api", declared="DE", derived="DE"), "derived", "DE"),
        (Origin("api", declared="DE", derived="US"), "derived", "US"),
        (Origin("api", declared="DE", derived="unknown"), "declared", "DE"),
        (Origin("api", derived="unknown"), "derived", "unknown"),
        (Origin("gateway", attested="FR", derived="DE"), "attested", "FR"),
        (Origin.local("unknown"), "declared", "unknown"),
    ],
)
def test_the_country_judged_is_the_most_vouched_for_one(origin, source, country):
    assert (origin.source, origin.country) == (source, country)
    assert origin.facts()["source"] == source
