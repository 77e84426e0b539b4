"""A removal of access always lands: the grant outbox, retried until OPA matches the store,
reconciliation, and ending grants while OPA cannot be asked.

A real OPA sits behind a fault-injecting proxy (faults.py); the engine talks to it through
the proxy, and the tests look at OPA itself, directly, to see what it would answer a
service that asks it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from faults import FaultyProxy
from live_server import IN_GERMANY, RESOURCE, Api, uvicorn_thread, wait_for

from datavisa.engine.api.app import create_app
from datavisa.engine.api.service import Service
from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.ledger import audit
from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.lifecycle.grants import GRANTS_PATH, Runner
from datavisa.engine.monitoring.monitor import Monitor
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.opa import OpaClient
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store.sqlite import Store

CHECK = {"resource": RESOURCE, "action": "read", "location": "DE"}


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "bundle.tar.gz"
    return bundle.build(POLICY_DIR, DEFAULT_BUNDLE_DIR, out, "test")


class Setup:
    def __init__(self, api: Api, proxy: FaultyProxy, opa: OpaClient, monitor: Monitor) -> None:
        self.api, self.proxy, self.opa, self.monitor = api, proxy, opa, monitor

    def opa_allows(self, subject: str = "alice") -> bool:
        """What OPA itself answers a service that asks it directly."""
        answer = self.opa.query("datavisa/access/decision", {"subject": subject, **CHECK})
        return answer.result["allow"]

    def engine_check(self, subject: str = "alice") -> dict[str, Any]:
        response = self.api.as_(subject).post("/v1/access/check", CHECK)
        assert response.status_code == 200, response.text
        return response.json()

    def health(self, **params: str) -> requests.Response:
        return self.api.anonymous().get("/health", params=params)

    def metric(self, name: str) -> float:
        text = self.api.anonymous().get("/metrics").text
        return float(re.search(rf'^{name}{{sink="opa"}} (\S+)$', text, re.M).group(1))


@pytest.fixture
def setup(tmp_path: Path, tarball: Path) -> Iterator[Setup]:
    db = tmp_path / "datavisa.db"
    with OpaProcess(tarball) as process, FaultyProxy(process.url) as proxy:
        store, tokens = Store(db), TokenStore(db)
        client = OpaClient(proxy.url, timeout=0.5, token=process.token)
        direct = process.client()  # OPA itself, holding the engine's secret
        engine = Engine(store, client, revision="test", log=DecisionLog(store, b"test-key"))
        engine.grants.sync()
        monitor = Monitor(engine.log, client)
        runner = Runner(engine.grants, reconcile_every_s=0.5, backoff_max_s=0.2).start()
        service = Service(engine, tokens, monitor=monitor, location=IN_GERMANY)
        try:
            with uvicorn_thread(create_app(service)) as url:
                yield Setup(Api(url, service), proxy, direct, monitor)
        finally:
            runner.stop()
            service.close()
            for closing in (client, direct, tokens, store):
                closing.close()


def _refuse_grant_writes(method: str, path: str) -> bool:
    # A full push PUTs data.grants; one subject's change is a JSON Patch of /v1/data.
    return (method == "PUT" and path.startswith(f"/v1/data/{GRANTS_PATH}")) or (
        method == "PATCH" and path == "/v1/data"
    )


def test_a_revoke_opa_did_not_take_is_retried_until_opa_denies(setup: Setup):
    grant = setup.api.grant("alice")
    assert setup.opa_allows() and setup.engine_check()["allow"]
    setup.proxy.refuse = _refuse_grant_writes

    revoked = setup.api.as_("bob").post(f"/v1/grants/{grant['id']}/revoke", {"reason": "done"})

    # Recorded, and said plainly not to be in force yet.
    assert revoked.status_code == 202, revoked.text
    assert revoked.json()["state"] == "revoked"
    assert revoked.json()["pending_sinks"] == ["opa"]
    # OPA still holds the grant; the engine's own check never allows it meanwhile.
    assert setup.opa_allows()
    check = setup.engine_check()
    assert not check["allow"]
    assert [r["code"] for r in check["reasons"]] == ["grant_not_active"]
    # Ready (the engine's checks deny), but the removal is held back: the enforcement check.
    # (Waited for: on a busy machine OPA's readiness probe, 0.5 s through the proxy, may
    # time out once and make one answer unready.)
    health = wait_for(lambda: (h := setup.health()).status_code == 200 and h, "the engine ready")
    assert health.json()["enforcement"]["status"] == "held_back"
    enforced = setup.health(enforcement="true")
    assert enforced.status_code == 503
    assert any("not yet removed from opa" in p for p in enforced.json()["problems"])
    assert setup.metric("datavisa_grant_sink_unapplied_removals") == 1
    assert setup.metric("datavisa_grant_sink_lag_seconds") > 0
    # Policy says when that is an alert (removal_not_enforced, after_s in the bundle).
    service = setup.api.service
    (alert,) = wait_for(
        lambda: setup.monitor.check_enforcement(service.unapplied_removals()),
        "the removal_not_enforced alert",
        timeout_s=15,
    )
    assert (alert.rule, alert.subject, alert.evidence) == (
        "removal_not_enforced", "alice", [grant["id"]]
    )  # fmt: skip
    assert setup.proxy.refused >= 2  # retried

    setup.proxy.refuse = lambda method, path: False
    wait_for(lambda: not setup.opa_allows(), "OPA to take the revoke")
    wait_for(
        lambda: setup.health(enforcement="true").status_code == 200, "the removal in force again"
    )
    assert setup.metric("datavisa_grant_sink_unapplied_removals") == 0
    assert setup.metric("datavisa_grant_sink_lag") == 0


def test_a_grant_written_into_opa_behind_the_engines_back_is_repaired(setup: Setup):
    grant = setup.api.grant("alice")
    held = setup.opa.get_data(f"{GRANTS_PATH}/alice")
    assert setup.api.as_("alice").post(f"/v1/grants/{grant['id']}/relinquish").status_code == 200
    assert not setup.opa_allows()

    setup.opa.put_data(f"{GRANTS_PATH}/alice", held)  # someone puts the grant back
    assert setup.opa_allows()
    assert [r["code"] for r in setup.engine_check()["reasons"]] == ["grant_not_active"]

    wait_for(lambda: not setup.opa_allows(), "reconciliation to take the grant out again")
    assert setup.metric("datavisa_grant_sink_drift_repairs_total") >= 1


def test_an_activation_opa_did_not_take_answers_202_and_lands_later(setup: Setup):
    setup.proxy.refuse = _refuse_grant_writes
    req = setup.api.request("alice")
    approved = setup.api.as_("bob").post(f"/v1/requests/{req['id']}/approve", {"location": "DE"})
    assert approved.status_code == 202, approved.text
    assert approved.json()["state"] == "active"
    assert not setup.engine_check()["allow"]  # fail closed until OPA holds it
    setup.proxy.refuse = lambda method, path: False
    wait_for(lambda: setup.engine_check()["allow"], "the grant to be in force")


def test_ending_a_grant_never_waits_for_opa(setup: Setup):
    """While OPA cannot be asked at all, the grant's approver revokes and its holder
    relinquishes, as policy said when the grant became live; anyone else is refused."""
    revoked, given_back = setup.api.grant("alice"), setup.api.grant("dave")
    setup.proxy.refuse = lambda method, path: True  # OPA unreachable for the engine

    stranger = setup.api.as_("erin").post(f"/v1/grants/{revoked['id']}/revoke")
    assert stranger.status_code == 403
    assert stranger.json()["error"]["reasons"][0]["code"] == "policy_unavailable"
    by_approver = setup.api.as_("bob").post(f"/v1/grants/{revoked['id']}/revoke")
    by_holder = setup.api.as_("dave").post(f"/v1/grants/{given_back['id']}/relinquish")
    assert (by_approver.status_code, by_approver.json()["state"]) == (202, "revoked")
    assert (by_holder.status_code, by_holder.json()["state"]) == (202, "relinquished")
    events = audit.trail(setup.api.service.engine.store.db)
    assert [e["detail"].get("offline") for e in events if e["event"] == "revoked"] == [True]
    # In force on the engine's check before OPA answers again, and at OPA once it does.
    assert not setup.engine_check("alice")["allow"]
    setup.proxy.refuse = lambda method, path: False
    wait_for(lambda: not setup.opa_allows("alice"), "OPA to take the revoke")
    wait_for(lambda: not setup.opa_allows("dave"), "OPA to take the relinquish")


def test_the_outbox_forgets_what_every_sink_applied_and_goes_on(setup: Setup):
    grants = setup.api.service.engine.grants
    first = setup.api.grant("alice")
    setup.api.as_("alice").post(f"/v1/grants/{first['id']}/relinquish")
    store = grants.store
    # The runner prunes every reconcile round too, so either call may be the one that
    # forgets the applied rows: what is left is the same.
    grants.prune()
    assert len(store.grant_changes(0)) == 1  # the last applied row stays, so seqs go on
    again = setup.api.grant("alice")  # a change after the prune is applied as any other
    assert setup.opa_allows() and grants.lag()[0].changes == 0
    assert store.grant_changes(0)[-1].grant_id == again["id"]
