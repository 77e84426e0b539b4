"""The decision log: every decision recorded once before it is used, masked, tamper-evident."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datavisa.engine.ledger.decision_log import READ_DEPTH, DecisionLog, _readable_walked, readable
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.model.decision import Check
from datavisa.engine.model.errors import Denied
from datavisa.engine.policy.opa import OpaClient
from datavisa.engine.policy.process import free_port

pytestmark = pytest.mark.stores  # each test on SQLite and on PostgreSQL

RESOURCE = "eu-customer-analytics"


def _paths(log: DecisionLog) -> list[str]:
    return [e["path"].split("/")[1] for e in log.query(limit=1000)]


def test_every_decision_is_recorded_once_with_its_id_and_caller(engine: Engine):
    req = engine.request("alice", RESOURCE, ["read"], 600, "DE", "INC-1")
    with pytest.raises(Denied):
        engine.approve(req.id, "alice", "DE")  # refused, and recorded all the same
    engine.approve(req.id, "bob", "DE")
    decision = engine.check("alice", RESOURCE, "read", "DE", caller="db-proxy")
    engine.revoke(req.id, "bob")
    # offline: who may end the grant while OPA cannot be asked, asked as it became live
    assert _paths(engine.log) == [
        "request", "approval", "approval", "offline", "access", "lifecycle"
    ]  # fmt: skip
    (record,) = engine.log.query(path="datavisa/access/decision")
    assert record["decision_id"] == decision.decision_id
    assert record["requested_by"] == "db-proxy"
    assert record["result"]["grant_id"] == req.id
    assert record["bundles"] == {"datavisa": {"revision": "test"}}
    refused = engine.log.query(path="datavisa/approval/decision", allow=False)
    (codes,) = [{r["code"] for r in e["result"]["reasons"]} for e in refused]
    assert "self_approval" in codes


def test_checks_asked_together_are_each_answered_and_recorded_as_if_asked_alone(engine: Engine):
    req = engine.request("alice", RESOURCE, ["read"], 600, "DE", "INC-1")
    engine.approve(req.id, "bob", "DE")
    checks = [
        Check("alice", RESOURCE, "read", "DE", caller="db-proxy"),
        Check("alice", RESOURCE, "read", "US"),
        Check("bob", RESOURCE, "read", "DE", context={"query": "SELECT 1", "ticket": "T-2"}),
        Check("alice", "no-such-data", "read", "DE", caller="db-proxy"),
    ]
    together = engine.check_many(checks)
    alone = [engine.check_many([check])[0] for check in checks]
    assert [(d.allow, d.reasons, d.result) for d in together] == [
        (d.allow, d.reasons, d.result) for d in alone
    ]
    assert [d.allow for d in together] == [True, False, False, False]
    records = engine.log.query(path="datavisa/access/decision", limit=100)
    assert len({r["decision_id"] for r in records}) == 8
    first = records[:4]
    assert [r["decision_id"] for r in first] == [d.decision_id for d in together]
    assert [r["input"]["location"] for r in first] == ["DE", "US", "DE", "DE"]
    assert [r["requested_by"] for r in first] == ["db-proxy", "alice", "bob", "db-proxy"]
    assert first[2]["input"]["context"] == {"ticket": "T-2"}  # masked as when asked alone
    batch = [r["custom"]["batch"] for r in first]
    assert [b["index"] for b in batch] == [0, 1, 2, 3]
    assert len({b["decision_id"] for b in batch}) == 1  # one OPA evaluation answered them
    assert engine.log.verify().ok


def test_an_unanswered_decision_is_recorded_as_a_deny_without_its_input(engine: Engine):
    engine.opa = OpaClient(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    decision = engine.check("alice", RESOURCE, "read", "DE")
    (record,) = engine.log.query()
    assert record["decision_id"] == decision.decision_id
    assert record["result"]["reasons"][0]["code"] == "policy_unavailable"
    assert "input" not in record and record["erased"] == ["/input"]


def test_sensitive_context_is_masked_before_storage(engine: Engine):
    context = {"query": "SELECT * FROM customers WHERE name = 'Ada'", "client_ip": "10.4.5.6",
               "ticket": "INC-7"}  # fmt: skip
    engine.check("alice", RESOURCE, "read", "DE", context=context)
    (record,) = engine.log.query()
    assert record["input"]["context"] == {"client_ip": "10.4.5.0/24", "ticket": "INC-7"}
    assert record["erased"] == ["/input/context/query"]
    assert record["masked"] == ["/input/context/client_ip"]
    assert "Ada" not in " ".join(
        e for (e,) in engine.store.db.execute("SELECT event FROM decision_log").fetchall()
    )


def test_filters(engine: Engine):
    req = engine.request("alice", RESOURCE, ["read"], 600, "DE", "x")
    engine.approve(req.id, "bob", "DE")
    start = time.time()
    engine.check("alice", RESOURCE, "read", "DE")
    engine.check("alice", RESOURCE, "read", "US")
    engine.check("oscar", RESOURCE, "read", "DE")
    log = engine.log
    assert len(log.query(subject="alice", path="datavisa/access/decision")) == 2
    assert [
        e["input"]["location"] for e in log.query(allow=True, path="datavisa/access/decision")
    ] == ["DE"]
    assert len(log.query(reason="location_not_permitted")) == 1
    assert len(log.query(reason="no_active_grant", subject="oscar")) == 1
    assert len(log.query(grant_id=req.id)) == 1
    assert len(log.query(since=start)) == 3
    assert log.query(until=start - 3600) == []
    assert [e["seq"] for e in log.query(after=2, limit=2)] == [3, 4]


@pytest.fixture
def filled(engine: Engine) -> DecisionLog:
    engine.log.checkpoint_every = 4
    for _ in range(10):
        engine.check("alice", RESOURCE, "read", "DE")
    assert engine.log.verify().ok
    return engine.log


def _broken_at(log: DecisionLog) -> int:
    verdict = log.verify()
    assert not verdict.ok
    return verdict.first_bad_seq


def test_verify_counts_records_and_checkpoints(filled):
    verdict = filled.verify()
    assert (verdict.checked, verdict.checkpoints) == (10, 2)


def test_an_edited_record_is_caught(filled):
    event = json.loads(
        filled.store.db.execute("SELECT event FROM decision_log WHERE seq = 5").fetchone()[0]
    )
    event["result"]["allow"] = True
    filled.store.db.execute("UPDATE decision_log SET event = ? WHERE seq = 5", [json.dumps(event)])
    assert _broken_at(filled) == 5


def test_an_edited_index_column_is_caught(filled):
    filled.store.db.execute("UPDATE decision_log SET subject = 'mallory' WHERE seq = 3")
    assert _broken_at(filled) == 3


def test_a_deleted_record_is_caught(filled):
    filled.store.db.execute("DELETE FROM decision_log WHERE seq = 6")
    assert _broken_at(filled) == 7


def test_reordered_records_are_caught(filled):
    db = filled.store.db
    db.execute("UPDATE decision_log SET seq = 100 WHERE seq = 2")
    db.execute("UPDATE decision_log SET seq = 2 WHERE seq = 3")
    db.execute("UPDATE decision_log SET seq = 3 WHERE seq = 100")
    assert _broken_at(filled) == 2


def test_a_truncated_tail_is_caught_by_the_checkpoint(filled):
    filled.store.db.execute("DELETE FROM decision_log WHERE seq > 6")
    assert _broken_at(filled) == 8


def test_a_forged_checkpoint_is_caught(filled):
    filled.store.db.execute(
        "UPDATE log_checkpoints SET hash = 'x' || substr(hash, 2) WHERE seq = 4"
    )
    assert _broken_at(filled) == 4
    other_key = DecisionLog(filled.store, b"another key")
    assert other_key.verify().problem.startswith("checkpoint signature is wrong")


def test_pruning_leaves_a_verifiable_chain(filled):
    cutoff = json.loads(
        filled.store.db.execute("SELECT event FROM decision_log WHERE seq = 7").fetchone()[0]
    )
    before = filled.store.db.execute("SELECT at FROM decision_log WHERE seq = 7").fetchone()[0]
    assert cutoff and filled.prune(before) == 6
    verdict = filled.verify()
    assert verdict.ok and verdict.checked == 4
    filled.store.db.execute("DELETE FROM decision_log WHERE seq = 7")
    assert _broken_at(filled) == 8


def test_ingest_skips_decisions_it_has(engine: Engine):
    event = {
        "decision_id": "d-1",
        "path": "datavisa/access/decision",
        "timestamp": "2026-11-26T10:00:00Z",
        "input": {"subject": "alice", "resource": RESOURCE},
        "result": {"allow": False, "reasons": []},
    }
    assert engine.log.ingest([event, {**event, "decision_id": "d-2"}]) == (2, 0)
    assert engine.log.ingest([event]) == (0, 1)
    logged = {**event, "decision_id": "d-3", "path": "datavisa/logged/access_decision",
              "result": {"decision": {"allow": True, "reasons": []}, "mask": []}}  # fmt: skip
    engine.log.ingest([logged])
    (record,) = engine.log.query(after=2)
    assert (record["path"], record["result"]) == (
        "datavisa/access/decision",
        {"allow": True, "reasons": []},
    )
    assert engine.log.verify().ok


def test_cli_queries_verifies_exports_and_prunes(run, db):
    run("request", RESOURCE, "--for", "1h", "--from", "DE", "--reason", "x", "--as", "alice")
    run("check", "pat", RESOURCE, "--from", "US")  # partner-llc: no basis from the US
    table = run("log").stdout.splitlines()
    assert table[0].split()[:7] == [
        "SEQ",
        "TIME",
        "DECISION",
        "SUBJECT",
        "RESOURCE",
        "FROM",
        "ANSWER",
    ]
    assert len(table) == 3 and "location_not_permitted" in table[2]
    denies = [
        json.loads(line) for line in run("log", "--result", "deny", "--json").stdout.splitlines()
    ]
    assert [d["path"] for d in denies] == ["datavisa/access/decision"]
    assert run("log", "verify").stdout.startswith("decision log intact: 2 records")
    exported = [json.loads(line) for line in run("log", "export").stdout.splitlines()]
    assert [sorted(e) for e in exported] == [sorted(exported[0])] * 2
    assert {"decision_id", "path", "input", "result", "timestamp", "bundles", "labels"} <= set(
        exported[0]
    )
    assert run("log", "prune", "--before", "2000-01-01T00:00:00Z").stdout.startswith("pruned 0")
    assert run("log", "prune", "--before", "0s").stdout.startswith("pruned 2")
    assert run("log", "verify").exit_code == 0
    bad = run("log", "--since", "yesterday")
    assert bad.exit_code == 2 and "neither a time" in bad.stderr


def _line(proc, timeout: float = 30) -> str:
    """The next line the process prints, waiting at most `timeout` seconds."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no line within the time allowed"
    return proc.stdout.readline()


