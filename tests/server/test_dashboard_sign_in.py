"""The dashboard signed in with the identity provider, in a real headless Chromium against a
real Ory Hydra: "Sign in" goes through Hydra's code flow and back, the page shows the person
and acts as them; the cookie is HttpOnly and SameSite; a state-changing call without the
CSRF token, or from another origin, is refused; signing out goes through Hydra's sign-out
and the old cookie counts no more; a lapsed session is asked to sign in again; and a
step policy wants a recent, strong sign-in for leads to signing in again."""

from __future__ import annotations

import requests
import test_dashboard
import test_step_up
import test_web_sign_in
from hydra import Hydra
from playwright.sync_api import BrowserContext, Page, expect
from test_dashboard import WAIT_MS
from test_web_sign_in import BODY, COOKIE, Site, site

from datavisa.engine.policy.process import OpaProcess

# The fixtures these tests share with their neighbours: Chromium, Hydra, a stepped OPA.
browser = test_dashboard.browser
hydra = test_web_sign_in.hydra
stepped_opa = test_step_up.stepped_opa

FETCH = """async ([path, body, csrf]) => {
  const headers = {"Content-Type": "application/json", ...(csrf ? {"X-CSRF-Token": csrf} : {})};
  const answer = await fetch(path, {method: "POST", headers, body: JSON.stringify(body)});
  return [answer.status, await answer.json()];
}"""


def _sign_in(page: Page, web: Site, person: str) -> None:
    page.goto(f"{web.url}/auth/login?login_hint={person}")
    expect(page.locator("#who")).to_have_text(f"{person} (user)", timeout=WAIT_MS)
    expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)


def test_a_person_signs_in_acts_and_signs_out(tmp_path, opa, hydra, browser: BrowserContext):
    with site(tmp_path, opa, hydra) as web:
        page = browser.new_page()
        page.goto(web.url + "/")
        link = page.get_by_role("link", name="Sign in", exact=True)
        expect(link).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#login")).to_be_visible()  # a pasted token still works too
        link.click()  # Hydra, its login and consent app (alice), Hydra, the callback, here
        expect(page.locator("#who")).to_have_text("alice (user)", timeout=WAIT_MS)
        expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)
        assert page.url == web.url + "/"

        [cookie] = [c for c in browser.cookies(web.url) if c["name"] == COOKIE]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
        assert COOKIE not in page.evaluate("document.cookie")  # no script reads it

        status, refused = page.evaluate(FETCH, ["/v1/requests", BODY, None])
        assert status == 403 and refused["error"]["code"] == "csrf_required"
        csrf = page.evaluate("fetch('/auth/session').then((r) => r.json())")["csrf_token"]
        status, made = page.evaluate(FETCH, ["/v1/requests", BODY, csrf])
        assert status == 201 and made["requester"] == "alice"
        expect(page.locator("#pending .items")).to_contain_text(made["id"], timeout=WAIT_MS)
        # The browser's own cookie and the right token, but from another origin.
        elsewhere = browser.request.post(
            f"{web.url}/v1/requests/{made['id']}/cancel", data={},
            headers={"Origin": "http://evil.example", "X-CSRF-Token": csrf},
        )  # fmt: skip
        assert elsewhere.status == 403 and elsewhere.json()["error"]["code"] == "csrf_required"

        page.get_by_role("button", name="Sign out").click()  # here, then at Hydra, then back
        expect(page.get_by_role("link", name="Sign in", exact=True)).to_be_visible(timeout=WAIT_MS)
        assert page.url == web.url + "/"
        old = requests.get(web.url + "/v1/whoami", cookies={COOKIE: cookie["value"]}, timeout=30)
        assert old.status_code == 401  # ended on the server, not only forgotten


def test_a_lapsed_session_is_asked_to_sign_in_again(tmp_path, opa, hydra, browser):
    with site(tmp_path, opa, hydra, session_s=3.0, idle_s=3.0) as web:
        page = browser.new_page()
        _sign_in(page, web, "alice")
        # Without a reload: the event stream ends with the session, the page asks again.
        expect(page.locator("#sign-in-error")).to_have_text(
            "Your session ended: sign in again.", timeout=WAIT_MS
        )
        expect(page.get_by_role("link", name="Sign in", exact=True)).to_be_visible()
        expect(page.locator("#board")).to_be_hidden()


def test_a_step_up_denial_leads_to_signing_in_again(
    tmp_path, stepped_opa: OpaProcess, hydra: Hydra, browser: BrowserContext
):
    # The confidential tier wants approvers signed in within 15 minutes with MFA or a key.
    with site(tmp_path, stepped_opa, hydra) as web:
        alice = web.sign_in("alice")
        csrf = alice.get(web.url + "/auth/session", timeout=30).json()["csrf_token"]
        filed = alice.post(
            web.url + "/v1/requests", json=BODY,
            headers={"X-CSRF-Token": csrf, "Origin": web.url}, timeout=30,
        )  # fmt: skip
        assert filed.status_code == 201, filed.text
        req = filed.json()["id"]
        try:
            hydra.app.amr = ["pwd"]  # bob signs in with a password only
            page = browser.new_page()
            _sign_in(page, web, "bob")
            pending = page.locator("#pending .items li", has_text=req)
            pending.get_by_label("Country you approve from").fill("DE")
            pending.get_by_role("button", name="Approve").click()
            again = pending.get_by_role("link", name="Sign in again")
            expect(again).to_be_visible(timeout=WAIT_MS)
            expect(pending.locator(".step-up")).to_contain_text("sign in again")  # policy's words
            href = again.get_attribute("href") or ""
            for asked in ("prompt=login", "max_age=900", "login_hint=bob"):
                assert asked in href, href

            hydra.app.amr = ["pwd", "mfa"]  # this time the IdP asks for a second factor
            again.click()
            expect(page.locator("#who")).to_have_text("bob (user)", timeout=WAIT_MS)
            me = page.evaluate("fetch('/auth/session').then((r) => r.json())")
            assert "mfa" in me["amr"]
            pending = page.locator("#pending .items li", has_text=req)
            pending.get_by_label("Country you approve from").fill("DE")
            pending.get_by_role("button", name="Approve").click()
            expect(page.locator("#active .items")).to_contain_text(req, timeout=WAIT_MS)
        finally:
            hydra.app.amr = []
