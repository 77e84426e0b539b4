"""Break-glass with its mandatory review, and extension as a new decision."""

from __future__ import annotations

import time

import pytest

from datavisa.engine.model.errors import Conflict, Denied

pytestmark = pytest.mark.stores  # each test on SQLite and on PostgreSQL

CONFIDENTIAL = "eu-customer-analytics"
DAY = 86400


def glass(engine, duration_s: int = 600, requester: str = "oscar"):
    return engine.break_glass(requester, CONFIDENTIAL, ["read"], duration_s, "DE", "INC-99 outage")


def test_break_glass_is_active_at_once_and_flagged(engine, clock):
    grant = glass(engine)
    assert (grant.state, grant.kind) == ("active", "breakglass")
    assert grant.review_due == pytest.approx(clock() + DAY, abs=5)
    decision = engine.check("oscar", CONFIDENTIAL, "read", "DE")
    assert decision.allow
    assert decision.result["grant_id"] == grant.id


def test_break_glass_is_capped_and_needs_an_eligible_person(engine):
    with pytest.raises(Denied, match="break-glass refused"):
        glass(engine, duration_s=3600)
    with pytest.raises(Denied):
        glass(engine, requester="alice")  # not on call
    assert engine.list_requests() == []


def test_overdue_review_shows_and_blocks_the_next_break_glass(engine, clock):
    first = glass(engine)
    assert engine.list_requests(overdue=True) == []
    clock.advance(DAY + 1)
    assert [r.id for r in engine.list_requests(overdue=True)] == [first.id]
    with pytest.raises(Denied, match="review"):
        glass(engine)
    with pytest.raises(Denied, match="own break-glass"):
        engine.review(first.id, "oscar", "accepted")
    with pytest.raises(Denied, match="not an approver"):
        engine.review(first.id, "alice", "accepted")
    reviewed = engine.review(first.id, "bob", "accepted", "INC-99 confirmed")
    assert (reviewed.review_outcome, reviewed.reviewed_by) == ("accepted", "bob")
    with pytest.raises(Conflict, match="already reviewed"):
        engine.review(first.id, "bob", "rejected")
    assert engine.list_requests(overdue=True) == []
    assert glass(engine).state == "active"


def test_only_break_glass_grants_are_reviewed(engine):
    req = engine.request("alice", CONFIDENTIAL, ["read"], 600, "DE", "x")
    with pytest.raises(Conflict, match="not a break-glass grant"):
        engine.review(req.id, "bob", "accepted")


def test_extension_waits_for_half_the_grant_then_needs_the_data_owner(engine):
    # 4 s: the steps after half of it has elapsed have 1.9 s on a loaded machine
    req = engine.request("alice", CONFIDENTIAL, ["read"], 4, "DE", "x")
    grant = engine.approve(req.id, "bob", "DE")
    with pytest.raises(Denied, match="extension refused"):
        engine.extend(grant.id, "alice", 60, "more time")
    time.sleep(max(0.0, grant.activated_at + 2.1 - time.time()))
    with pytest.raises(Denied, match="extension refused"):
        engine.extend(grant.id, "bob", 60, "not mine")
    ext = engine.extend(grant.id, "alice", 60, "migration still running")
    assert (ext.kind, ext.state, ext.parent_id) == ("extension", "pending", grant.id)
    with pytest.raises(Conflict, match="already pending"):
        engine.extend(grant.id, "alice", 60, "again")
    with pytest.raises(Denied, match="own request"):
        engine.approve(ext.id, "alice", "DE")
    engine.approve(ext.id, "bob", "DE")
    extended = engine.get(grant.id)
    assert extended.expires_at == pytest.approx(grant.expires_at + 60)
    assert extended.extended_s == 60
    assert engine.get(ext.id).state == "approved"
    time.sleep(max(0.0, grant.expires_at + 0.2 - time.time()))
    decision = engine.check("alice", CONFIDENTIAL, "read", "DE")
    assert decision.allow, decision.reasons
    events = [e["event"] for e in engine.trail(grant.id)]
    assert events[-1] == "extended"
