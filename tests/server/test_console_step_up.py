"""The console's WebAuthn step-up end to end: real headless Chromium (Debian's) with the
DevTools virtual authenticator (CTAP2, internal, user-verifying), people signed in through
a real Ory Hydra, a real OPA whose confidential tier wants a security key for approving
(restricted: one, or an authenticator app's code). Bob's approval is refused until he
steps up, allowed after, and its audit record says how and when; an assertion replayed,
one made for another origin, a sign counter gone back, and a TOTP code where policy does
not take it or taken twice are refused; the page goes back only to a path of this
server.

The answers no browser would send (another origin, a counter gone back) come from a
software authenticator in Python (tests/soft_authenticator.py) enrolled for bob through
the same HTTP API, with his session's cookie and CSRF token."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pyotp
import pytest
import requests
import test_console
import test_dashboard
import test_web_sign_in
from playwright.sync_api import Page, expect
from soft_authenticator import SoftAuthenticator
from test_console import _ask
from test_dashboard import WAIT_MS
from test_web_sign_in import Site, site

from datavisa.engine.policy.process import OpaProcess

hydra = test_web_sign_in.hydra
chromium = test_console.chromium
person = test_console.person
shots = test_dashboard.shots

RESTRICTED = "eu-payments-ledger"  # dave (payments' data owner) and erin (security)
AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


@pytest.fixture
def web(tmp_path: Path, step_up_opa: OpaProcess, hydra) -> Iterator[Site]:
    """The console at http://localhost:PORT (a WebAuthn RP ID must be a domain) on the
    step-up tiers (tests/conftest.py CONSOLE_STEP_UP)."""
    with site(tmp_path, step_up_opa, hydra, host="localhost") as running:
        yield running


def _virtual_authenticator(page: Page) -> str:
    """A virtual authenticator on `page`'s tab (the DevTools WebAuthn domain)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    return cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})[
        "authenticatorId"
    ]


def _browser(web: Site, name: str) -> tuple[requests.Session, dict[str, str]]:
    """`name` signed in with a requests session, and the headers its POSTs carry."""
    browser = web.sign_in(name)
    csrf = browser.get(web.url + "/auth/session", timeout=30).json()["csrf_token"]
    return browser, {"X-CSRF-Token": csrf, "Origin": web.url}


def _audit(web: Site, event: str) -> list[dict]:
    return [{"actor": actor, **json.loads(detail)} for actor, detail in web.audit(event)]


def test_bob_approves_only_once_stepped_up_with_his_security_key(web: Site, person, shots):
    alice = person("alice")
    asked = _ask(alice, "INC-31 churn report")

    bob = person("bob")
    _virtual_authenticator(bob)
    bob.locator("#queue").get_by_label("Country you approve from").fill("DE")
    queued = bob.locator("#queue .items li", has_text=asked)
    expect(queued.locator(".step-up").first).to_contain_text(
        "or step up in the console (a security key or passkey)", timeout=WAIT_MS
    )
    queued.get_by_role("button", name="Approve").click()  # refused: no step-up yet
    expect(queued.locator(".refusal [data-code=step_up_required]")).to_have_count(
        1, timeout=WAIT_MS
    )

    queued.get_by_role("link", name="Step up with your security key").first.click()
    expect(bob).to_have_url(f"{web.url}/step-up?return_to=%2F", timeout=WAIT_MS)
    page = bob.locator("#step-up")
    expect(page.locator("#key-held")).to_contain_text("no security key", timeout=WAIT_MS)
    page.get_by_role("button", name="Enrol a security key").click()
    expect(page.locator("#outcome")).to_have_text("Security key enrolled.", timeout=WAIT_MS)
    bob.screenshot(path=shots / "step-up.png", full_page=True)
    stepping = page.get_by_role("button", name="Step up with my security key")
    expect(stepping).to_be_focused()
    bob.keyboard.press("Enter")  # keyboard operable
    expect(bob).to_have_url(f"{web.url}/", timeout=WAIT_MS)  # back to the console

    bob.locator("#queue").get_by_label("Country you approve from").fill("DE")
    queued = bob.locator("#queue .items li", has_text=asked)
    queued.get_by_role("button", name="Approve").click()
    expect(queued).to_have_count(0, timeout=WAIT_MS)
    expect(alice.locator("#mine .items li", has_text=asked)).to_contain_text(
        "active", timeout=WAIT_MS
    )

    [stepped] = _audit(web, "stepped_up")
    assert stepped["actor"] == "bob" and stepped["method"] == "webauthn"
    [approved] = [e for e in _audit(web, "approved") if e["actor"] == "bob"]
    assert approved["step_up"] == {"method": "webauthn", "at": approved["step_up"]["at"]}
    assert approved["step_up"]["at"] == pytest.approx(_stepped_up_at(web), abs=1e-6)
    with closing(sqlite3.connect(web.db)) as db:
        [(event,)] = db.execute(
            "SELECT event FROM decision_log WHERE path = 'datavisa/approval/decision' AND allow = 1"
        ).fetchall()
    assert json.loads(event)["input"]["authentication"]["step_up"]["method"] == "webauthn"


