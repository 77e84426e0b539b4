"""Bad input gets a clear message and a non-zero exit, and stores nothing."""

from __future__ import annotations

import json

import pytest

from datavisa.engine.ledger import audit
from datavisa.engine.policy.process import free_port
from datavisa.engine.store.sqlite import Store


def _nothing_stored(db) -> bool:
    store = Store(db)
    return store.requests() == [] and audit.trail(store.db) == []


def test_unknown_resource(run, db):
    result = run(
        "request", "no-such-data", "--for", "1h", "--from", "DE", "--reason", "x", "--as", "alice"
    )
    assert result.exit_code == 1
    assert 'no resource named "no-such-data"' in result.stderr
    assert _nothing_stored(db)


# \u0661 (ARABIC-INDIC DIGIT ONE), \uff12 (FULLWIDTH DIGIT TWO): digits to \\d, no durations.
@pytest.mark.parametrize(
    "duration", ["ten minutes", "1h1h", "", "-5m", "15", "\u0661h", "1h\u0663\u0660m", "\uff12m"]
)
def test_malformed_duration(run, db, duration):
    result = run(
        "request",
        "eu-customer-analytics",
        "--for",
        duration,
        "--from",
        "DE",
        "--reason",
        "x",
        "--as",
        "alice",
    )
    assert result.exit_code == 2
    assert "invalid duration" in result.stderr
    assert "--for" in result.stderr
    assert _nothing_stored(db)


def test_missing_reason(run, db):
    result = run("request", "eu-customer-analytics", "--for", "1h", "--from", "DE", "--as", "alice")
    assert result.exit_code == 1
    assert "confidential data needs a reason for access" in result.stderr
    assert _nothing_stored(db)


def test_duration_over_the_tier_maximum(run, db):
    result = run(
        "request",
        "eu-customer-analytics",
        "--for",
        "5h",
        "--from",
        "DE",
        "--reason",
        "x",
        "--as",
        "alice",
    )
    assert result.exit_code == 1
    assert "allows at most 14400s" in result.stderr
    assert _nothing_stored(db)


# XX and ZZ have the shape of a code and name no country; ß upper-cases to SS (a country).
@pytest.mark.parametrize("country", ["Germany", "D", "12", "de-DE", "XX", "ZZ", "\u00df"])
def test_invalid_country_code(run, db, country):
    result = run("check", "alice", "eu-customer-analytics", "--from", country)
    assert result.exit_code == 2
    assert "ISO 3166 alpha-2" in result.stderr


def test_unreachable_opa_denies_checks_with_policy_unavailable(run):
    dead = f"http://127.0.0.1:{free_port()}"
    result = run("check", "alice", "eu-customer-analytics", "--from", "DE", "--json", opa=dead)
    assert result.exit_code == 1
    decision = json.loads(result.stdout)
    assert decision["allow"] is False
    assert [r["code"] for r in decision["reasons"]] == ["policy_unavailable"]


def test_unreachable_opa_refuses_requests_and_stores_nothing(run, db):
    dead = f"http://127.0.0.1:{free_port()}"
    result = run(
        "request",
        "eu-customer-analytics",
        "--for",
        "1h",
        "--from",
        "DE",
        "--reason",
        "x",
        "--as",
        "alice",
        opa=dead,
    )
    assert result.exit_code == 1
    assert "no policy decision, so deny" in result.stderr
    assert _nothing_stored(db)
