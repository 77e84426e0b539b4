"""Step-up as policy: a tier that wants a recent, strong sign-in at the identity provider
for approving, or for break-glass, judges what the IdP said of the caller's sign-in
(datavisa.step_up), on a real OPA running a bundle whose confidential tier asks for it.
A caller no IdP signed in (a static token, the local CLI) is refused, and told what would
do."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from live_server import served_store

from datavisa.engine.identity.oidc import Identity
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.model.errors import Denied
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store import open_store
from datavisa.engine.supervision import Supervision

RESOURCE = "eu-customer-analytics"  # confidential, alice's team; bob is its data owner
WANTS = {
    "approve": {"max_age_s": 900, "amr": ["mfa", "hwk"]},
    "break_glass": {"max_age_s": 300},
    "credentials": {"max_age_s": 600, "acr_values": ["phr"]},
    "supervise": {"max_age_s": 120, "amr": ["mfa"]},
}


@pytest.fixture(scope="module")
def stepped_opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    data = tmp_path_factory.mktemp("data") / "data"
    shutil.copytree(DEFAULT_BUNDLE_DIR, data)
    tiers = yaml.safe_load((data / "tiers.yaml").read_text())
    tiers["tiers"]["confidential"]["step_up"] = WANTS
    (data / "tiers.yaml").write_text(yaml.safe_dump(tiers))
    tarball = bundle.build(POLICY_DIR, data, data.parent / "b.tar.gz", "step-up")
    with OpaProcess(tarball) as opa:
        yield opa


@pytest.fixture
def engine(tmp_path: Path, stepped_opa: OpaProcess) -> Iterator[Engine]:
    store = open_store(tmp_path / "d.db")
    engine = Engine(store, stepped_opa.client(), revision="step-up")
    engine.grants.sync()
    yield engine
    store.close()


def _signed_in(subject: str, ago_s: float | None, *amr: str) -> Identity:
    at = None if ago_s is None else time.time() - ago_s
    return Identity(subject, "jwt:t", time.time() + 600, auth_time=at, amr=amr)


def test_approving_wants_a_recent_strong_sign_in(engine: Engine):
    req = engine.request("alice", RESOURCE, ["read"], 1200, "DE", "INC-5")
    for weak in (None, _signed_in("bob", None, "mfa"), _signed_in("bob", 901, "mfa"),
                 _signed_in("bob", 30, "pwd")):  # fmt: skip
        with pytest.raises(Denied) as refused:
            engine.approve(req.id, "bob", "DE", weak)
        [reason] = refused.value.decision.reasons
        assert reason["code"] == "step_up_required"
        assert reason["step_up"] == {"max_age_s": 900, "amr": ["mfa", "hwk"]}
        assert "sign in again" in reason["message"]
    assert engine.get(req.id).state == "pending"  # nothing recorded
    done = engine.approve(req.id, "bob", "DE", _signed_in("bob", 30, "pwd", "mfa"))
    assert done.state == "active"


def test_break_glass_wants_a_sign_in_of_the_last_five_minutes(engine: Engine):
    asked = ("oscar", RESOURCE, ["read"], 900, "DE", "INC-9000: pipeline down")
    with pytest.raises(Denied, match="within the last 300s"):
        engine.break_glass(*asked, authentication=_signed_in("oscar", 301))
    grant = engine.break_glass(*asked, authentication=_signed_in("oscar", 5))
    assert grant.state == "active"


def test_credentials_want_a_recent_sign_in_and_an_access_check_does_not(engine: Engine):
    grant = engine.break_glass("oscar", RESOURCE, ["read"], 900, "DE", "INC-9001: down",
                               authentication=_signed_in("oscar", 5))  # fmt: skip
    assert engine.check("oscar", RESOURCE, "read", "DE").allow  # an access check is no step
    for weak in (None, _signed_in("oscar", 601)):
        with pytest.raises(Denied) as refused:
            engine.stepped_up("oscar", RESOURCE, "credentials", weak)
        [reason] = refused.value.decision.reasons
        assert reason["step_up"] == {"max_age_s": 600, "amr": [], "acr_values": ["phr"]}
        assert "datavisa login --max-age 600 --acr-values 'phr'" in reason["message"]
    done = engine.stepped_up("oscar", RESOURCE, "credentials", _signed_in("oscar", 60))
    assert done.allow and done.decision_id  # logged, as every decision
    assert grant.state == "active"


def test_joining_as_a_supervisor_wants_a_recent_strong_sign_in_and_a_heartbeat_does_not(
    engine: Engine,
):
    """Supervisors are held to what approvers are: the tier's `supervise` step-up is asked
    at the join; the heartbeats that follow (renewed, or decided again) do not ask it again:
    the sign-in ages while the supervisor watches."""
    req = engine.request("alice", RESOURCE, ["read", "write"], 1200, "DE", "INC-33")
    grant = engine.approve(req.id, "bob", "DE", _signed_in("bob", 30, "mfa"))
    supervision = Supervision(engine)
    for weak in (None, _signed_in("erin", 121, "mfa"), _signed_in("erin", 10, "pwd")):
        with pytest.raises(Denied) as refused:
            supervision.join(grant.id, "erin", "DE", authentication=weak)
        [reason] = refused.value.decision.reasons
        assert reason["code"] == "step_up_required"
        assert reason["step_up"] == {"max_age_s": 120, "amr": ["mfa"]}
    assert supervision.supervisors(grant.id) == []
    joined = supervision.join(grant.id, "erin", "DE", authentication=_signed_in("erin", 10, "mfa"))
    assert joined["joined"] and engine.get(grant.id).supervision_state == "present"
    aged = _signed_in("erin", 3600, "mfa")
    assert supervision.join(grant.id, "erin", "DE", authentication=aged)["decided"] is False
    engine.revision = "step-up-2"  # a new policy: the heartbeat is decided again
    again = supervision.join(grant.id, "erin", "DE", authentication=aged)
    assert again["decided"] is True and again["joined"] is False


def test_a_tier_without_step_up_asks_for_none(tmp_path: Path, opa: OpaProcess):
    store = open_store(tmp_path / "d.db")
    engine = Engine(store, opa.client(), revision="shipped")
    engine.grants.sync()
    req = engine.request("alice", RESOURCE, ["read"], 1200, "DE", "INC-5")
    assert engine.approve(req.id, "bob", "DE").state == "active"  # the shipped tiers
    store.close()


def test_over_http_a_static_token_cannot_take_a_step_that_wants_step_up(tmp_path, stepped_opa):
    """The approve route hands the engine the caller's sign-in: a static token has none."""
    with served_store(tmp_path / "d.db", stepped_opa, "step-up", "bob", "user") as (url, token):
        store = open_store(tmp_path / "d.db")
        req = Engine(store, stepped_opa.client(), revision="s").request(
            "alice", RESOURCE, ["read"], 1200, "DE", "INC-5"
        )
        store.close()
        answer = requests.post(
            f"{url}/v1/requests/{req.id}/approve", json={"location": "DE"},
            headers={"Authorization": f"Bearer {token}"}, timeout=30,
        )  # fmt: skip
    assert answer.status_code == 403, answer.text
    reasons = answer.json()["error"]["reasons"]
    assert [r["code"] for r in reasons] == ["step_up_required"]
    assert reasons[0]["step_up"]["max_age_s"] == 900
