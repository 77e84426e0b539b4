"""The schema and its migrations on both stores: a fresh database, an upgrade from the
version before, a database newer than this release, an unreachable PostgreSQL, and moving
an SQLite deployment onto PostgreSQL with `datavisa db migrate --to`; leases and the
sink cursors of engines sharing a store."""

from __future__ import annotations

import json
import threading
import time

import pytest
from click.testing import CliRunner

from datavisa.cli.main import cli
from datavisa.engine.ledger import audit
from datavisa.engine.ledger.decision_log import KEY_ENV, DecisionLog, load_key
from datavisa.engine.lifecycle.grants import RETIRED_AFTER_S
from datavisa.engine.model.errors import StorageUnavailable
from datavisa.engine.policy.process import free_port
from datavisa.engine.store import open_store, schema


def _versions(store) -> list[int]:
    rows = store.db.execute("SELECT version FROM schema_migrations ORDER BY version")
    return [r[0] for r in rows.fetchall()]


@pytest.mark.stores  # on SQLite and on PostgreSQL
def test_a_fresh_database_gets_every_migration(db):
    store = open_store(db)
    assert _versions(store) == [v for v, _, _ in schema.MIGRATIONS]
    assert store.schema_version() == schema.VERSION
    assert {"requests", "audit", "decision_log", "outbox", "leases"} <= set(store.db.table_names())
    store.close()


@pytest.mark.stores  # on SQLite and on PostgreSQL
def test_a_database_at_the_first_version_is_upgraded_with_its_records(db):
    store = open_store(db)
    # Version 1: without what migrations 2 and 3 made, and not recorded.
    store.db.execute('DROP TABLE "leases"')
    store.db.execute('ALTER TABLE "cursors" DROP COLUMN "at"')
    store.db.execute("DELETE FROM schema_migrations WHERE version > 1")
    assert store.schema_version() == 1
    with store.transaction() as tx:
        audit.append(tx, at=1.0, actor="alice", event="requested", request_id="r1", detail={})
        tx.execute("INSERT INTO cursors (name, seq) VALUES ('sink:opa', 7)")
    store.close()
    upgraded = open_store(db)
    assert upgraded.schema_version() == schema.VERSION
    assert _versions(upgraded) == [v for v, _, _ in schema.MIGRATIONS]
    assert upgraded.hold_lease("sweeper", "me", 10.0)
    assert audit.verify(upgraded.db).checked == 1
    assert upgraded.sink_cursors(since=1e12) == {"sink:opa": 7}  # no time yet: current
    upgraded.close()
    again = open_store(db)  # opening an up-to-date database changes nothing
    assert _versions(again) == [v for v, _, _ in schema.MIGRATIONS]
    again.close()


@pytest.mark.stores  # on SQLite and on PostgreSQL
def test_an_upgrade_waits_until_no_engine_of_the_older_release_runs(db):
    """An engine of the older release still holds its lease: nothing upgrades the schema
    under it, and the refusal says what to do; once its lease ran out (it was killed; a
    stopped one gives it back at once), the next open upgrades."""
    store = open_store(db)
    assert store.hold_lease("engine:old-1", "old-1", 2.0)  # the older release's engine
    # ... on the database as the release before this one left it (every step may rerun)
    store.db.execute("DELETE FROM schema_migrations WHERE version = ?", [schema.VERSION])
    store.close()
    with pytest.raises(StorageUnavailable) as refused:
        open_store(db)
    message = str(refused.value)
    assert f"schema version {schema.MIGRATIONS[-2][0]}, older than {schema.VERSION}" in message
    assert "(old-1, until" in message and "datavisa db migrate --db" in message

    def upgraded():
        try:
            return open_store(db)
        except StorageUnavailable:
            return None

    deadline = time.monotonic() + 30
    while (store := upgraded()) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store is not None, "the lease ran out, yet the schema was not upgraded"
    assert store.schema_version() == schema.VERSION
    store.close()


@pytest.mark.stores  # on SQLite and on PostgreSQL
def test_a_database_newer_than_this_release_is_refused(db):
    store = open_store(db)
    store.db.execute(
        "INSERT INTO schema_migrations (version, applied_at, what) VALUES (?, 0, 'future')",
        [schema.VERSION + 1],
    )
    store.close()
    with pytest.raises(StorageUnavailable, match=f"schema version {schema.VERSION + 1}, newer"):
        open_store(db)


