"""The console's step-up (engine/stepup) on both stores and a real OPA: a security key
enrolled and asserted with py_webauthn verifying what a software authenticator answers;
a replayed answer, another origin's, another RP's, one without user verification and a
sign counter gone back are refused; TOTP only where policy accepts it, a code taken once;
the step-up reaches the approval's decision input and its audit record; every success
and refusal is in the audit trail."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import replace
from pathlib import Path

import pyotp
import pytest
from soft_authenticator import UP, SoftAuthenticator, b64url

from datavisa.engine.identity.oidc import Identity
from datavisa.engine.identity.web_session import WebSession
from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.model.errors import Denied
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.stepup import RelyingParty, StepUpRefused, StepUps
from datavisa.engine.store import open_store

pytestmark = pytest.mark.stores  # on SQLite and on PostgreSQL

RP = RelyingParty("https://console.example.test")
CONFIDENTIAL = "eu-customer-analytics"  # bob is its data owner
RESTRICTED = "eu-payments-ledger"  # dave (payments' data owner) and erin (security)


@pytest.fixture
def stepped(db: Path, step_up_opa: OpaProcess, clock):
    """An engine and its StepUps on this test's store and the step-up tiers' OPA."""
    store = open_store(db)
    log = DecisionLog(store, b"test-key")
    engine = Engine(store, step_up_opa.client(), revision="step-up", clock=clock, log=log)
    engine.grants.sync()
    yield engine, StepUps(store, engine.opa, log, "step-up", clock)
    store.close()


def _session(engine: Engine, person: str, ago_s: float = 60) -> WebSession:
    """A signed-in web session of `person`, as the sign-in stores one (`ago_s` ago, by
    password: the step-up tiers want a hardware key at the IdP, so no IdP signal does)."""
    now, id_hash = time.time(), secrets.token_hex(32)
    with engine.store.transaction() as db:
        db["web_sessions"].insert({
            "id_hash": id_hash, "subject": person, "csrf_token": "c", "created_at": now,
            "expires_at": now + 3600, "last_seen_at": now, "auth_time": now - ago_s,
            "amr": '["pwd"]',
        })  # fmt: skip
    who = Identity(person, f"session:{id_hash[:16]}", now + 3600, now - ago_s, ("pwd",))
    return WebSession(id_hash, who, "c", now, now + 3600, now + 3600)


def _held(engine: Engine, session: WebSession) -> Identity:
    """The session's person as the session now says (what WebSessions.find reads)."""
    method, at = engine.store.db.execute(
        "SELECT step_up_method, step_up_at FROM web_sessions WHERE id_hash = ?",
        [session.id_hash],
    ).fetchone()
    return replace(session.identity, step_up_method=method, step_up_at=at)


def _events(engine: Engine, event: str) -> list[dict]:
    rows = engine.store.db.execute(
        "SELECT actor, detail FROM audit WHERE event = ? ORDER BY seq", [event]
    ).fetchall()
    return [{"actor": a, **json.loads(d)} for a, d in rows]


def _enrolled(stepups: StepUps, session: WebSession) -> SoftAuthenticator:
    key = SoftAuthenticator(RP.rp_id, RP.origin)
    options = stepups.registration_options(session, RP)
    assert options["rp"]["id"] == "console.example.test"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    stepups.register(session, RP, key.create(options))
    return key


def test_a_security_key_enrolled_and_asserted_lets_bob_approve(stepped):
    engine, stepups = stepped
    req = engine.request("alice", CONFIDENTIAL, ["read"], 1200, "DE", "INC-5")
    bob = _session(engine, "bob")
    with pytest.raises(Denied) as refused:  # a password sign-in an hour ago does not do
        engine.approve(req.id, "bob", "DE", _held(engine, bob))
    [reason] = refused.value.decision.reasons
    assert reason["step_up"]["methods"] == ["webauthn"]
    assert "or step up in the console (a security key or passkey)" in reason["message"]

    key = _enrolled(stepups, bob)
    [enrolled] = _events(engine, "step_up_enrolled")
    assert enrolled["actor"] == "bob" and enrolled["method"] == "webauthn"
    assert stepups.credentials("bob")[0]["transports"] == ["usb"]

    options = stepups.assertion_options(bob, RP)
    assert [c["id"] for c in options["allowCredentials"]] == [b64url(key.credential_id)]
    done = stepups.verify_assertion(bob, RP, key.get(options))
    assert done["method"] == "webauthn"
    who = _held(engine, bob)
    assert who.step_up_method == "webauthn" and who.step_up_at == done["at"]
    assert stepups.credentials("bob")[0]["sign_count"] == 1

    approved = engine.approve(req.id, "bob", "DE", who)
    assert approved.state == "active"
    [record] = _events(engine, "approved")
    assert record["step_up"] == {"method": "webauthn", "at": done["at"]}
    [logged] = engine.store.db.execute(
        "SELECT event FROM decision_log WHERE path = 'datavisa/approval/decision' AND allow = 1"
    ).fetchall()
    step_up = json.loads(logged[0])["input"]["authentication"]["step_up"]
    assert step_up["method"] == "webauthn" and 0 <= step_up["age_s"] < 60
    [stepped_up] = _events(engine, "stepped_up")
    assert stepped_up["actor"] == "bob" and stepped_up["method"] == "webauthn"


