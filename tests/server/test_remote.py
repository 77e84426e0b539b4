"""RemoteEngine: the engine's verbs over HTTP, same records, same error classes."""

from __future__ import annotations

import pytest
from live_server import RESOURCE

from datavisa.cli import output
from datavisa.engine.api.remote import connect
from datavisa.engine.model.errors import Conflict, DataVisaError, Denied, NotFound
from datavisa.engine.model.records import Request
from datavisa.engine.policy.process import free_port


@pytest.fixture
def remote(api):
    def as_(subject: str, role: str = "user"):
        token, _ = api.service.tokens.issue(subject, role)
        return connect(api.url, token)

    return as_


def test_requests_round_trip_as_the_engine_made_them(api, remote):
    alice, bob = remote("alice"), remote("bob")
    req = alice.request("alice", RESOURCE, ["read"], 1200, "DE", "INC-1")
    assert isinstance(req, Request)
    local = api.service.engine.get(req.id)
    assert req.id == local.id and req.state == "pending"
    assert req.created_at == int(local.created_at)  # RFC 3339 on the wire: to the second
    assert req.approvals_required == local.approvals_required

    grant = bob.approve(req.id, "bob", "DE")
    assert grant.state == "active"
    assert alice.get(req.id).expires_at == grant.expires_at
    assert [r.id for r in alice.list_requests(state="active")] == [req.id]
    assert [a.approver for a in alice.approvals(req.id)] == ["bob"]
    events = alice.trail(req.id)
    assert [e["event"] for e in events] == ["requested", "approved", "activated"]
    assert [e["hash"] for e in events] == [e["hash"] for e in api.service.engine.trail(req.id)]
    assert output.request_dict(alice.get(req.id)) == output.request_dict(
        api.service.engine.get(req.id)
    )


def test_check_gives_the_same_decision_as_the_local_engine(api, remote):
    alice = remote("alice")
    api.grant("alice")
    theirs = alice.check("alice", RESOURCE, "read", "DE")
    ours = api.service.engine.check("alice", RESOURCE, "read", "DE")
    assert theirs.allow and ours.allow
    assert theirs.reasons == ours.reasons
    strip = ("decision_id",)
    assert {k: v for k, v in theirs.to_dict().items() if k not in strip} == {
        k: v for k, v in ours.to_dict().items() if k not in strip
    }
    # Declaring US over HTTP from where the network places her (DE, the test server's
    # loopback) is a mismatch; the local engine has no network to ask.
    away = alice.check("alice", RESOURCE, "read", "US")
    assert [r["code"] for r in away.reasons] == ["location_mismatch"]
    here = api.service.engine.check("alice", RESOURCE, "read", "US")
    assert [r["code"] for r in here.reasons] == ["location_not_permitted"]


def test_errors_come_back_as_the_engines_classes(api, remote):
    alice, bob = remote("alice"), remote("bob")
    with pytest.raises(NotFound, match="no request with id 'nope'"):
        alice.get("nope")
    req = alice.request("alice", RESOURCE, ["read"], 1200, "DE", "INC-1")
    with pytest.raises(Denied) as refused:
        alice.approve(req.id, "alice")
    assert "self_approval" in refused.value.decision.codes
    assert str(refused.value).startswith("approval refused: ")
    bob.deny(req.id, "bob", "no")
    with pytest.raises(Conflict):
        bob.approve(req.id, "bob")
    with pytest.raises(DataVisaError, match="cannot act as bob"):
        alice.cancel(req.id, "bob")


def test_connect_explains_a_missing_or_bad_token_and_an_unreachable_server(api):
    with pytest.raises(DataVisaError, match="no token"):
        connect(api.url, None)
    with pytest.raises(DataVisaError, match="refused the token"):
        connect(api.url, "dvt_nope")
    with pytest.raises(DataVisaError, match="cannot reach"):
        connect(f"http://127.0.0.1:{free_port()}", "dvt_nope")
