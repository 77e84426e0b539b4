"""`datavisa serve` with a PostgreSQL connection (config `connections:`): credentials over
HTTP, the admin password nowhere, activity from the server's own log, and a kill -9 that
leaves no orphan role after restart. A real serve process, a real throwaway cluster."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import psycopg
import requests
from live_server import IN_GERMANY_CONFIG, Caller, kill_hard
from tcp_faults import CuttableProxy
from test_supervision import _serve, _wait_for

from datavisa.cli.local_postgres import LocalPostgres
from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.connectors.postgresql import MANAGED, role_name
from datavisa.engine.ledger.decision_log import DecisionLog, load_key
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store.sqlite import Store

RESOURCE = "eu-customer-analytics"


def _config(tmp_path: Path, postgres: LocalPostgres) -> Path:
    (tmp_path / "analytics.dsn").write_text(postgres.dsn() + "\n")
    config = tmp_path / "serve.yaml"
    config.write_text(
        "reconcile_every: 1s\n"
        + IN_GERMANY_CONFIG  # the holder calls from Germany
        + "connections:\n"
        "  analytics:\n"
        "    kind: postgresql\n"
        "    dsn_file: analytics.dsn\n"
        f"    log_dir: {postgres.log_dir}\n"
    )
    return config


def _grant(served) -> str:
    req = served.as_("alice").post(
        "/v1/requests", {"resource": RESOURCE, "duration": "1h", "location": "DE", "reason": "x"}
    )
    assert req.status_code == 201, req.text
    approved = served.as_("bob").post(f"/v1/requests/{req.json()['id']}/approve")
    assert approved.status_code == 200 and approved.json()["state"] == "active", approved.text
    return req.json()["id"]


def _role_exists(postgres: LocalPostgres, name: str) -> bool:
    with psycopg.connect(postgres.dsn(), autocommit=True) as db:
        return (
            db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone() is not None
        )


def test_credentials_over_http_activity_recorded_and_the_admin_password_nowhere(
    tmp_path: Path, postgres: LocalPostgres, analytics: str
):
    with _serve(tmp_path, "--config", str(_config(tmp_path, postgres))) as served:
        grant_id = _grant(served)
        alice = served.as_("alice")
        path = f"/v1/grants/{grant_id}/credentials"
        abroad = alice.get(path, params={"location": "US"})
        assert abroad.status_code == 403, abroad.text
        assert served.as_("alice").get(path).status_code == 422  # location is required
        issued = alice.get(path, params={"location": "DE"})
        assert issued.status_code == 200, issued.text
        body = issued.json()
        assert set(body["env"]) == {"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD"}
        assert alice.get(path, params={"location": "DE"}).status_code == 409  # once
        with psycopg.connect(body["url"], autocommit=True) as db:
            db.execute("SELECT email FROM customers WHERE email = 'ada@example.com'")
        _wait_for(
            lambda: any(
                "customers" in a["statement"]
                for a in served.as_("bob").get(f"/v1/grants/{grant_id}/activity").json()["activity"]
            ),
            "the statement to be recorded against the grant",
        )
        activity = served.as_("bob").get(f"/v1/grants/{grant_id}/activity").json()["activity"]
        ran = [a["statement"] for a in activity if "customers" in a["statement"]]
        assert ran == ["SELECT email FROM customers WHERE email = '***'"]  # masked
        health = requests.get(served.url + "/health", timeout=10).text
        answers = issued.text + str(health) + alice.get(f"/v1/requests/{grant_id}").text
    admin_password = postgres.password
    assert admin_password not in answers
    assert admin_password not in (tmp_path / "serve.log").read_text()


def test_kill_9_leaves_no_orphan_role_after_restart(
    tmp_path: Path, postgres: LocalPostgres, analytics: str, opa: OpaProcess
):
    config = _config(tmp_path, postgres)
    with _serve(tmp_path, "--config", str(config)) as served:
        grant_id = _grant(served)
        assert _role_exists(postgres, role_name(grant_id))
        kill_hard(served.proc)  # SIGKILL: no shutdown at all

    # While serve is down: the grant is revoked in the store (the outbox row waits for the
    # database), and someone copies a managed role by hand.
    db = tmp_path / "datavisa.db"
    store = Store(db)
    engine = Engine(store, opa.client(), revision="test", log=DecisionLog(store, load_key(db)))
    engine.grants.sync()  # the session's OPA, whichever test this session ran first
    engine.revoke(grant_id, "bob", "incident over")
    store.close()
    copy = f"dv_copy{grant_id}"
    with psycopg.connect(postgres.dsn(), autocommit=True) as pg:
        pg.execute(f'CREATE ROLE "{copy}" LOGIN IN ROLE {MANAGED}')

    with _serve(tmp_path, "--config", str(config)) as again:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            _role_exists(postgres, role_name(grant_id)) or _role_exists(postgres, copy)
        ):
            time.sleep(0.1)
        assert not _role_exists(postgres, role_name(grant_id))
        assert not _role_exists(postgres, copy)
        trail = again.as_("bob").get("/v1/audit").json()["events"]
        assert any(e["event"] == "sink_drift" for e in trail)
        tokens = TokenStore(tmp_path / "datavisa.db")
        admin = Caller(again.url, tokens.issue("erin", "admin")[0])
        tokens.close()

        def drift() -> list:
            return admin.get("/v1/alerts", params={"rule": "sink_drift"}).json()["alerts"]

        _wait_for(drift, "the drift alert")
        [alert] = drift()
        assert copy in alert["message"] and alert["severity"] == "high"


def test_kill_9_in_the_middle_of_provisioning_leaves_no_orphan_role(
    tmp_path: Path, postgres: LocalPostgres, analytics: str
):
    """serve is killed while its CREATE ROLE waits inside the provisioning transaction (a
    blocker holds the same role name, uncommitted): PostgreSQL rolls the half-made role
    back, and after the restart the live grant gets its role, once, and nothing else."""
    config = _config(tmp_path, postgres)
    with _serve(tmp_path, "--config", str(config)) as served:
        req = (
            served.as_("alice")
            .post(
                "/v1/requests",
                {"resource": RESOURCE, "duration": "1h", "location": "DE", "reason": "x"},
            )
            .json()
        )
        role = role_name(req["id"])
        blocker = psycopg.connect(postgres.dsn())
        blocker.execute(f'CREATE ROLE "{role}"')  # uncommitted: serve's CREATE ROLE waits
        approving = threading.Thread(
            target=lambda: _quietly(served.as_("bob").post, f"/v1/requests/{req['id']}/approve"),
            daemon=True,
        )
        approving.start()
        with psycopg.connect(postgres.dsn(), autocommit=True) as watch:
            _wait_for(
                lambda: watch.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'CREATE ROLE%%'"
                ).fetchone(),
                "serve's CREATE ROLE to wait",
            )
        kill_hard(served.proc)
        blocker.rollback()
        blocker.close()
        approving.join(15)
    with psycopg.connect(postgres.dsn(), autocommit=True) as pg:
        _wait_for(
            lambda: (
                not pg.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'CREATE ROLE%%' AND pid <> "
                    "pg_backend_pid()"
                ).fetchone()
            ),
            "the killed serve's transaction to end",
        )
    assert not _role_exists(postgres, role)  # rolled back with the killed transaction

    with _serve(tmp_path, "--config", str(config)) as again:
        _wait_for(lambda: _role_exists(postgres, role), "the live grant's role after restart")
        assert again.as_("bob").get(f"/v1/requests/{req['id']}").json()["state"] == "active"
        with psycopg.connect(postgres.dsn(), autocommit=True) as pg:
            managed = [name for (name,) in pg.execute(
                "SELECT r.rolname FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid "
                "JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = %s", [MANAGED]
            ).fetchall()]  # fmt: skip
        assert managed == [role]


def _quietly(call, *args) -> None:
    with contextlib.suppress(requests.RequestException):  # serve died under it
        call(*args)


def test_a_removal_the_database_cannot_confirm_is_pending_until_an_admin_abandons_it(
    tmp_path: Path, postgres: LocalPostgres, analytics: str
):
    proxy = CuttableProxy("127.0.0.1", postgres.port)
    (tmp_path / "analytics.dsn").write_text(
        postgres.dsn().replace(f":{postgres.port}/", f":{proxy.port}/") + "\n"
    )
    config = tmp_path / "serve.yaml"
    config.write_text(
        "connections:\n  analytics:\n    kind: postgresql\n    dsn_file: analytics.dsn\n"
    )
    try:
        with _serve(tmp_path, "--config", str(config)) as served:
            grant_id = _grant(served)
            proxy.set_cut(True)  # the database is unreachable from now on
            revoked = served.as_("bob").post(f"/v1/grants/{grant_id}/revoke", {"reason": "x"})
            assert revoked.status_code == 202, revoked.text
            assert revoked.json()["pending_sinks"] == ["postgresql"]
            assert requests.get(served.url + "/health", timeout=10).ok  # ready: checks deny
            health = requests.get(served.url + "/health?enforcement=true", timeout=10)
            assert health.status_code == 503 and "not yet removed from postgresql" in health.text
            assert postgres.password not in health.text + revoked.text
            activity = served.as_("bob").get(f"/v1/grants/{grant_id}/activity").json()
            assert [p["state"] for p in activity["provisioning"]] == ["revoking"]

            tokens = TokenStore(tmp_path / "datavisa.db")
            admin = Caller(served.url, tokens.issue("erin", "admin")[0])
            tokens.close()
            path = f"/v1/grants/{grant_id}/abandon-removal"
            assert served.as_("bob").post(path, {"reason": "gone"}).status_code == 403
            assert admin.post(path, {}).status_code == 422  # a reason is required
            abandoned = admin.post(path, {"reason": "database decommissioned"})
            assert abandoned.status_code == 200 and abandoned.json()["abandoned"] == ["postgresql"]

            def critical() -> list:
                return admin.get("/v1/alerts", params={"rule": "removal_abandoned"}).json()[
                    "alerts"
                ]

            _wait_for(critical, "the removal_abandoned alert")
            assert critical()[0]["severity"] == "critical"
            _wait_for(
                lambda: requests.get(served.url + "/health?enforcement=true", timeout=10).ok,
                "nothing held back once abandoned",
            )

            proxy.set_cut(False)  # it comes back: the role is still taken away
            _wait_for(lambda: not _role_exists(postgres, role_name(grant_id)), "the removal")
    finally:
        proxy.close()


def test_health_reports_what_public_reaches_and_refuse_provisions_nothing(
    tmp_path: Path, postgres: LocalPostgres, analytics: str
):
    """`/health?enforcement=true` lists each database PUBLIC may connect to (reported,
    not a 503); with `public_connect: refuse` an approval is refused with the fix,
    nothing is made, and the public_connect alert is raised."""
    config = _config(tmp_path, postgres)
    config.write_text(config.read_text() + "    public_connect: refuse\n")
    with _serve(tmp_path, "--config", str(config)) as served:
        health = requests.get(served.url + "/health?enforcement=true", timeout=5)
        assert health.status_code == 200, health.text
        reach = health.json()["enforcement"]["reach"]
        assert (
            "connection analytics: PUBLIC holds CONNECT on database postgres: a grant's role "
            "reaches it" in reach
        ), reach
        assert "reach" not in requests.get(served.url + "/health", timeout=5).json()["enforcement"]
        req = served.as_("alice").post(
            "/v1/requests",
            {"resource": RESOURCE, "duration": "1h", "location": "DE", "reason": "x"},
        )
        refused = served.as_("bob").post(f"/v1/requests/{req.json()['id']}/approve")
        assert refused.status_code == 409, refused.text
        assert "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC" in refused.text
        assert not _role_exists(postgres, role_name(req.json()["id"]))

        def alerted() -> bool:
            store = Store(tmp_path / "datavisa.db")
            try:
                rules = [r for (r,) in store.db.execute("SELECT rule FROM alerts").fetchall()]
            finally:
                store.close()
            return "public_connect" in rules

        _wait_for(alerted, "the public_connect alert")
