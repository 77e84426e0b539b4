"""The audit chain catches an edited, deleted or reordered event."""

from __future__ import annotations

import json

import pytest

from datavisa.engine.ledger import audit
from datavisa.engine.store import open_store

pytestmark = pytest.mark.stores  # each test on SQLite and on PostgreSQL


@pytest.fixture
def chain(run, db):
    for requester in ("alice", "oscar"):
        req = json.loads(
            run(
                "request",
                "eu-customer-analytics",
                "--for",
                "1h",
                "--from",
                "DE",
                "--reason",
                "x",
                "--as",
                requester,
                "--json",
            ).stdout
        )
        run("approve", req["id"], "--as", "bob")
    store = open_store(db)
    assert audit.verify(store.db).ok
    assert audit.verify(store.db).checked == 6
    return store


def _broken_at(run, store) -> str:
    verdict = audit.verify(store.db)
    assert not verdict.ok
    result = run("audit", "verify")
    assert result.exit_code == 1
    assert f"broken at event {verdict.first_bad_seq}" in result.stderr
    return verdict.first_bad_seq


def test_edited_event_is_caught(run, chain):
    chain.db.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    assert _broken_at(run, chain) == 2


def test_deleted_event_is_caught(run, chain):
    chain.db.execute("DELETE FROM audit WHERE seq = 3")
    assert _broken_at(run, chain) == 4


def test_reordered_events_are_caught(run, chain):
    db = chain.db
    db.execute("UPDATE audit SET seq = 100 WHERE seq = 4")
    db.execute("UPDATE audit SET seq = 4 WHERE seq = 5")
    db.execute("UPDATE audit SET seq = 5 WHERE seq = 100")
    assert _broken_at(run, chain) == 4


def test_trail_prints_every_event(run, chain):
    result = run("audit", "trail")
    assert result.exit_code == 0
    assert result.stdout.count("activated") == 2