def _stepped_up_at(web: Site) -> float:
    with closing(sqlite3.connect(web.db)) as db:
        [(at,)] = db.execute(
            "SELECT step_up_at FROM web_sessions WHERE subject = 'bob' AND step_up_at IS NOT NULL"
        ).fetchall()
    return at


def test_a_replayed_assertion_is_refused(web: Site, person):
    bob = person("bob")
    _virtual_authenticator(bob)
    bob.goto(f"{web.url}/step-up")
    bob.get_by_role("button", name="Enrol a security key").click()
    expect(bob.locator("#outcome")).to_have_text("Security key enrolled.", timeout=WAIT_MS)
    # The browser's own assertion, sent twice: the challenge counts once.
    answers = bob.evaluate(
        """async () => {
          const csrf = (await (await fetch("/auth/session")).json()).csrf_token;
          const post = (path, body) => fetch(path, {method: "POST", body: JSON.stringify(body),
            headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}});
          const options = await (await post("/v1/step-up/webauthn/assert/options", {})).json();
          const got = await navigator.credentials.get(
            {publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options)});
          const answers = [];
          for (const _ of [1, 2]) {
            const r = await post("/v1/step-up/webauthn/assert/verify", {credential: got.toJSON()});
            answers.push([r.status, await r.json()]);
          }
          return answers;
        }"""
    )
    (first, took), (second, refused) = answers
    assert first == 200 and took["method"] == "webauthn", took
    assert second == 403, refused
    assert refused["error"]["code"] == "challenge_unknown"
    assert refused["error"]["field"] == "challenge"
    assert [e["field"] for e in _audit(web, "step_up_refused")] == ["challenge"]


def test_another_origin_s_or_a_cloned_key_s_assertion_is_refused(web: Site):
    browser, headers = _browser(web, "bob")
    post = lambda path, body=None: browser.post(  # noqa: E731
        web.url + path, json=body or {}, headers=headers, timeout=30
    )
    key = SoftAuthenticator("localhost", web.url)
    options = post("/v1/step-up/webauthn/register/options").json()
    assert options["rp"]["id"] == "localhost"
    assert post("/v1/step-up/webauthn/register/verify", {"credential": key.create(options)}).ok

    for forged, field in (
        ({"origin": "http://evil.localhost:1"}, "response.clientDataJSON.origin"),
        ({"count": 0}, "response.authenticatorData.signCount"),
    ):
        if forged.get("count") == 0:  # a counter that grew once, then went back
            taken = post(
                "/v1/step-up/webauthn/assert/verify",
                {"credential": key.get(post("/v1/step-up/webauthn/assert/options").json())},
            )
            assert taken.ok, taken.text
        challenge = post("/v1/step-up/webauthn/assert/options").json()
        answer = post(
            "/v1/step-up/webauthn/assert/verify", {"credential": key.get(challenge, **forged)}
        )
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["field"] == field, answer.text
    refused = [e["field"] for e in _audit(web, "step_up_refused")]
    assert refused == ["response.clientDataJSON.origin", "response.authenticatorData.signCount"]


