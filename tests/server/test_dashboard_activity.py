"""The dashboard shows, under each active grant, where it took effect and the newest
statements its database role ran, as they are recorded (no reload). Real Chromium."""

from __future__ import annotations

import time

from playwright.sync_api import expect
from test_dashboard import LAPTOP, WAIT_MS, browser, open_dashboard, shots  # noqa: F401


def test_an_active_grant_shows_what_its_database_role_ran(monitored_api, browser, shots):  # noqa: F811
    token, _ = monitored_api.service.tokens.issue("audrey", "auditor")
    page = open_dashboard(browser, monitored_api.url, token, LAPTOP)
    grant = monitored_api.grant("kenji", location="DE", reason="INC-8")
    row = page.locator("#active .items li", has_text=grant["id"])
    expect(row).to_contain_text("kenji → eu-customer-analytics", timeout=WAIT_MS)

    store = monitored_api.service.engine.store
    store.set_provisioning("postgresql", grant["id"], "provisioned", "role dv_x", time.time())
    store.add_activity(
        [{"grant_id": grant["id"], "at": time.time(), "sink": "postgresql", "session": "s1",
          "database": "analytics", "statement": "SELECT * FROM customers WHERE id = '***'"}],
        "test", 1,
    )  # fmt: skip
    expect(row).to_contain_text("postgresql: provisioned", timeout=WAIT_MS)
    expect(row.locator(".statement")).to_have_text("SELECT * FROM customers WHERE id = '***'")
    page.screenshot(path=shots / "dashboard-activity.png", full_page=True)
