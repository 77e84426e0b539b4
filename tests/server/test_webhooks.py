"""Webhooks: alerts and approval requests reach a real HTTP receiver on 127.0.0.1 as
Slack-compatible JSON, failed deliveries are tried again with backoff, and every attempt
is recorded. Bounded waits only; nothing asserts how long a step took."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from live_server import RESOURCE, Caller, wait_for

from datavisa.engine.api import config
from datavisa.engine.api.service import Service
from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.model.errors import DataVisaError
from datavisa.engine.monitoring.monitor import Monitor
from datavisa.engine.monitoring.notify import Notifier, Webhook
from datavisa.engine.policy.process import free_port, stop_process

DATAVISA = Path(sys.executable).with_name("datavisa")


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps every JSON body it is sent, answering
    `fail_with` to the first `fail_first` of them."""

    def __init__(self, fail_first: int = 0, fail_with: int = 503) -> None:
        self.bodies: list[dict] = []
        self.paths: list[str] = []  # of every request, failed or not
        self.received: list[tuple[str, dict]] = []
        self.fail_first, self.fail_with = fail_first, fail_with
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.paths.append(self.path)
                failing = receiver.fail_first > 0
                receiver.fail_first -= failing
                if not failing:
                    receiver.bodies.append(body)
                    receiver.received.append((self.path, body))
                self.send_response(receiver.fail_with if failing else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def texts(self) -> list[str]:
        return [b["text"] for b in self.bodies]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@contextlib.contextmanager
def notifying(service: Service, *hooks: Webhook, **options) -> Iterator[Notifier]:
    """The service's engine with a monitor and a notifier sending to `hooks`, running."""
    monitor = Monitor(service.engine.log, service.engine.opa)
    notifier = Notifier(
        service.engine.store, hooks, base_url="http://127.0.0.1:8470", backoff_s=0.05, **options
    )
    monitor.listeners.append(notifier.alert)
    notifier.start()
    monitor.start()
    try:
        yield notifier
    finally:
        monitor.stop()
        notifier.stop()


def break_glass(service: Service):
    return service.engine.break_glass("oscar", RESOURCE, ["read"], 600, "DE", "INC-99 outage")


def test_an_alert_arrives_as_slack_compatible_json_and_its_delivery_is_recorded(service, receiver):
    hook = Webhook(receiver.url + "/services/T1/B2/secret", "sec", frozenset({"alerts"}))
    with notifying(service, hook) as notifier:
        grant = break_glass(service)
        wait_for(lambda: any("break_glass_used" in t for t in receiver.texts()), "the alert")
        [body] = [b for b in receiver.bodies if "break_glass_used" in b["text"]]
        assert body["text"].startswith("[high] break_glass_used: oscar broke glass")
        assert body["blocks"][0]["type"] == "section"
        assert grant.decision_id in json.dumps(body["blocks"])
        assert receiver.paths[0] == "/services/T1/B2/secret"
        alert = service.alerts.query(rule="break_glass_used")[0]
        [attempt] = wait_for(lambda: notifier.deliveries(str(alert.id)), "the delivery record")
    assert (attempt["kind"], attempt["webhook"], attempt["attempt"]) == ("alerts", "sec", 1)
    assert (attempt["status"], attempt["outcome"], attempt["error"]) == (200, "delivered", None)


def test_a_failing_receiver_gets_the_alert_on_a_later_attempt(service):
    with Receiver(fail_first=2) as flaky, notifying(service, Webhook(flaky.url, "flaky")) as n:
        break_glass(service)
        wait_for(lambda: flaky.bodies, "a delivery that succeeded")
        ref = str(service.alerts.query(rule="break_glass_used")[0].id)
        attempts = wait_for(lambda: n.deliveries(ref)[2:] and n.deliveries(ref), "3 attempts")
    assert [(a["attempt"], a["status"], a["outcome"]) for a in attempts] == [
        (1, 503, "retrying"),
        (2, 503, "retrying"),
        (3, 200, "delivered"),
    ]
    assert len(flaky.paths) == 3  # and no more once it was delivered


def test_a_refusal_is_final_and_an_unreachable_webhook_is_given_up_after_the_last_attempt(
    service,
):
    dead = Webhook(f"http://127.0.0.1:{free_port()}/hooks/very-secret-path", "dead")
    with (
        Receiver(fail_first=99, fail_with=400) as refusing,
        notifying(service, Webhook(refusing.url, "refusing"), dead, attempts=3) as notifier,
    ):
        break_glass(service)
        ref = str(wait_for(lambda: service.alerts.query(rule="break_glass_used"), "alert")[0].id)
        wait_for(lambda: len(notifier.deliveries(ref)) == 4, "1 + 3 attempts")
        by_hook: dict[str, list[dict]] = {}
        for attempt in notifier.deliveries(ref):
            by_hook.setdefault(attempt["webhook"], []).append(attempt)
    assert [(a["status"], a["outcome"]) for a in by_hook["refusing"]] == [(400, "failed")]
    assert [a["outcome"] for a in by_hook["dead"]] == ["retrying", "retrying", "failed"]
    assert all(a["status"] is None and "ConnectionError" in a["error"] for a in by_hook["dead"])
    assert not any("very-secret-path" in a["error"] for a in by_hook["dead"])


def test_a_new_request_is_sent_to_its_approvers_with_what_to_run(service, receiver):
    approvals = frozenset({"approvals"})
    owners = Webhook(receiver.url + "/owners", "owners", approvals, frozenset({"data_owner"}))
    security = Webhook(receiver.url + "/sec", "sec", approvals, frozenset({"security_officer"}))
    alerts_only = Webhook(receiver.url + "/alerts", "alerts", frozenset({"alerts"}))
    with notifying(service, owners, security, alerts_only) as notifier:
        req = service.engine.request("alice", RESOURCE, ["read"], 1200, "DE", "INC-4711")
        wait_for(lambda: notifier.deliveries(req.id), "the approval request")
        service.engine.request("oscar", "eu-service-metrics", ["read"], 600, "DE", "no approval")
        notifier.scan_requests()
    # Only to the group this request needs (alerts, such as outside_working_hours, may come).
    approvals = [(path, body) for path, body in receiver.received if path != "/alerts"]
    assert [path for path, _ in approvals] == ["/owners"]
    [(_, body)] = approvals
    text = body["text"]
    assert "alice asks for access to eu-customer-analytics (read) from DE for 20m" in text
    assert "Needs 1 from data_owner" in text and "INC-4711" in text
    assert f"datavisa approve {req.id} --from CC --server http://127.0.0.1:8470" in text
    assert f"curl -X POST http://127.0.0.1:8470/v1/requests/{req.id}/approve" in text
    assert f"datavisa deny {req.id}" in json.dumps(body["blocks"])


def test_webhooks_are_read_from_the_serve_config(tmp_path):
    path = tmp_path / "serve.yaml"
    path.write_text(
        "public_url: https://datavisa.example.com/\n"
        "webhooks:\n"
        "  - url: https://hooks.example.com/services/T/B/X\n"
        "    name: security\n"
        "    kinds: [alerts]\n"
        "  - url: http://127.0.0.1:9999/owners\n"
        "    groups: [data_owner]\n"
    )
    cfg = config.load(path)
    assert cfg.public_url == "https://datavisa.example.com"
    assert cfg.webhooks == (
        Webhook("https://hooks.example.com/services/T/B/X", "security", frozenset({"alerts"})),
        Webhook(
            "http://127.0.0.1:9999/owners",
            "127.0.0.1",
            frozenset({"alerts", "approvals"}),
            frozenset({"data_owner"}),
        ),
    )


@pytest.mark.parametrize(
    ("hooks", "problem"),
    [
        ("- {url: ftp://x/y}", "webhooks[0]: webhook url must be http(s)"),
        ("- {url: http://x/y, kinds: [sms]}", "kinds are among alerts, approvals"),
        ("- {url: http://x/y, secret: 1}", "unknown setting webhooks[0].secret"),
        ("- {name: x}", "webhooks[0].url is required"),
        ("- {url: http://x/y, groups: owners}", "webhooks[0].groups must be a list"),
    ],
)
def test_a_bad_webhook_setting_is_refused_with_where_it_is(tmp_path, hooks, problem):
    path = tmp_path / "serve.yaml"
    path.write_text(f"webhooks:\n  {hooks}\n")
    with pytest.raises(DataVisaError) as e:
        config.load(path)
    assert problem in str(e.value)


def test_datavisa_serve_delivers_an_alert_to_the_configured_webhook(tmp_path, opa_args, receiver):
    """The whole way: a `datavisa serve` process, its monitor and notifier, a receiver."""
    db = tmp_path / "datavisa.db"
    tokens = TokenStore(db)
    token, _ = tokens.issue("oscar")
    tokens.close()
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(f"webhooks:\n  - {{url: {receiver.url}/hook, name: test}}\n")
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(DATAVISA), "serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}",
         "--db", str(db), *opa_args],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _healthy(url) or proc.poll() is not None, "serve to be ready", 60)
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        body = {"resource": RESOURCE, "duration": "10m", "location": "DE", "reason": "INC-99"}
        assert Caller(url, token).post("/v1/break-glass", body).status_code == 201
        wait_for(lambda: any("break_glass_used" in t for t in receiver.texts()), "the alert")
    finally:
        stop_process(proc)
        log.close()
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()
    assert "1 webhook(s)" in (tmp_path / "serve.log").read_text()