def test_totp_only_where_policy_takes_it_and_a_code_once(web: Site):
    bob, headers = _browser(web, "bob")
    enrolled = bob.post(web.url + "/v1/step-up/totp/enrol", json={}, headers=headers, timeout=30)
    assert enrolled.status_code == 200 and enrolled.headers["Cache-Control"] == "no-store"
    code = pyotp.TOTP(enrolled.json()["secret"]).now()
    took = bob.post(web.url + "/v1/step-up/totp/verify", json={"code": code}, headers=headers,
                    timeout=30)  # fmt: skip
    assert took.status_code == 200, took.text
    again = bob.post(web.url + "/v1/step-up/totp/verify", json={"code": code}, headers=headers,
                     timeout=30)  # fmt: skip
    assert again.status_code == 403 and again.json()["error"]["code"] == "code_reused"
    assert again.json()["error"]["field"] == "code"

    alice, alice_headers = _browser(web, "alice")
    asked = alice.post(
        web.url + "/v1/requests", headers=alice_headers, timeout=30,
        json={"resource": "eu-customer-analytics", "duration": "20m", "location": "DE",
              "reason": "INC-32"},
    ).json()  # fmt: skip
    # A code does not do where the tier wants a security key (confidential).
    refused = bob.post(
        f"{web.url}/v1/requests/{asked['id']}/approve", json={"location": "DE"},
        headers=headers, timeout=30,
    )  # fmt: skip
    assert refused.status_code == 403, refused.text
    assert [r["code"] for r in refused.json()["error"]["reasons"]] == ["step_up_required"]

    # ... and does where it takes one (restricted: dave, its data owner).
    oscar, oscar_headers = _browser(web, "oscar")
    restricted = oscar.post(
        web.url + "/v1/requests", headers=oscar_headers, timeout=30,
        json={"resource": RESTRICTED, "duration": "10m", "location": "DE", "reason": "INC-33"},
    ).json()  # fmt: skip
    dave, dave_headers = _browser(web, "dave")
    secret = dave.post(web.url + "/v1/step-up/totp/enrol", json={}, headers=dave_headers,
                       timeout=30).json()["secret"]  # fmt: skip
    assert dave.post(web.url + "/v1/step-up/totp/verify", headers=dave_headers, timeout=30,
                     json={"code": pyotp.TOTP(secret).now()}).ok  # fmt: skip
    approved = dave.post(
        f"{web.url}/v1/requests/{restricted['id']}/approve", json={"location": "DE"},
        headers=dave_headers, timeout=30,
    )  # fmt: skip
    assert approved.status_code == 200, approved.text
    [record] = [e for e in _audit(web, "approved") if e["actor"] == "dave"]
    assert record["step_up"]["method"] == "totp"


def test_step_up_needs_a_browser_session_and_returns_only_to_this_server(web: Site):
    url = web.url + "/v1/step-up/webauthn/assert/options"
    assert requests.post(url, json={}, timeout=30).status_code == 401
    browser, headers = _browser(web, "bob")
    no_csrf = browser.post(url, json={}, headers={"Origin": web.url}, timeout=30)
    assert no_csrf.status_code == 403 and no_csrf.json()["error"]["code"] == "csrf_required"
    none = browser.post(url, json={}, headers=headers, timeout=30)
    assert none.status_code == 409 and none.json()["error"]["field"] == "credential"
    bad = browser.post(web.url + "/v1/step-up/totp/verify", json={"code": "12"},
                       headers=headers, timeout=30)  # fmt: skip
    assert bad.status_code in (400, 403, 409), bad.text  # bob has no TOTP secret yet

    page = browser.get(web.url + "/step-up?return_to=/", timeout=30)
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert '<script src="/dashboard/stepup.js"' in page.text
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)  # every script is a file
    assert not re.search(r"\son[a-z]+=", page.text)  # no handler in an attribute
    for elsewhere in ("//evil.example", "https://evil.example/", "/\\evil.example", "evil"):
        refused = browser.get(web.url + "/step-up", params={"return_to": elsewhere}, timeout=30)
        assert refused.status_code == 422, (elsewhere, refused.text)
        assert refused.json()["error"]["field"] == "return_to"
