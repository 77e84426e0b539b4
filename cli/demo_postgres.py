"""`datavisa demo --postgres`: the database story, on a throwaway PostgreSQL cluster.

A grant becomes a real login role with exactly the privileges policy gives; the holder
gets credentials once, from where the grant allows; PostgreSQL itself refuses what the
grant does not cover and logs every statement; a revoke terminates the open session.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import psycopg

from datavisa.engine.connectors.activity import StatementTail
from datavisa.engine.connectors.postgresql import Connection, PostgresSink, role_name
from datavisa.engine.ledger import audit
from datavisa.engine.lifecycle.local import local_engine
from datavisa.engine.lifecycle.provisioned import credentials, standing
from datavisa.engine.model.errors import Denied
from datavisa.engine.monitoring.monitor import Monitor

from . import output
from .local_postgres import LocalPostgres, PostgresUnavailable
from .story import ABROAD, APPROVER, HOME, REQUESTER, RESOURCE, Story


def postgres_demo() -> None:
    try:
        cluster = LocalPostgres().start()
    except PostgresUnavailable as e:
        raise click.ClickException(f"the PostgreSQL demo needs PostgreSQL: {e}") from e
    try:
        analytics = cluster.create_database("analytics")
        with psycopg.connect(analytics, autocommit=True) as db:
            db.execute("CREATE TABLE customers (id int PRIMARY KEY, email text, country text)")
            db.execute("CREATE TABLE orders (id int PRIMARY KEY, customer int, total numeric)")
            db.execute(
                "INSERT INTO customers VALUES (1, 'ada@example.com', 'DE'), "
                "(2, 'bo@example.com', 'FR'), (3, 'cy@example.com', 'IT')"
            )
        with tempfile.TemporaryDirectory(prefix="datavisa-demo-") as tmp:
            db_path = Path(tmp) / "datavisa.db"
            with local_engine(db_path) as engine:
                connection = Connection("analytics", cluster.dsn(), log_dir=cluster.log_dir)
                engine.grants.sinks.append(
                    PostgresSink({"analytics": connection}, engine.store, engine.opa,
                                 engine.log, engine.revision)
                )  # fmt: skip
                click.echo(
                    f"DataVisa database demo: PostgreSQL on 127.0.0.1:{cluster.port} "
                    f"(throwaway), store {db_path}, OPA on {engine.opa.url}"
                )
                tail = StatementTail({"analytics": connection}, engine.store, engine.opa,
                                     engine.clock)  # fmt: skip
                _story(engine, tail, Monitor(engine.log, engine.opa))
    finally:
        cluster.stop()


def _story(engine, tail: StatementTail, monitor: Monitor) -> None:
    story = Story()
    story.say(
        f"{REQUESTER}, in {HOME}, asks for 10 minutes of read access to {RESOURCE}, "
        "which the bundle says lives in PostgreSQL (target: analytics / public.customers, orders)"
    )
    req = engine.request(REQUESTER, RESOURCE, ["read"], 600, HOME, "INC-4711: export fails")
    story.result(f"request {req.id} is {req.state}: nothing exists in the database yet")

    story.say(f"{APPROVER} approves: the grant takes effect in PostgreSQL through the outbox")
    req = engine.approve(req.id, APPROVER, HOME)
    [where] = standing(engine, req.id)
    story.result(
        f"grant {req.id} is {req.state}; {where['sink']}: {where['state']}: {where['detail']}\n"
        f"VALID UNTIL {output.when(req.expires_at)} (a second clock, held by PostgreSQL), "
        "every statement logged (log_statement = all)"
    )

    story.say(f"{REQUESTER} asks for the credentials from {ABROAD}")
    try:
        credentials(engine, req.id, REQUESTER, ABROAD)
    except Denied as e:
        story.result(click.style("refused", fg="red", bold=True) + f": {e.decision.explain()}")

    story.say(f"... and from {HOME}: issued once, stored nowhere")
    issued = credentials(engine, req.id, REQUESTER, HOME)
    shown = issued["url"].replace(issued["env"]["PGPASSWORD"], "•" * 8)
    story.result(f"{shown}\n(PGUSER={issued['env']['PGUSER']}, PGPASSWORD shown to her only)")

    story.say(f"{REQUESTER} connects and works")
    session = psycopg.connect(issued["url"], autocommit=True)
    count = session.execute("SELECT count(*) FROM customers WHERE country = 'DE'").fetchone()[0]
    story.result(f"SELECT count(*) FROM customers WHERE country = 'DE' → {count}")
    try:
        session.execute("UPDATE customers SET email = 'x@example.com' WHERE id = 1")
    except psycopg.errors.InsufficientPrivilege as e:
        story.result("UPDATE customers ... → PostgreSQL refuses: " + str(e).strip())
    with session.cursor().copy("COPY customers TO STDOUT") as copy:
        rows = sum(1 for _ in copy.rows())
    story.result(f"COPY customers TO STDOUT → {rows} rows (a bulk export)")

    story.say("what she ran, as PostgreSQL logged it, masked, recorded against the grant")
    deadline = time.monotonic() + 10
    while len(engine.store.activity(req.id)) < 3 and time.monotonic() < deadline:
        if not tail.poll():
            time.sleep(0.1)
    activity = engine.store.activity(req.id)
    story.result("\n".join(f"{a['database']}> {a['statement']}" for a in activity))
    alerts = monitor.check_history({"statements": [
        {"grant_id": req.id, "subject": REQUESTER, "statement": a["statement"]} for a in activity
    ]})  # fmt: skip
    for alert in alerts:
        story.result(click.style(f"alert [{alert.severity}]", fg="yellow") + f" {alert.message}")

    story.say(f"{APPROVER} revokes while {REQUESTER}'s session is still open")
    started = time.perf_counter()
    engine.revoke(req.id, APPROVER, "INC-4711 closed")
    took = (time.perf_counter() - started) * 1000
    [where] = standing(engine, req.id)
    story.result(f"revoked in {took:.0f} ms; {where['sink']}: {where['state']}: {where['detail']}")
    try:
        session.execute("SELECT 1")
        story.result("her next statement ran: the removal is broken")
    except psycopg.OperationalError as e:
        story.result(
            "her next statement → " + click.style(str(e).strip().splitlines()[0], bold=True)
        )
    finally:
        session.close()
    try:
        psycopg.connect(issued["url"]).close()
    except psycopg.OperationalError:
        story.result(f"logging in again as {role_name(req.id)} → refused: the role is gone")

    story.say("the audit trail of the grant")
    story.result(output.audit_table(audit.trail(engine.store.db, req.id)))
