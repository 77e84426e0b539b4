"""Approvers racing each other: the grant activates exactly once, every approval is kept."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.model.errors import DataVisaError
from datavisa.engine.policy.opa import OpaClient
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store import open_store

RESTRICTED = "eu-payments-ledger"
APPROVERS = (("dave", "IE"), ("erin", "DE"))
SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"], indirect=True)

pytestmark = pytest.mark.stores  # each test on SQLite and on PostgreSQL


def _activations(engine: Engine, request_id: str) -> int:
    return sum(e["event"] == "activated" for e in engine.trail(request_id))


def _restricted_request(engine: Engine) -> str:
    return engine.request("alice", RESTRICTED, ["read"], 600, "DE", "INC-7").id


def test_threads_approving_at_once_activate_once(engine):
    for _ in range(5):
        rid = _restricted_request(engine)
        barrier = threading.Barrier(len(APPROVERS))
        errors: list[Exception] = []

        def approve(approver, location, rid=rid, barrier=barrier, errors=errors) -> None:
            barrier.wait()
            try:
                engine.approve(rid, approver, location)
            except DataVisaError as e:
                errors.append(e)

        threads = [threading.Thread(target=approve, args=a) for a in APPROVERS]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert engine.get(rid).state == "active"
        assert sorted(a.approver for a in engine.approvals(rid)) == ["dave", "erin"]
        assert _activations(engine, rid) == 1
        engine.relinquish(rid, "alice")


def test_the_same_approver_twice_at_once_counts_once(engine):
    rid = engine.request("alice", "eu-customer-analytics", ["read"], 600, "DE", "x").id
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def approve() -> None:
        barrier.wait()
        try:
            outcomes.append(engine.approve(rid, "bob", "DE").state)
        except DataVisaError as e:
            outcomes.append(type(e).__name__)

    threads = [threading.Thread(target=approve) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The second is refused: a Conflict when both read the request pending, policy's denial
    # (no longer pending) when a busy machine let the first commit before the second read.
    assert sorted(outcomes) in (["Conflict", "active"], ["Denied", "active"])
    assert len(engine.approvals(rid)) == 1
    assert _activations(engine, rid) == 1


def _approve_in_process(db: str, opa: tuple[str, str], rid: str, approver: str, location, barrier):
    store = open_store(db)
    url, token = opa
    engine = Engine(store, OpaClient(url, token=token), revision="test")
    barrier.wait()
    engine.approve(rid, approver, location)
    store.close()


def test_processes_approving_at_once_activate_once(engine, db: Path, opa: OpaProcess):
    ctx = multiprocessing.get_context("fork")
    for _ in range(3):
        rid = _restricted_request(engine)
        barrier = ctx.Barrier(len(APPROVERS))
        procs = [
            ctx.Process(
                target=_approve_in_process,
                args=(str(db), (opa.url, opa.token), rid, a, loc, barrier),
            )
            for a, loc in APPROVERS
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        assert [p.exitcode for p in procs] == [0, 0]
        assert engine.get(rid).state == "active"
        assert len(engine.approvals(rid)) == 2
        assert _activations(engine, rid) == 1
        engine.relinquish(rid, "alice")


@SQLITE_ONLY  # SQLite's PRAGMA synchronous
def test_state_changes_commit_durably_and_decision_records_without_an_fsync_each(engine):
    """On every thread's connection: FULL (the WAL synced at commit) for a durable
    transaction, NORMAL for one that only has to survive a kill."""

    def modes() -> list[int]:
        seen = []
        for durable in (True, False, True):
            with engine.store.transaction(durable=durable) as db:
                seen.append(db.execute("PRAGMA synchronous").fetchone()[0])
        return seen

    in_thread: list[list[int]] = []
    thread = threading.Thread(target=lambda: in_thread.append(modes()))
    thread.start()
    thread.join()
    assert [modes(), *in_thread] == [[2, 1, 2], [2, 1, 2]]  # FULL, NORMAL, FULL
    assert engine.store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_connections_of_threads_that_ended_are_closed(db):
    """A server's worker threads come and go; each used the store with a connection of
    its own, which must not outlive it (each holds a page cache: memory that only grew)."""
    store = open_store(db)
    try:

        def use() -> None:
            store.db.execute("SELECT count(*) FROM requests").fetchone()

        for _ in range(20):
            thread = threading.Thread(target=use)
            thread.start()
            thread.join()
        assert store.connections() <= 2  # this thread's, and the last one's until the next
        store.db.execute("SELECT 1").fetchone()  # this thread's still works
    finally:
        store.close()
