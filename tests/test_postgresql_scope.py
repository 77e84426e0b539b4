"""A grant's PostgreSQL role reaches only the database it was approved for (issue 33,
item 4): what PUBLIC holds elsewhere (CONNECT on every database, by default; a target's
tables granted to PUBLIC) is reported by the connector and `datavisa doctor`, and a
connection set to `public_connect: refuse` provisions nothing while it holds. On the
session's real cluster; what a test revokes from PUBLIC it gives back."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import yaml
from click.testing import CliRunner

from datavisa.cli.local_postgres import LocalPostgres
from datavisa.cli.main import cli
from datavisa.engine.connectors.postgresql import (
    FAILED,
    REFUSE,
    Connection,
    PostgresSink,
    role_name,
)
from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.lifecycle.provisioned import refusals, standing
from datavisa.engine.model.errors import ActivationFailed
from datavisa.engine.monitoring.monitor import Monitor
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store.sqlite import Store

RESOURCE = "eu-customer-analytics"


def _engine(store: Store, opa: OpaProcess, connection: Connection) -> Engine:
    log = DecisionLog(store, b"test-key")
    engine = Engine(store, opa.client(), revision="test", log=log)
    engine.grants.sinks.append(PostgresSink({"analytics": connection}, store, engine.opa, log))
    engine.grants.sync()
    return engine


@pytest.fixture
def shared_table(analytics: str) -> Iterator[str]:
    """A table of the target granted to PUBLIC (a common shortcut), for this test."""
    with psycopg.connect(analytics, autocommit=True) as db:
        db.execute("CREATE TABLE IF NOT EXISTS everyones (x int)")
        db.execute("GRANT SELECT ON everyones TO PUBLIC")
    yield "public.everyones"
    with psycopg.connect(analytics, autocommit=True) as db:
        db.execute("DROP TABLE everyones")


@contextlib.contextmanager
def _confined(postgres: LocalPostgres, target: str) -> Iterator[list[str]]:
    """PUBLIC's CONNECT revoked on every database but `target` (as the operator would,
    docs/postgresql.md), and given back after: the databases it was revoked on."""
    with psycopg.connect(postgres.dsn(), autocommit=True) as db:
        others = [d for (d,) in db.execute(
            "SELECT datname FROM pg_database WHERE datallowconn AND datname <> %s "
            "AND has_database_privilege('public', oid, 'CONNECT')", [target],
        ).fetchall()]  # fmt: skip
        for name in others:
            db.execute(f'REVOKE CONNECT ON DATABASE "{name}" FROM PUBLIC')
    try:
        yield others
    finally:
        with psycopg.connect(postgres.dsn(), autocommit=True) as db:
            for name in others:
                db.execute(f'GRANT CONNECT ON DATABASE "{name}" TO PUBLIC')


def test_what_public_reaches_is_reported_by_the_connector_and_the_doctor(
    tmp_path: Path, opa: OpaProcess, postgres: LocalPostgres, analytics: str, shared_table: str
):
    store = Store(tmp_path / "datavisa.db")
    engine = _engine(store, opa, Connection("analytics", postgres.dsn()))
    [sink] = engine.grants.sinks[-1:]
    found = sink.reach()
    assert "connection analytics: PUBLIC holds CONNECT on database postgres: a grant's role " \
        "reaches it" in found  # fmt: skip
    assert "connection analytics: PUBLIC holds CONNECT on database analytics (a target)" in found
    assert f"connection analytics: table {shared_table} in analytics is granted to PUBLIC: " \
        "any role reads it" in found  # fmt: skip
    store.close()

    (tmp_path / "analytics.dsn").write_text(postgres.dsn() + "\n")
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({
        "database": str(tmp_path / "doctor.db"),
        "connections": {"analytics": {"kind": "postgresql", "dsn_file": "analytics.dsn"}},
    }))  # fmt: skip
    done = CliRunner().invoke(cli, ["doctor", "--config", str(config), "--json"])
    assert done.exit_code == 1, done.output
    parts = {f["part"]: f for f in json.loads(done.stdout)}
    elsewhere = parts["connection analytics: database postgres"]
    assert not elsewhere["ok"]
    assert "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC" in elsewhere["detail"]
    assert parts["connection analytics: database analytics"]["ok"]  # the target's own
    table = parts[f"connection analytics: table {shared_table} in analytics"]
    assert not table["ok"] and f"REVOKE ALL ON {shared_table} FROM PUBLIC" in table["detail"]
    assert postgres.password not in done.output


def test_refuse_provisions_nothing_while_public_may_connect_elsewhere(
    db: Path, opa: OpaProcess, postgres: LocalPostgres, analytics: str
):
    store = Store(db)
    connection = replace(Connection("analytics", postgres.dsn()), public_connect=REFUSE)
    engine = _engine(store, opa, connection)
    req = engine.request("alice", RESOURCE, ["read"], 600, "DE", "INC-33: scope")
    with pytest.raises(ActivationFailed) as refused:
        engine.approve(req.id, "bob", "DE")
    why = str(refused.value)
    assert "public_connect: refuse" in why and "PUBLIC holds CONNECT on" in why
    assert "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC" in why
    with psycopg.connect(postgres.dsn(), autocommit=True) as pg:  # nothing half-made
        assert not pg.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", [role_name(req.id)]
        ).fetchone()
    assert engine.get(req.id).state == "revoked"
    [where] = standing(engine, req.id)
    assert where["state"] == FAILED and "public_connect: refuse" in where["detail"]
    [alert] = Monitor(engine.log, engine.opa).check_history({"public_connect": refusals(engine)})
    assert alert.rule == "public_connect" and "postgres" in alert.message
    assert alert.evidence == [req.id]

    with _confined(postgres, "analytics") as revoked:
        assert "postgres" in revoked
        assert (
            engine.grants.sinks[-1]
            .reach()[0]
            .startswith(
                "connection analytics: PUBLIC holds CONNECT on database analytics (a target)"
            )
        )
        req = engine.request("alice", RESOURCE, ["read"], 600, "DE", "INC-33: scope fixed")
        assert engine.approve(req.id, "bob", "DE").state == "active"  # provisions again
        engine.revoke(req.id, "bob")
    store.close()
