"""An OPA answers about grants only once it holds them all: one just (re)started, before
the engine's full push, says policy_unavailable, never a no_active_grant it cannot know,
and takes no one subject's grants in place of everyone's."""

from __future__ import annotations

from pathlib import Path

import pytest

from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.lifecycle.grants import OpaSink, SinkUnavailable
from datavisa.engine.model.errors import NotYetEnforced
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store import open_store

RESOURCE = "eu-customer-analytics"


def test_an_opa_without_the_live_grants_answers_policy_unavailable(tmp_path: Path, clock):
    tarball = bundle.build(POLICY_DIR, DEFAULT_BUNDLE_DIR, tmp_path / "b.tar.gz", "test")
    store = open_store(tmp_path / "datavisa.db")
    with OpaProcess(tarball) as fresh:
        engine = Engine(
            store, fresh.client(), revision="test", clock=clock, log=DecisionLog(store, b"k")
        )
        req = engine.request("alice", RESOURCE, ["read"], 3600, "DE", reason="x")
        with pytest.raises(NotYetEnforced):  # active in the store, refused by this OPA
            engine.approve(req.id, "bob", "DE")
        sink = OpaSink(fresh.client())
        with pytest.raises(SinkUnavailable):
            sink.put_subject("alice", {"g": {"resource": RESOURCE}})  # no partial grants
        assert engine.check("alice", RESOURCE, "read", "DE").codes == ["policy_unavailable"]
        assert engine.check("bob", RESOURCE, "read", "DE").codes == ["policy_unavailable"]

        engine.grants.sync()  # the full push: now OPA knows who holds what
        assert engine.check("alice", RESOURCE, "read", "DE").allow
        assert engine.check("bob", RESOURCE, "read", "DE").codes == ["no_active_grant"]
    store.close()
