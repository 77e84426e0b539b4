"""The console in real headless Chromium (Debian's), people signed in through a real Ory
Hydra, each in a browser context of their own: alice asks from the catalogue's form, bob
sees it in his queue without a reload (with policy's residency explanation, where alice
was, who else must approve) and approves; alice's page follows; bob revokes and alice sees
it; a denial's comment reaches her; her own Approve is refused with policy's reason; the
page's CSP allows no inline script and no form elsewhere; the queue is operable by
keyboard and the console usable 390 px wide."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import test_dashboard
import test_web_sign_in
from live_server import RESOURCE, wait_for
from playwright.sync_api import Browser, Page, expect, sync_playwright
from test_dashboard import FLAGS, LAPTOP, PHONE, WAIT_MS, _chromium
from test_web_sign_in import Site, site

from datavisa.engine.api.routes.dashboard import DASHBOARD, DASHBOARD_HEADERS
from datavisa.engine.store.sqlite import Store

hydra = test_web_sign_in.hydra
shots = test_dashboard.shots  # screenshots for a person to look at ($DATAVISA_SCREENSHOTS)

Person = Callable[..., Page]


@pytest.fixture
def chromium() -> Iterator[Browser]:
    found = _chromium()
    if found is None:
        pytest.skip("no chromium on this machine: `make setup` installs Debian's (as root)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=found, headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def web(tmp_path: Path, opa, hydra) -> Iterator[Site]:
    with site(tmp_path, opa, hydra) as running:
        yield running


@pytest.fixture
def person(chromium: Browser, web: Site) -> Person:
    """A page of the console signed in as `name` (Hydra's code flow), in a browser
    context of its own: its own cookie jar, as a person's own browser."""

    def signed_in(name: str, viewport: dict | None = None) -> Page:
        page = chromium.new_context(viewport=viewport or LAPTOP).new_page()
        page.goto(f"{web.url}/auth/login?login_hint={name}")
        expect(page.locator("#who")).to_have_text(f"{name} (user)", timeout=WAIT_MS)
        expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)
        expect(page.locator("#catalogue .items")).to_contain_text(RESOURCE, timeout=WAIT_MS)
        page.evaluate("window.__sameDocument = true")  # gone, were the page reloaded
        return page

    return signed_in


def _ask(page: Page, reason: str, actions: tuple[str, ...] = ("read",)) -> str:
    """Ask for RESOURCE from the catalogue's form; the id the console says it got."""
    page.locator("#catalogue .items li", has_text=RESOURCE).get_by_role(
        "button", name="Request"
    ).click()
    form = page.locator("#request-form")
    expect(form.get_by_label("Reason")).to_be_focused()
    for action in actions:
        form.get_by_label(action, exact=True).check()
    form.get_by_label("Reason").fill(reason)
    form.get_by_label("Country you work from").fill("DE")
    form.get_by_label("Duration").select_option(label="1h")
    form.get_by_role("button", name="Ask for access").click()
    outcome = page.locator("#rq-outcome")
    expect(outcome).to_contain_text("pending, needs 1 from data_owner", timeout=WAIT_MS)
    found = re.search(r"Asked: ([0-9a-f]+)", outcome.inner_text())
    assert found, outcome.inner_text()
    return found.group(1)