def test_a_step_up_older_than_the_tier_allows_does_not_do(stepped, clock):
    engine, stepups = stepped
    req = engine.request("alice", CONFIDENTIAL, ["read"], 1200, "DE", "INC-6")
    bob = _session(engine, "bob")
    key = _enrolled(stepups, bob)
    stepups.verify_assertion(bob, RP, key.get(stepups.assertion_options(bob, RP)))
    clock.advance(301)
    with pytest.raises(Denied, match="within the last 300s"):
        engine.approve(req.id, "bob", "DE", _held(engine, bob))


def test_an_answer_counts_once(stepped):
    engine, stepups = stepped
    bob = _session(engine, "bob")
    key = _enrolled(stepups, bob)
    answer = key.get(stepups.assertion_options(bob, RP))
    stepups.verify_assertion(bob, RP, answer)
    with pytest.raises(StepUpRefused) as replayed:
        stepups.verify_assertion(bob, RP, answer)
    assert replayed.value.code == "challenge_unknown" and replayed.value.field == "challenge"
    # ... and with a fresh challenge asked meanwhile, the old answer is not its answer.
    stepups.assertion_options(bob, RP)
    with pytest.raises(StepUpRefused) as stale:
        stepups.verify_assertion(bob, RP, answer)
    assert stale.value.field == "response.clientDataJSON.challenge"


@pytest.mark.parametrize(
    ("answer", "field"),
    [
        ({"origin": "https://evil.example.test"}, "response.clientDataJSON.origin"),
        ({"count": 0}, "response.authenticatorData.signCount"),
        ({"flags": UP}, "response.authenticatorData.flags"),
    ],
    ids=["another-origin", "sign-counter-gone-back", "no-user-verification"],
)
def test_a_forged_or_cloned_answer_is_refused_and_audited(stepped, answer, field):
    engine, stepups = stepped
    bob = _session(engine, "bob")
    key = _enrolled(stepups, bob)
    stepups.verify_assertion(bob, RP, key.get(stepups.assertion_options(bob, RP)))
    options = stepups.assertion_options(bob, RP)
    with pytest.raises(StepUpRefused) as refused:
        stepups.verify_assertion(bob, RP, key.get(options, **answer))
    assert refused.value.status == 403 and refused.value.field == field, refused.value
    assert stepups.credentials("bob")[0]["sign_count"] == 1  # nothing recorded
    [audited] = _events(engine, "step_up_refused")
    assert audited["actor"] == "bob" and audited["field"] == field


def test_another_rp_s_credential_or_someone_else_s_is_refused(stepped):
    engine, stepups = stepped
    bob, erin = _session(engine, "bob"), _session(engine, "erin")
    key = _enrolled(stepups, bob)
    other = SoftAuthenticator("evil.example.test", RP.origin)
    with pytest.raises(StepUpRefused) as refused:
        stepups.register(erin, RP, other.create(stepups.registration_options(erin, RP)))
    assert refused.value.field == "response.authenticatorData.rpIdHash"
    _enrolled(stepups, erin)
    with pytest.raises(StepUpRefused) as stolen:  # bob's key answering erin's challenge
        stepups.verify_assertion(erin, RP, key.get(stepups.assertion_options(erin, RP)))
    assert stolen.value.code == "unknown_credential"


