"""A PostgreSQL store that stops taking connections while the server runs: /health says
not ready and why, state changes answer 503 and store nothing, and both recover when the
database takes connections again. The outage is real: the database refuses connections
(ALLOW_CONNECTIONS false) and the server's are ended."""

from __future__ import annotations

import psycopg
import pytest
from live_server import RESOURCE

from datavisa.cli.local_postgres import LocalPostgres


def _outage(postgres: LocalPostgres, url: str, on: bool) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(postgres.dsn(), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if on else "true"}')
        if on:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [name],
            )


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_database_gone_is_not_ready_and_refuses_changes_then_recovers(api, db, postgres):
    health = api.anonymous()
    assert health.get("/health").status_code == 200
    body = {"resource": RESOURCE, "duration": "20m", "location": "DE", "reason": "INC-9"}
    alice = api.as_("alice")
    _outage(postgres, db, on=True)
    try:
        refused = alice.post("/v1/requests", body)
        assert refused.status_code == 503, refused.text
        answer = health.get("/health")
        assert answer.status_code == 503
        assert any("the database cannot be used" in p for p in answer.json()["problems"])
    finally:
        _outage(postgres, db, on=False)
    assert health.get("/health").status_code == 200
    made = alice.post("/v1/requests", body)
    assert made.status_code == 201, made.text
    assert [r.id for r in api.service.engine.store.requests()] == [made.json()["id"]]