def test_request_approve_revoke_and_deny_between_two_people(person: Person, shots: Path):
    bob = person("bob")
    bob.locator("#queue").get_by_label("Country you approve from").fill("DE")
    bob.locator("#queue").get_by_label("Country you approve from").press("Enter")
    expect(bob.locator("#queue .items")).to_contain_text("Nothing waits", timeout=WAIT_MS)

    alice = person("alice")
    entry = alice.locator("#catalogue .items li", has_text=RESOURCE)
    expect(entry).to_contain_text("held in EU (European Union and EEA (GDPR))")
    expect(entry).to_contain_text("needs 1 from data_owner; from abroad also 1 from dpo")
    expect(entry).to_contain_text("at most 4h")
    first = _ask(alice, "INC-4711 churn report")
    mine = alice.locator("#mine .items li", has_text=first)
    expect(mine).to_contain_text("pending", timeout=WAIT_MS)

    # Alice's own Approve is there; the API refuses it and says why, in policy's words.
    own = alice.locator("#pending .items li", has_text=first)
    own.get_by_label("Country you approve from").fill("DE")
    own.get_by_role("button", name="Approve").click()
    refused = own.locator(".refusal")
    expect(refused).to_contain_text("nobody may approve their own request", timeout=WAIT_MS)
    expect(refused.locator("[data-code=self_approval]")).to_have_count(1)

    # Bob's queue shows it without a reload, with what policy says of it.
    queued = bob.locator("#queue .items li", has_text=first)
    expect(queued).to_contain_text("alice → eu-customer-analytics", timeout=WAIT_MS)
    expect(queued.locator(".allows")).to_contain_text("would allow read from DE for 1h")
    expect(queued.locator(".residency")).to_contain_text("inside the jurisdiction, no transfer")
    expect(queued.locator(".origin")).to_contain_text("requester located by")
    expect(queued.locator(".needed")).to_contain_text("still needed: 1 from data_owner")
    expect(queued.locator(".recent")).to_contain_text("no grant on this data")
    queued.get_by_role("button", name="Approve").click()
    expect(queued).to_have_count(0, timeout=WAIT_MS)
    bob.screenshot(path=shots / "console-laptop.png", full_page=True)

    # Alice's page follows: active, with time left.
    expect(mine).to_contain_text("active", timeout=WAIT_MS)
    expect(mine.locator(".left")).to_contain_text("ends in")

    # Bob revokes from the active grants; alice sees who and why.
    grant = bob.locator("#active .items li", has_text=first)
    grant.get_by_label(f"Why revoke {first}").fill("INC closed")
    grant.get_by_role("button", name="Revoke").click()
    expect(mine).to_contain_text("revoked by bob: INC closed", timeout=WAIT_MS)

    # Asked again; bob denies with a comment, alice reads it.
    second = _ask(alice, "INC-4712 second look")
    queued = bob.locator("#queue .items li", has_text=second)
    expect(queued.locator(".recent")).to_contain_text(
        "recent grants on this data: read 1h (revoked", timeout=WAIT_MS
    )
    queued.get_by_label("Comment").fill("use the aggregated view")
    queued.get_by_role("button", name="Deny").click()
    again = alice.locator("#mine .items li", has_text=second)
    expect(again).to_contain_text("denied by bob: use the aggregated view", timeout=WAIT_MS)
    assert alice.evaluate("window.__sameDocument") is True
    assert bob.evaluate("window.__sameDocument") is True


def test_the_page_runs_no_inline_script_and_sends_no_form_elsewhere(web: Site, person: Person):
    page = requests.get(web.url + "/", timeout=30)
    csp = page.headers["Content-Security-Policy"]
    assert csp == DASHBOARD_HEADERS["Content-Security-Policy"]
    for part in ("script-src 'self'", "form-action 'self'", "default-src 'none'"):
        assert part in csp, csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)  # every script is a file
    assert not re.search(r"\son[a-z]+=", page.text)  # no handler in an attribute
    for name in ("dashboard.js", "console.js", "stepup.js"):
        source = (DASHBOARD / name).read_text()
        for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert risky not in source, (name, risky)

    violations: list[str] = []
    alice = person("alice")
    alice.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    # Markup in a value stays text: a reason that looks like HTML is shown as written.
    _ask(alice, '<img src=x onerror="window.__owned=1">INC-1')
    mine = alice.locator("#mine .items li").first
    expect(mine).to_be_visible(timeout=WAIT_MS)
    pending = alice.locator("#pending .items li").first
    expect(pending).to_contain_text('<img src=x onerror="window.__owned=1">INC-1', timeout=WAIT_MS)
    assert alice.evaluate("window.__owned") is None
    assert alice.locator("#pending img").count() == 0
    assert violations == []


def test_the_queue_works_by_keyboard_and_the_console_on_a_phone(person: Person, shots: Path):
    alice = person("alice", PHONE)
    asked = _ask(alice, "INC-7 phone")  # the form works at 390 px
    assert alice.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    bob = person("bob", PHONE)
    bob.locator("#queue").get_by_label("Country you approve from").fill("DE")
    queued = bob.locator("#queue .items li", has_text=asked)
    expect(queued).to_be_visible(timeout=WAIT_MS)
    for sel in ("#catalogue", "#mine", "#queue", "#pending"):
        box = bob.locator(sel).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (sel, box)
    assert bob.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for name in ("Approve", "Deny"):
        button = queued.get_by_role("button", name=name).bounding_box()
        assert button and button["x"] + button["width"] <= PHONE["width"], name
    bob.screenshot(path=shots / "console-phone.png", full_page=True)

    # Keyboard only: into the comment, Tab to Deny, Enter.
    queued.get_by_label("Comment").focus()
    bob.keyboard.type("not from a phone")
    bob.keyboard.press("Tab")
    expect(queued.get_by_role("button", name="Deny")).to_be_focused()
    bob.keyboard.press("Enter")
    mine = alice.locator("#mine .items li", has_text=asked)
    expect(mine).to_contain_text("denied by bob: not from a phone", timeout=WAIT_MS)


def _lease(page: Page, grant_id: str) -> dict:
    """The grant's supervision as the API answers it, asked from `page` (its session)."""
    return page.evaluate(
        "(id) => fetch(`/v1/grants/${id}/supervision`).then((r) => r.json())", grant_id
    )