@pytest.mark.stores  # on SQLite and on PostgreSQL
def test_a_lease_is_one_holders_until_it_runs_out(db):
    store = open_store(db)
    assert store.hold_lease("sweeper", "a", 10.0, now=100.0)
    assert not store.hold_lease("sweeper", "b", 10.0, now=105.0)
    assert store.hold_lease("sweeper", "a", 10.0, now=108.0)  # renewed to 118
    assert not store.hold_lease("sweeper", "b", 10.0, now=117.0)
    assert store.hold_lease("sweeper", "b", 10.0, now=119.0)  # a stopped renewing it
    store.release_lease("sweeper", "b")
    assert store.hold_lease("sweeper", "a", 10.0, now=120.0)
    store.close()


def test_an_unreachable_postgresql_is_a_clear_error_at_start(tmp_path):
    url = f"postgresql://datavisa@127.0.0.1:{free_port()}/datavisa"
    with pytest.raises(StorageUnavailable, match="cannot reach the database"):
        open_store(url)
    done = CliRunner().invoke(cli, ["serve", "--db", url, "--listen", "127.0.0.1:0"])
    assert done.exit_code == 1
    assert "cannot reach the database postgresql://datavisa@127.0.0.1" in done.output


def test_an_sqlite_deployment_moves_onto_postgresql(run, db, pg_database, monkeypatch):
    sqlite_db = db
    made = run("request", "eu-customer-analytics", "--for", "1h", "--from", "DE",
               "--reason", "x", "--as", "alice", "--json")  # fmt: skip
    rid = json.loads(made.stdout)["id"]
    run("approve", rid, "--as", "bob")
    monkeypatch.delenv(KEY_ENV, raising=False)
    done = CliRunner().invoke(cli, ["db", "migrate", "--db", str(sqlite_db), "--to", pg_database])
    assert done.exit_code == 0, done.output
    assert "copied" in done.output and f"{sqlite_db}.logkey" in done.output

    old, new = open_store(sqlite_db), open_store(pg_database)
    assert [r.to_row() for r in new.requests()] == [r.to_row() for r in old.requests()]
    assert audit.verify(new.db).checked == audit.verify(old.db).checked == 3
    monkeypatch.setenv(KEY_ENV, load_key(sqlite_db).decode())
    assert DecisionLog(new, load_key(pg_database)).verify().ok
    # New rows are numbered after the copied ones.
    with new.transaction():
        seq = new.add_grant_change(1.0, "alice", rid, "remove")
    assert seq > old.grant_changes_head()
    again = CliRunner().invoke(cli, ["db", "migrate", "--db", str(sqlite_db), "--to", pg_database])
    assert again.exit_code == 1 and "already holds records" in again.output
    old.close()
    new.close()


@pytest.mark.stores  # on SQLite and on PostgreSQL
def test_a_retired_engines_cursor_no_longer_holds_the_outbox(engine):
    """Another engine's sink cursor holds the outbox back while that engine confirms it;
    one nobody confirmed for RETIRED_AFTER_S (an engine gone for good) does not."""
    store, now = engine.store, time.time()
    with store.transaction():
        store.set_cursor("sink:opa@other:8470", 0, now)
    for _ in range(2):
        rid = engine.request("alice", "eu-customer-analytics", ["read"], 600, "DE", "x").id
        engine.approve(rid, "bob", "DE")
        engine.relinquish(rid, "alice")
    assert engine.grants.apply() == []
    head = store.grant_changes_head()
    assert store.cursor("sink:opa") == head
    assert engine.grants.prune() == 0  # the other engine has applied nothing yet
    with store.transaction():  # ... and then never confirmed it again
        store.set_cursor("sink:opa@other:8470", 0, now - RETIRED_AFTER_S - 1)
    assert engine.grants.prune() == head - 1  # all but the newest row, as ever
    assert [c.seq for c in store.grant_changes(0)] == [head]


def test_engines_starting_together_on_an_older_postgresql_upgrade_it_once(pg_database):
    """The schema's upgrade is one at a time (under the store's write lock): every engine
    starting at once opens the store, and each migration is recorded once."""
    store = open_store(pg_database)
    store.db.execute("DELETE FROM schema_migrations WHERE version > 1")  # all but one to do
    store.close()
    together, opened, failed = threading.Barrier(4), [], []

    def start() -> None:
        together.wait()
        try:
            opened.append(open_store(pg_database))
        except Exception as e:  # the test reports what any start raised
            failed.append(repr(e))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failed == []
    assert _versions(opened[0]) == [v for v, _, _ in schema.MIGRATIONS]  # once each
    for store in opened:
        store.close()