def _healthy(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.stores  # on SQLite and on PostgreSQL
def test_two_engines_notifiers_on_one_store_announce_a_request_once(service, receiver):
    """Each engine sharing a store runs a notifier scanning the same audit trail: the one
    that claims a request (moves the cursor past it) announces it, the other does not."""
    owners = Webhook(receiver.url + "/owners", "owners", frozenset({"approvals"}))
    one, other = (Notifier(service.engine.store, (owners,), scan_s=3600).start() for _ in range(2))
    try:
        for _ in range(3):
            req = service.engine.request("alice", RESOURCE, ["read"], 1200, "DE", "INC-4712")
            barrier = threading.Barrier(2)

            def scan(notifier: Notifier, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                notifier.scan_requests()

            threads = [threading.Thread(target=scan, args=(n,)) for n in (one, other)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wait_for(lambda req=req: one.deliveries(req.id), "the approval request")
            service.engine.cancel(req.id, "alice")
    finally:
        one.stop()
        other.stop()
    assert len(receiver.received) == 3


def test_a_foreign_authoritys_request_reaches_the_customers_webhook_refused_or_not(api, receiver):
    hook = Webhook(receiver.url + "/customer", "customer", frozenset({"alerts"}))
    carol = api.as_("carol")
    body = {
        "resource": "eu-service-metrics",
        "target_region": "aws:us-east-1",
        "importer": "acme-inc",
        "requester_kind": "foreign_public_authority",
        "window": "1h",
        "reason": "LEGAL-7 US court order",
    }
    with notifying(api.service, hook):
        refused = carol.post("/v1/transfers", body)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["field"] == "evidence"
        assert "Data Act (EU) 2023/2854 Art. 32" in refused.json()["error"]["message"]
        allowed = carol.post("/v1/transfers", body | {"evidence": ["international_agreement"]})
        assert allowed.status_code == 201, allowed.text
        assert allowed.json()["requester_kind"] == "foreign_public_authority"
        notices = wait_for(
            lambda: (
                [t for t in receiver.texts() if "foreign_authority_request" in t][1:]
                and [t for t in receiver.texts() if "foreign_authority_request" in t]
            ),
            "both notices",
        )
    assert {"refused" in t for t in notices} == {True, False}
    assert all("eu-service-metrics" in t and "Data Act" in t for t in notices)
