"""`datavisa doctor`: a fresh deployment passes; each broken part is named with its fix."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from pathlib import Path

import yaml
from click.testing import CliRunner

from datavisa.cli.main import cli
from datavisa.engine.lifecycle.fleet import Fleet, FleetConfig
from datavisa.engine.store import open_store


def _cli(*args: str, **env: str):
    return CliRunner().invoke(cli, list(args), env=env or None, catch_exceptions=False)


def _deployment(tmp_path: Path) -> Path:
    folder = tmp_path / "datavisa"
    assert _cli("init", str(folder), "--admin", "erin").exit_code == 0
    return folder


def test_a_fresh_deployment_passes_every_check(tmp_path: Path):
    config = _deployment(tmp_path) / "datavisa.yaml"
    done = _cli("doctor", "--config", str(config), "--json")
    assert done.exit_code == 0, done.output
    found = {f["part"]: f for f in json.loads(done.stdout)}
    assert set(found) == {"opa", "policy", "store", "permissions"}
    assert all(f["ok"] for f in found.values())
    assert "OPA 1.22." in found["opa"]["detail"]


def test_each_broken_part_is_named_with_what_to_fix(tmp_path: Path):
    folder = _deployment(tmp_path)
    (folder / "data").chmod(0o755)  # the store's file, 0644, now readable by anyone
    (folder / "policy" / "data" / "tiers.yaml").write_text("tiers: [\n")
    done = _cli("doctor", "--config", str(folder / "datavisa.yaml"), DATAVISA_OPA="/nowhere/opa")
    assert done.exit_code == 1
    lines = done.stdout.splitlines()
    assert "FIX  opa          DATAVISA_OPA=/nowhere/opa is not a file" in lines
    assert any(
        line.startswith("FIX  policy") and "tiers.yaml: not valid YAML" in line for line in lines
    )
    assert any(line.startswith("FIX  permissions") and "chmod 600" in line for line in lines)
    assert any(line.startswith("ok   store") for line in lines)
    assert "3 to fix" in done.stderr


def test_on_postgresql_it_checks_the_schema_and_the_clock(tmp_path: Path, pg_database: str):
    config = tmp_path / "datavisa.yaml"
    config.write_text(yaml.safe_dump({"database": pg_database}))
    open_store(pg_database).close()  # made and migrated, as a serve would
    done = _cli("doctor", "--config", str(config), "--json")
    assert done.exit_code == 0, done.output
    found = {f["part"]: f for f in json.loads(done.stdout)}
    assert found["store"]["ok"] and "schema" in found["store"]["detail"]
    assert found["clock"]["ok"] and "from the database's" in found["clock"]["detail"]


def test_webhooks_and_the_fleet_are_looked_at(tmp_path: Path):
    """A webhook whose host takes no connection, and a sidecar never heard from, are
    named; the ones that answer and report pass. Nothing is sent to a webhook."""
    folder = _deployment(tmp_path)
    config = folder / "datavisa.yaml"
    doc = yaml.safe_load(config.read_text())
    hits: list[str] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook) as listening:
        threading.Thread(target=listening.serve_forever, daemon=True).start()
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))  # bound, never listening: refuses connections
        doc["webhooks"] = [
            {"name": "pager", "url": f"http://127.0.0.1:{listening.server_port}/hook"},
            {"name": "chat", "url": f"http://127.0.0.1:{closed.getsockname()[1]}/hook"},
        ]
        doc["fleet"] = {"opas": ["opa-1", "opa-2"]}
        config.write_text(yaml.safe_dump(doc))
        store = open_store(folder / doc["database"])  # made, as a serve would
        fleet = Fleet(store, FleetConfig(opas=("opa-1", "opa-2")))
        fleet.contact("opa-1")
        fleet.report("opa-1", {"bundles": {"grants": {"active_revision": "0"}}})
        # The contact is written down for other processes from a thread of its own.
        deadline = time.monotonic() + 30
        while store.cursor("opa-contact:opa-1") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        store.close()
        done = _cli("doctor", "--config", str(config), "--json")
        listening.shutdown()
        closed.close()
    found = {f["part"]: f for f in json.loads(done.stdout)}
    assert done.exit_code == 1, done.output
    assert found["webhook pager"]["ok"]
    assert (
        not found["webhook chat"]["ok"] and "takes no connection" in found["webhook chat"]["detail"]
    )
    assert found["fleet OPA opa-1"]["ok"], found["fleet OPA opa-1"]
    assert not found["fleet OPA opa-2"]["ok"]
    assert "datavisa opa-config opa-2" in found["fleet OPA opa-2"]["detail"]
    assert hits == []  # a connection, never a notification
