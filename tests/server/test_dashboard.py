"""The live dashboard in a real headless Chromium (Debian's): a new request and an alert
appear without a reload, and the page reads at laptop and phone widths.

Screenshots go to the test's tmp dir, or to $DATAVISA_SCREENSHOTS when set, for a person
to look at. Only 127.0.0.1 is reached; every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_server import RESOURCE
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

WAIT_MS = 15_000
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Quiet and self-contained: no sync, no updates, no first-run pages, nothing but loopback.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no chromium on this machine: `make setup` installs Debian's (as root)")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            user_data_dir=tmp_path / "profile",  # a fresh profile every time
            executable_path=chromium,
            headless=True,
            args=FLAGS,
            viewport=LAPTOP,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("DATAVISA_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_dashboard(browser: BrowserContext, url: str, token: str, viewport: dict) -> Page:
    page = browser.new_page()
    page.set_viewport_size(viewport)
    page.goto(f"{url}/#token={token}")
    expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)
    return page


def test_a_new_request_and_an_alert_appear_without_a_reload(monitored_api, browser, shots):
    token, _ = monitored_api.service.tokens.issue("audrey", "auditor")
    page = open_dashboard(browser, monitored_api.url, token, LAPTOP)
    assert "#token" not in page.url  # the token left the address bar
    expect(page.locator("#who")).to_have_text("audrey (auditor)")
    expect(page.locator("#pending .items")).to_contain_text("Nothing waits for approval.")
    page.evaluate("window.__sameDocument = true")  # gone, were the page reloaded

    req = monitored_api.request("alice", reason="INC-4711 churn report")
    pending = page.locator("#pending .items li", has_text=req["id"])
    expect(pending).to_contain_text("alice → eu-customer-analytics", timeout=WAIT_MS)
    expect(pending).to_contain_text("needs 1 from data_owner")
    expect(pending.locator(".left")).to_contain_text("decide within")

    check = {"resource": "eu-payments-ledger", "action": "read", "location": "DE"}
    monitored_api.as_("alice").post("/v1/access/check", check)
    alert = page.locator("#alerts .items li", has_text="no_grant_on_restricted")
    expect(alert).to_contain_text("alice tried read on restricted data", timeout=WAIT_MS)
    expect(alert.locator(".badge")).to_have_text("high")
    expect(page.locator("#decisions .items")).to_contain_text("access · alice → eu-payments-ledger")

    monitored_api.grant("kenji", location="DE", reason="INC-7")  # approved at once by bob
    expect(page.locator("#active .items")).to_contain_text("kenji → eu-customer-analytics")
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=shots / "dashboard-laptop.png", full_page=True)

    alert.get_by_role("button", name="Acknowledge").click()  # an auditor changes nothing
    expect(alert.get_by_role("button", name="Not allowed")).to_be_visible(timeout=WAIT_MS)
    admin = monitored_api.as_("erin", "admin")  # acknowledges; the auditor's page follows
    [open_alert] = admin.get("/v1/alerts", params={"rule": "no_grant_on_restricted"}).json()[
        "alerts"
    ]
    assert admin.post(f"/v1/alerts/{open_alert['id']}/ack").ok
    expect(alert).to_have_count(0, timeout=WAIT_MS)  # acknowledged: no longer open


def test_the_dashboard_reads_on_a_phone(monitored_api, browser, shots):
    monitored_api.request("alice", reason="INC-4711 churn report")
    body = {"resource": RESOURCE, "duration": "10m", "location": "DE", "reason": "INC-99 outage"}
    monitored_api.as_("oscar").post("/v1/break-glass", body)
    token, _ = monitored_api.service.tokens.issue("audrey", "auditor")
    page = open_dashboard(browser, monitored_api.url, token, PHONE)
    expect(page.locator("#alerts .items")).to_contain_text("break_glass_used", timeout=WAIT_MS)
    expect(page.locator("#pending .items")).to_contain_text("alice → eu-customer-analytics")
    boxes = [page.locator(f"#{s}").bounding_box() for s in ("pending", "alerts", "active")]
    assert len({round(b["x"]) for b in boxes}) == 1  # one column
    assert all(b["x"] >= 0 and b["x"] + b["width"] <= PHONE["width"] for b in boxes)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=shots / "dashboard-phone.png", full_page=True)


def test_a_user_token_sees_requests_but_not_alerts_and_a_bad_one_is_asked_again(
    monitored_api, browser
):
    token, _ = monitored_api.service.tokens.issue("alice")
    page = open_dashboard(browser, monitored_api.url, token, LAPTOP)
    expect(page.locator("#alerts .items")).to_contain_text("Not for a user token.")
    expect(page.locator("#decisions .items")).to_contain_text("Not for a user token.")
    page.get_by_role("button", name="Forget token").click()
    page.fill("#token", "dvt_000000000000_not-a-token")
    page.get_by_role("button", name="Show the dashboard").click()
    expect(page.locator("#login-error")).to_contain_text("unknown or revoked")
    expect(page.locator("#board")).to_be_hidden()


def test_an_approver_approves_from_the_dashboard(monitored_api, browser):
    req = monitored_api.request("alice", reason="INC-4711 churn report")
    token, _ = monitored_api.service.tokens.issue("bob")
    page = open_dashboard(browser, monitored_api.url, token, LAPTOP)
    pending = page.locator("#pending .items li", has_text=req["id"])
    pending.get_by_label("Country you approve from").fill("de")
    pending.get_by_role("button", name="Approve").click()
    expect(page.locator("#active .items")).to_contain_text(req["id"], timeout=WAIT_MS)
    expect(pending).to_have_count(0)
    approved = monitored_api.as_("bob").get(f"/v1/requests/{req['id']}/approvals").json()
    assert [(a["approver"], a["location"]) for a in approved["approvals"]] == [("bob", "DE")]


def test_a_transfer_shows_as_a_copy_to_its_region(monitored_api, browser):
    body = {"resource": RESOURCE, "target_region": "azure:westeurope", "keep": "1h"}
    filed = monitored_api.as_("alice").post(
        "/v1/transfers",
        body | {"window": "30m", "reason": "CHG-1 nightly sync", "importer": "acme-gmbh"},
    )
    assert filed.status_code == 201, filed.text
    token, _ = monitored_api.service.tokens.issue("bob")
    page = open_dashboard(browser, monitored_api.url, token, LAPTOP)
    pending = page.locator("#pending .items li", has_text=filed.json()["id"])
    expect(pending.locator(".badge.kind")).to_have_text("transfer", timeout=WAIT_MS)
    expect(pending).to_contain_text("copy to azure:westeurope for acme-gmbh")
    access = monitored_api.request("alice", reason="INC-4711 churn report")  # no badge
    plain = page.locator("#pending .items li", has_text=access["id"])
    expect(plain).to_contain_text("alice → eu-customer-analytics", timeout=WAIT_MS)
    expect(plain.locator(".badge.kind")).to_have_count(0)
