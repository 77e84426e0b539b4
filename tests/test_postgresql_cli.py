"""The CLI over grants in PostgreSQL: `credentials` (once, --rotate, --env), `show`,
`log --grant` and `watch` with the statements the role ran, `revoke --force` refused to a
non-admin. A real cluster, the session's OPA, the CLI in process."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from test_postgresql import _grant, _pg_engine

from datavisa.cli.local_postgres import LocalPostgres
from datavisa.cli.main import cli
from datavisa.engine.connectors.activity import StatementTail, parse_line
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store.sqlite import Store


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_the_cli_hands_out_credentials_and_shows_what_the_role_ran(
    tmp_path: Path,
    db: Path,
    opa: OpaProcess,
    postgres: LocalPostgres,
    analytics: str,
):
    store = Store(db)
    engine = _pg_engine(store, opa.client(), postgres)
    grant = _grant(engine)
    config = tmp_path / "serve.yaml"
    (tmp_path / "admin.dsn").write_text(postgres.dsn())
    config.write_text(
        "connections:\n  analytics:\n    kind: postgresql\n    dsn_file: admin.dsn\n"
        f"    log_dir: {postgres.log_dir}\n"
    )
    where = ["--db", str(db), "--opa-url", opa.url, "--opa-token-file", str(opa.token_file)]
    base = ["credentials", grant.id, "--config", str(config), *where]

    code, out = _cli(*base, "--from", "US", "--as", "alice")
    assert code == 1 and "outside the countries the grant was approved for" in out
    code, out = _cli(*base, "--from", "DE", "--as", "alice", "--json")
    assert code == 0, out
    issued = json.loads(out)
    code, out = _cli(*base, "--from", "DE", "--as", "alice")
    assert code == 1 and "--rotate" in out
    code, out = _cli(*base, "--from", "DE", "--as", "alice", "--rotate", "--env")
    assert code == 0 and "export PGPASSWORD=" in out and issued["env"]["PGPASSWORD"] not in out
    password = out.split("export PGPASSWORD=")[1].split("\n")[0].strip("'")

    with psycopg.connect(
        host=issued["env"]["PGHOST"], port=issued["env"]["PGPORT"], dbname="analytics",
        user=issued["env"]["PGUSER"], password=password, autocommit=True,
    ) as session:  # fmt: skip
        session.execute("SELECT id FROM orders WHERE total > 100")
    tail = StatementTail(engine.grants.sinks[-1].connections, store, opa.client(), time.time)
    deadline = time.monotonic() + 20
    while not any("orders" in r["statement"] for r in store.activity(grant.id)):
        assert time.monotonic() < deadline, "the statement never reached the activity"
        tail.poll()
        time.sleep(0.1)

    code, out = _cli("show", grant.id, "--db", str(db))
    assert code == 0 and "postgresql: provisioned" in out
    assert "SELECT id FROM orders WHERE total > 100" in out
    code, out = _cli("log", "--grant", grant.id, "--db", str(db))
    assert code == 0 and "statements run under grant" in out and "FROM orders" in out
    code, out = _cli("watch", grant.id, "--once", "--json", "--db", str(db))
    assert code == 0 and any("orders" in json.loads(line)["statement"] for line in out.splitlines())

    code, out = _cli("revoke", grant.id, "--force", "--as", "bob", *where)
    assert code == 2 and "--force needs --reason" in out
    code, out = _cli("revoke", grant.id, "--force", "--reason", "x", "--as", "bob", *where)
    assert code == 1  # revoked, nothing left pending: nothing to abandon
    store.close()


@pytest.mark.parametrize(
    ("line", "statement"),
    [
        ('{"user":"dv_abc","message":"statement: SELECT 1","dbname":"a"}', "SELECT 1"),
        ('{"user":"dv_abc","message":"execute <unnamed>: SELECT 2"}', "SELECT 2"),
        ('{"user":"postgres","message":"statement: SELECT 3"}', None),
        ('{"user":"dv_abc","message":"connection authorized: user=dv_abc"}', None),
        ("not json", None),
    ],
)
def test_only_statements_of_managed_roles_are_read(line: str, statement: str | None):
    parsed = parse_line(line)
    assert (parsed["statement"] if parsed else None) == statement
