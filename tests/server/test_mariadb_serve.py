"""`datavisa serve` with a MariaDB connection (config `connections:`, kind mariadb):
credentials over HTTP as a mysql:// URL and MYSQL_* variables, the statements the account
ran from the audit plugin, a revoke answered 202 while the server cannot be reached and
applied once it can, the admin password nowhere, and a kill -9 that leaves no orphan
account after restart. A real serve process, a real throwaway MariaDB."""

from __future__ import annotations

from pathlib import Path

import pymysql
from connector_contract import MARIADB_RESOURCE
from live_server import IN_GERMANY_CONFIG, kill_hard
from tcp_faults import CuttableProxy
from test_supervision import _serve, _wait_for

from datavisa.cli.local_mariadb import LocalMariadb
from datavisa.engine.connectors.base import role_name
from datavisa.engine.connectors.mariadb import MANAGED
from datavisa.engine.ledger.decision_log import DecisionLog, load_key
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store.sqlite import Store


def _config(tmp_path: Path, mariadb: LocalMariadb, data: Path, port: int | None = None) -> Path:
    dsn = mariadb.dsn() if port is None else mariadb.dsn().replace(f":{mariadb.port}/", f":{port}/")
    (tmp_path / "support.dsn").write_text(dsn + "\n")
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"reconcile_every: 1s\nbundle_dir: {data}\n"
        + IN_GERMANY_CONFIG
        + "connections:\n  support:\n    kind: mariadb\n    dsn_file: support.dsn\n"
        f"    audit_log: {mariadb.audit_log}\n    public_port: {mariadb.port}\n"
    )
    return config


def _grant(served) -> str:
    req = served.as_("alice").post(
        "/v1/requests",
        {"resource": MARIADB_RESOURCE, "duration": "1h", "location": "DE", "reason": "x"},
    )
    assert req.status_code == 201, req.text
    approved = served.as_("bob").post(f"/v1/requests/{req.json()['id']}/approve")
    assert approved.status_code == 200 and approved.json()["state"] == "active", approved.text
    return req.json()["id"]


def _exists(mariadb: LocalMariadb, grant_id: str) -> bool:
    with mariadb.connect() as db, db.cursor() as cur:
        cur.execute("SELECT 1 FROM mysql.global_priv WHERE User = %s", [role_name(grant_id)])
        return cur.fetchone() is not None


def test_credentials_over_http_statements_recorded_and_the_admin_password_nowhere(
    tmp_path: Path, mariadb: LocalMariadb, support: str, connectors_data: Path
):
    with _serve(tmp_path, "--config", str(_config(tmp_path, mariadb, connectors_data))) as served:
        grant_id = _grant(served)
        alice = served.as_("alice")
        issued = alice.get(f"/v1/grants/{grant_id}/credentials", params={"location": "DE"})
        assert issued.status_code == 200, issued.text
        env = issued.json()["env"]
        assert issued.json()["url"].startswith(f"mysql://{role_name(grant_id)}:")
        assert set(env) == {"MYSQL_HOST", "MYSQL_TCP_PORT", "MYSQL_DATABASE", "MYSQL_USER",
                            "MYSQL_PWD"}  # fmt: skip
        with (
            pymysql.connect(host=env["MYSQL_HOST"], port=int(env["MYSQL_TCP_PORT"]),
                            user=env["MYSQL_USER"], password=env["MYSQL_PWD"],
                            database=env["MYSQL_DATABASE"]) as db,
            db.cursor() as cur,
        ):  # fmt: skip
            cur.execute("SELECT body FROM tickets WHERE body = 'refund'")

        def ran() -> list[str]:
            got = served.as_("bob").get(f"/v1/grants/{grant_id}/activity").json()
            return [a["statement"] for a in got["activity"] if "tickets" in a["statement"]]

        _wait_for(lambda: ran(), "the statement to be recorded against the grant")
        assert ran() == ["SELECT body FROM tickets WHERE body = '***'"]  # masked
        revoked = served.as_("bob").post(f"/v1/grants/{grant_id}/revoke", {"reason": "done"})
        assert revoked.status_code == 200, revoked.text
        assert not _exists(mariadb, grant_id)
        answers = issued.text + revoked.text
    assert mariadb.password not in answers
    assert mariadb.password not in (tmp_path / "serve.log").read_text()


def test_a_revoke_while_the_server_is_cut_off_is_202_and_applied_when_it_is_back(
    tmp_path: Path, mariadb: LocalMariadb, support: str, connectors_data: Path
):
    proxy = CuttableProxy("127.0.0.1", mariadb.port)
    config = _config(tmp_path, mariadb, connectors_data, port=proxy.port)
    try:
        with _serve(tmp_path, "--config", str(config)) as served:
            grant_id = _grant(served)
            proxy.set_cut(True)
            revoked = served.as_("bob").post(f"/v1/grants/{grant_id}/revoke", {"reason": "x"})
            assert revoked.status_code == 202, revoked.text
            assert revoked.json()["pending_sinks"] == ["mariadb"]
            assert _exists(mariadb, grant_id)
            proxy.set_cut(False)
            _wait_for(lambda: not _exists(mariadb, grant_id), "the retry to drop the account")
    finally:
        proxy.close()


def test_kill_9_leaves_no_orphan_account_after_restart(
    tmp_path: Path, mariadb: LocalMariadb, support: str, connectors_data: Path,
    connectors_opa: OpaProcess,
):  # fmt: skip
    config = _config(tmp_path, mariadb, connectors_data)
    with _serve(tmp_path, "--config", str(config)) as served:
        grant_id = _grant(served)
        assert _exists(mariadb, grant_id)
        kill_hard(served.proc)  # SIGKILL: no shutdown at all

    # While serve is down: the grant is revoked in the store (the outbox row waits for the
    # server), and someone makes a managed account by hand.
    db = tmp_path / "datavisa.db"
    store = Store(db)
    engine = Engine(
        store, connectors_opa.client(), revision="test", log=DecisionLog(store, load_key(db))
    )
    engine.grants.sync()
    engine.revoke(grant_id, "bob", "incident over")
    store.close()
    copy = f"copy{grant_id}"
    with mariadb.connect() as admin, admin.cursor() as cur:
        cur.execute(f"CREATE USER 'dv_{copy}'@'%' IDENTIFIED BY 'x'")
        cur.execute(f"GRANT {MANAGED} TO 'dv_{copy}'@'%'")

    with _serve(tmp_path, "--config", str(config)):
        _wait_for(
            lambda: not _exists(mariadb, grant_id) and not _exists(mariadb, copy),
            "the restarted serve to remove the revoked grant's account and the copy",
        )
