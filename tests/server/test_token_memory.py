"""The access check's fast lane remembers verified tokens briefly (tokens.verify_recent):
a revoke through the engine is refused at once, one by another process soon after, and
every other route asks the store each time."""

from __future__ import annotations

from pathlib import Path

from live_server import RESOURCE, wait_for

from datavisa.engine.api import tokens as tokens_module
from datavisa.engine.api.tokens import SERVICE, TokenStore

CHECK = {"subject": "alice", "resource": RESOURCE, "action": "read", "location": "DE"}


def test_a_token_revoked_through_the_engine_is_refused_on_the_check_at_once(api):
    pep = api.as_("pep", role=SERVICE)
    for _ in range(3):  # verified, then remembered
        assert pep.post("/v1/access/check", CHECK).status_code == 200
    token_id = api.service.tokens.verify(pep.token).token_id
    api.service.tokens.revoke(token_id)
    refused = pep.post("/v1/access/check", CHECK)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthenticated"
    assert pep.post("/v1/access/check", CHECK).status_code == 401


def test_a_token_revoked_by_another_process_is_refused_everywhere(api, db: Path):
    pep = api.as_("pep", role=SERVICE)
    assert pep.post("/v1/access/check", CHECK).status_code == 200
    assert pep.get("/v1/whoami").status_code == 200
    other = TokenStore(db)  # what `datavisa token revoke --db` opens: not the engine's
    try:
        other.revoke(other.verify(pep.token).token_id)
    finally:
        other.close()
    assert pep.get("/v1/whoami").status_code == 401  # the other routes: at once
    wait_for(
        lambda: pep.post("/v1/access/check", CHECK).status_code == 401,
        "the fast lane to refuse a token revoked elsewhere",
        timeout_s=20 * tokens_module.VERIFIED_FOR_S,
    )


def test_only_live_tokens_are_remembered_and_at_most_recent_max(db: Path, monkeypatch):
    monkeypatch.setattr(tokens_module, "RECENT_MAX", 3)
    store = TokenStore(db)
    try:
        issued = [store.issue(f"svc-{i}", SERVICE) for i in range(5)]
        for token, record in issued:
            assert store.verify_recent(token).subject == record.subject
        assert store.verify_recent("dvt_000000000000_" + "x" * 43) is None
        assert len(store._recent) == 3  # the three verified last
        token, record = issued[-1]
        store.revoke(record.id)
        assert store.verify_recent(token) is None
        assert store.verify_recent(issued[-2][0]).subject == issued[-2][1].subject
    finally:
        store.close()