def test_follow_prints_decisions_as_they_arrive(engine: Engine, db):
    engine.check("alice", RESOURCE, "read", "DE")
    datavisa = Path(sys.executable).with_name("datavisa")
    follow = subprocess.Popen(
        [str(datavisa), "log", "--follow", "--json", "--db", str(db)],
        stdout=subprocess.PIPE,
        text=True,
        env={"DATAVISA_LOG_KEY": "test-key", "PATH": "/usr/bin:/bin"},
    )
    try:
        first = json.loads(_line(follow))
        later = engine.check("oscar", RESOURCE, "read", "FR")
        second = json.loads(_line(follow))
    finally:
        follow.terminate()
        follow.wait(timeout=10)
    assert first["input"]["subject"] == "alice"
    assert second["decision_id"] == later.decision_id


def _nested(levels: int) -> str:
    """A record whose input nests `levels` levels deep (the record itself one more)."""
    return '{"decision_id": "d", "input": ' + '{"in": ' * levels + "1" + "}" * (levels + 1)


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"decision_id": "d", "path": "p", "input": {"a": [1, {"b": 2}]}}),
        json.dumps({"seq": 99, "decision_id": "d", "text": "{[{[ brackets in a string ]}]}"}),
        _nested(READ_DEPTH - 1),  # READ_DEPTH levels in all: shown whole
        _nested(READ_DEPTH),  # one level too deep: cut
        json.dumps({"decision_id": "d", "many": [{} for _ in range(READ_DEPTH + 5)]}),
        _nested(5000),  # too deep to parse
        "[1, 2]", "null", "not json", '{"decision_id": "d"',
    ],
)  # fmt: skip
def test_a_record_reads_the_same_with_or_without_the_depth_walk(text: str) -> None:
    """`readable` skips the depth walk for a text with few brackets; it gives what the walk
    gives, for shallow, deep, cut, malformed and non-object records alike."""
    row = (7, "d-col", "datavisa/access/decision", 1_800_000_000.0, text)
    assert readable(*row) == _readable_walked(*row)
