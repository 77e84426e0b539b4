"""Alerts over HTTP: GET /v1/alerts (paged, filtered) for auditor and admin tokens and
acknowledgement by admins, alert counts in /metrics, the live event stream and the
dashboard's files."""

from __future__ import annotations

import json

import pytest
import requests
from live_server import RESOURCE, wait_for

pytestmark = pytest.mark.stores  # each test on SQLite and on PostgreSQL

RESTRICTED = "eu-payments-ledger"
OTHER_RESTRICTED = ("us-itar-designs", "us-cjis-records")


def break_glass(api) -> dict:
    body = {"resource": RESOURCE, "duration": "10m", "location": "DE", "reason": "INC-99 outage"}
    response = api.as_("oscar").post("/v1/break-glass", body)
    assert response.status_code == 201, response.text
    return response.json()


def alerts(api, **params) -> list[dict]:
    response = api.as_("audrey", "auditor").get("/v1/alerts", params=params)
    assert response.status_code == 200, response.text
    return response.json()["alerts"]


def test_alerts_are_for_auditor_and_admin_tokens(monitored_api):
    assert monitored_api.anonymous().get("/v1/alerts").status_code == 401
    for refused in (
        monitored_api.as_("alice").get("/v1/alerts"),
        monitored_api.as_("db-proxy", "service").get("/v1/alerts"),
    ):
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
    assert monitored_api.as_("erin", "admin").get("/v1/alerts").status_code == 200
    assert monitored_api.as_("audrey", "auditor").get("/v1/alerts").json() == {
        "alerts": [],
        "next_after": None,
    }


def test_a_break_glass_shows_up_as_an_alert_citing_its_decision(monitored_api):
    grant = break_glass(monitored_api)
    [alert] = wait_for(lambda: alerts(monitored_api, rule="break_glass_used"), "the alert")
    assert (alert["severity"], alert["subject"], alert["state"]) == ("high", "oscar", "open")
    assert alert["evidence"] == [grant["decision_id"]]
    assert alert["raised_at"].endswith("Z") and alert["acked_at"] is None
    logged = monitored_api.as_("audrey", "auditor").get("/v1/logs", params={"subject": "oscar"})
    assert grant["decision_id"] in [e["decision_id"] for e in logged.json()["events"]]
    one = monitored_api.as_("audrey", "auditor").get(f"/v1/alerts/{alert['id']}")
    assert one.json() == alert