def test_a_supervisor_joins_from_the_console_stays_present_while_it_is_open(person: Person):
    """Alice asks to write (supervised by policy), bob approves; erin, a security officer,
    sees it under "To supervise", joins by keyboard from DE; the page renews her lease
    while it is open; ending a session nobody holds is refused as the server says; she
    leaves, joins again, and closing the page leaves for her; from another page she
    revokes it, and alice sees who."""
    alice = person("alice")
    grant_id = _ask(alice, "INC-33 fix the orders table", ("read", "write"))
    bob = person("bob")
    bob.locator("#queue").get_by_label("Country you approve from").fill("DE")
    bob.locator("#queue .items li", has_text=grant_id).get_by_role("button", name="Approve").click()

    erin = person("erin")
    erin.locator("#queue").get_by_label("Country you approve from").fill("DE")
    row = erin.locator("#supervise .items li", has_text=grant_id)
    expect(row).to_contain_text("no supervisor present", timeout=WAIT_MS)
    expect(row).to_contain_text("alice → eu-customer-analytics")
    row.get_by_role("button", name="Join as supervisor").focus()
    erin.keyboard.press("Enter")  # keyboard operable
    expect(row).to_contain_text("a supervisor is present", timeout=WAIT_MS)
    expect(row).to_contain_text("you supervise it: renewed every 5s")
    first = _lease(erin, grant_id)["supervisors"][0]["held_until"]
    wait_for(lambda: _lease(erin, grant_id)["supervisors"][0]["held_until"] != first,
             "the page's heartbeat to renew the lease", 15)  # fmt: skip
    # The badge on the board follows: a supervisor is present.
    expect(bob.locator("#active .items li", has_text=grant_id)).not_to_contain_text("paused")

    row.get_by_label("Session").fill("4242")
    row.get_by_role("button", name="End session").click()
    expect(row.locator(".refusal")).to_contain_text("no data system holds it", timeout=WAIT_MS)

    row.get_by_role("button", name="Leave").click()
    expect(row).to_contain_text("no supervisor present", timeout=WAIT_MS)
    assert _lease(erin, grant_id)["supervisors"] == []
    row.get_by_role("button", name="Join as supervisor").click()
    expect(row).to_contain_text("a supervisor is present", timeout=WAIT_MS)
    erin.close(run_before_unload=True)  # closing the page leaves
    watched = bob.locator("#supervise .items li", has_text=grant_id)
    expect(watched).to_contain_text("no supervisor present", timeout=WAIT_MS)
    assert _lease(bob, grant_id)["state"] == "absent"
    trail = bob.evaluate(
        "(id) => fetch(`/v1/audit?request_id=${id}&limit=1000`).then((r) => r.json())", grant_id
    )["events"]
    left = [e["detail"]["how"] for e in trail if e["event"] == "supervisor_left"]
    assert left == ["left", "left"], left  # the button, then the page closing: not a lapse

    again = person("erin")
    again.locator("#queue").get_by_label("Country you approve from").fill("DE")
    row = again.locator("#supervise .items li", has_text=grant_id)
    row.get_by_role("button", name="Join as supervisor").click()
    expect(row).to_contain_text("you supervise it", timeout=WAIT_MS)
    expect(row).to_contain_text("a supervisor is present", timeout=WAIT_MS)
    row.get_by_label(f"Why revoke {grant_id}").fill("saw a DROP coming")
    row.get_by_role("button", name="Revoke").click()
    mine = alice.locator("#mine .items li", has_text=grant_id)
    expect(mine).to_contain_text("revoked by erin: saw a DROP coming", timeout=WAIT_MS)
    expect(again.locator("#supervise .items")).to_contain_text(
        "No active grant needs", timeout=WAIT_MS
    )


def test_a_long_queue_shows_a_page_and_more_on_demand_by_keyboard(person: Person, web: Site):
    alice = person("alice")
    asked = _ask(alice, "INC-8 first of many")
    store = Store(web.db)  # 54 more like it (a person has one pending request per resource)
    try:
        filed = store.get(asked)
        assert filed is not None
        with store.transaction() as db:
            db["requests"].insert_all(
                [
                    dataclasses.replace(
                        filed, id=f"{n:012x}", created_at=filed.created_at + n
                    ).to_row()
                    for n in range(1, 55)
                ]
            )
    finally:
        store.close()

    bob = person("bob")
    bob.locator("#queue").get_by_label("Country you approve from").fill("DE")
    bob.locator("#queue").get_by_label("Country you approve from").press("Enter")
    rows = bob.locator("#queue .items li")
    expect(rows).to_have_count(50, timeout=WAIT_MS)
    expect(rows.first).to_contain_text(asked)  # oldest first
    expect(bob.locator("#queue .count")).to_have_text("(50 of 55)")
    more = bob.locator("#queue").get_by_role("button", name="Show more requests to approve")
    more.focus()
    bob.keyboard.press("Enter")
    expect(rows).to_have_count(55, timeout=WAIT_MS)
    expect(more).to_be_hidden()
    # Focus goes on to the first row the button added.
    expect(rows.nth(50).get_by_role("button", name="Approve")).to_be_focused()
    expect(rows.nth(54)).to_contain_text(f"{54:012x}")