def test_totp_only_where_a_tier_accepts_it_and_a_code_once(stepped, opa: OpaProcess):
    engine, stepups = stepped
    shipped = StepUps(engine.store, opa.client(), None, "test")
    dave = _session(engine, "dave")
    with pytest.raises(StepUpRefused) as refused:  # the shipped tiers accept no TOTP
        shipped.totp_enrol(dave)
    assert refused.value.code == "method_not_allowed" and refused.value.status == 403

    enrolled = stepups.totp_enrol(dave)
    assert enrolled["uri"].startswith("otpauth://totp/DataVisa:dave?")
    code = pyotp.TOTP(enrolled["secret"]).now()
    with pytest.raises(StepUpRefused, match="6 digits"):
        stepups.totp_verify(dave, "12345")
    stepups.totp_verify(dave, code)
    with pytest.raises(StepUpRefused) as reused:
        stepups.totp_verify(dave, code)
    assert reused.value.code == "code_reused"
    with pytest.raises(StepUpRefused) as again:  # enrolled: not again
        stepups.totp_enrol(dave)
    assert again.value.code == "totp_enrolled"

    # The restricted tier takes it; the confidential tier wants a security key.
    who = _held(engine, dave)
    assert who.step_up_method == "totp"
    restricted = engine.request("oscar", RESTRICTED, ["read"], 600, "DE", "INC-7")
    engine.approve(restricted.id, "dave", "DE", who)
    assert engine.get(restricted.id).state == "pending"  # erin still to approve
    bob = _session(engine, "bob")
    stepups.totp_enrol(bob)
    secret = engine.store.db.execute(
        "SELECT secret FROM totp_secrets WHERE person = 'bob'"
    ).fetchone()[0]
    stepups.totp_verify(bob, pyotp.TOTP(secret).now())
    confidential = engine.request("alice", CONFIDENTIAL, ["read"], 1200, "DE", "INC-8")
    with pytest.raises(Denied) as weak:
        engine.approve(confidential.id, "bob", "DE", _held(engine, bob))
    assert [r["code"] for r in weak.value.decision.reasons] == ["step_up_required"]
    assert {e["field"] for e in _events(engine, "step_up_refused")} >= {"method", "code"}


def test_no_assertion_without_a_credential_and_services_enrol_nothing(stepped):
    engine, stepups = stepped
    with pytest.raises(StepUpRefused) as none:
        stepups.assertion_options(_session(engine, "bob"), RP)
    assert none.value.code == "not_enrolled" and none.value.status == 409
    [audited] = _events(engine, "step_up_refused")
    assert audited["actor"] == "bob" and audited["field"] == "credential"
    with pytest.raises(StepUpRefused) as service:
        stepups.registration_options(_session(engine, "etl-eu"), RP)
    assert service.value.code == "not_a_person"


def test_a_session_signed_in_long_ago_enrols_nothing_until_it_steps_up(stepped):
    engine, stepups = stepped
    stale = _session(engine, "bob", ago_s=3600)  # the shipped 15 minutes are long over
    for enrol in (lambda: stepups.registration_options(stale, RP),
                  lambda: stepups.totp_enrol(stale)):  # fmt: skip
        with pytest.raises(StepUpRefused) as refused:
            enrol()
        assert refused.value.code == "step_up_required" and refused.value.status == 403
        assert "within the last 900s" in str(refused.value)
    fresh = _session(engine, "bob")
    key = _enrolled(stepups, fresh)
    # Stepped up with the key just now, the old session may add another.
    stepups.verify_assertion(fresh, RP, key.get(stepups.assertion_options(fresh, RP)))
    from dataclasses import replace

    stepped_up = replace(
        fresh, identity=replace(_held(engine, fresh), auth_time=time.time() - 3600)
    )
    assert stepups.registration_options(stepped_up, RP)["excludeCredentials"]


def test_a_key_removed_counts_no_more(stepped):
    engine, stepups = stepped
    bob = _session(engine, "bob")
    key = _enrolled(stepups, bob)
    [held] = stepups.credentials("bob")
    with pytest.raises(StepUpRefused) as not_hers:
        stepups.remove(_session(engine, "erin"), held["credential_id"])
    assert not_hers.value.status == 404
    stepups.remove(bob, held["credential_id"])
    assert stepups.credentials("bob") == []
    [removed] = _events(engine, "step_up_removed")
    assert removed["actor"] == "bob"
    with pytest.raises(StepUpRefused, match="no security key"):
        stepups.assertion_options(bob, RP)
    assert key.sign_count == 0