def test_alerts_filter_and_page(monitored_api):
    break_glass(monitored_api)
    for resource in (RESTRICTED, RESTRICTED, RESTRICTED, *OTHER_RESTRICTED):
        monitored_api.as_("alice").post(
            "/v1/access/check", {"resource": resource, "action": "read", "location": "DE"}
        )

    def per_resource():  # repeats on one resource are counted on one alert
        found = alerts(monitored_api, rule="no_grant_on_restricted")
        return sorted((a["dedup_key"], a["count"]) for a in found)

    want = sorted([(RESTRICTED, 3), *((r, 1) for r in OTHER_RESTRICTED)])
    wait_for(lambda: per_resource() == want, "3 alerts, one counting 3 raises")
    wait_for(lambda: alerts(monitored_api, rule="break_glass_used"), "the break-glass alert")
    assert {a["subject"] for a in alerts(monitored_api, severity="high")} == {"alice", "oscar"}
    assert {a["rule"] for a in alerts(monitored_api, subject="oscar")} >= {"break_glass_used"}
    assert alerts(monitored_api, severity="critical") == []
    auditor = monitored_api.as_("audrey", "auditor")
    first = auditor.get("/v1/alerts", params={"subject": "alice", "limit": 2}).json()
    assert len(first["alerts"]) == 2 and first["next_after"] == first["alerts"][-1]["id"]
    rest = auditor.get("/v1/alerts", params={"subject": "alice", "after": first["next_after"]})
    assert len(rest.json()["alerts"]) == 1 and rest.json()["next_after"] is None
    bad = auditor.get("/v1/alerts", params={"severity": "loud"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "severity"


def test_an_alert_is_acknowledged_once_by_an_admin(monitored_api):
    break_glass(monitored_api)
    [alert] = wait_for(lambda: alerts(monitored_api, rule="break_glass_used"), "the alert")
    path = f"/v1/alerts/{alert['id']}/ack"
    for role in ("user", "service", "auditor"):  # the auditor reads; it changes nothing
        assert monitored_api.as_("alice", role).post(path).status_code == 403
    acked = monitored_api.as_("erin", "admin").post(path).json()
    assert (acked["state"], acked["acked_by"]) == ("acked", "erin")
    again = monitored_api.as_("frank", "admin").post(path).json()
    assert again == acked
    assert alerts(monitored_api, state="open", rule="break_glass_used") == []
    missing = monitored_api.as_("erin", "admin").post("/v1/alerts/999/ack")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "alert_id"


def test_metrics_count_alerts_by_rule_and_severity(monitored_api):
    break_glass(monitored_api)
    wait_for(lambda: alerts(monitored_api, rule="break_glass_used"), "the alert")
    text = requests.get(monitored_api.url + "/metrics", timeout=10).text
    assert 'datavisa_alerts_total{rule="break_glass_used",severity="high"} 1.0' in text
    assert 'datavisa_alerts_open{rule="break_glass_used",severity="high"} 1.0' in text


def test_metrics_count_repeats_on_their_alert(monitored_api):
    for _ in range(3):
        monitored_api.as_("alice").post(
            "/v1/access/check", {"resource": RESTRICTED, "action": "read", "location": "DE"}
        )
    wait_for(
        lambda: [a["count"] for a in alerts(monitored_api, rule="no_grant_on_restricted")] == [3],
        "one alert raised 3 times",
    )
    text = requests.get(monitored_api.url + "/metrics", timeout=10).text
    rule = 'rule="no_grant_on_restricted",severity="high"'
    assert f"datavisa_alerts_total{{{rule}}} 1.0" in text
    assert f"datavisa_alerts_open{{{rule}}} 1.0" in text
    assert f"datavisa_alert_raises_total{{{rule}}} 3.0" in text


def test_the_event_stream_says_when_the_data_moved(monitored_api):
    caller = monitored_api.as_("alice")
    with caller.session.get(caller.base + "/v1/events", stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = _frames(response)
        first = next(frames)
        assert first["log"] == 0
        caller.post("/v1/access/check", {"resource": RESOURCE, "action": "read", "location": "DE"})
        moved = next(frames)
        assert moved["log"] == 1 and moved["now"].endswith("Z")
    assert monitored_api.anonymous().get("/v1/events").status_code == 401


def test_a_revoked_tokens_event_stream_ends(monitored_api):
    token, record = monitored_api.service.tokens.issue("erin", "user")
    headers = {"Authorization": f"Bearer {token}"}
    # Read timeout 10 s, under the stream's 15 s keep-alive: a stream that went on would
    # fail the test, not hang it for its 600 s.
    with requests.get(
        monitored_api.url + "/v1/events", headers=headers, stream=True, timeout=(5, 10)
    ) as response:
        frames = _frames(response)
        assert next(frames)["log"] >= 0
        monitored_api.service.tokens.revoke(record.id)
        for _ in frames:  # the revoke's own change, perhaps; then the stream ends
            pass
    assert (
        requests.get(monitored_api.url + "/v1/events", headers=headers, timeout=10).status_code
        == 401
    )


def _frames(response):
    """The data of each `change` event in a server-sent event stream."""
    buffer = ""
    for chunk in response.iter_content(chunk_size=None, decode_unicode=True):
        buffer += chunk
        while "\n\n" in buffer:
            frame, buffer = buffer.split("\n\n", 1)
            lines = frame.splitlines()
            if "event: change" in lines:
                yield json.loads(next(x for x in lines if x.startswith("data: "))[6:])


def test_the_dashboard_is_served_with_a_strict_content_policy(monitored_api):
    page = requests.get(monitored_api.url + "/", timeout=10)
    assert page.status_code == 200 and "<title>DataVisa" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = requests.get(monitored_api.url + "/dashboard/dashboard.js", timeout=10)
    assert script.headers["content-type"].startswith("text/javascript")
    assert "/v1/events" in script.text
    assert requests.get(monitored_api.url + "/dashboard/nope.js", timeout=10).status_code == 404
    paths = requests.get(monitored_api.url + "/openapi.json", timeout=10).json()["paths"]
    assert "/v1/alerts" in paths and "/v1/events" not in paths  # a stream: no fuzzing it
