"""A PostgreSQL store backed up and restored as docs/deploy.md says ("Backups and restores"):
`pg_dump --format=custom`, then `pg_restore` into a fresh database; both hash chains verify
there with the engines' key, and `datavisa serve` on the restored database holds the same
grants and tokens."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import requests
from click.testing import CliRunner
from live_server import RESOURCE, serve_process

from datavisa.cli.local_postgres import LocalPostgres
from datavisa.cli.main import cli
from datavisa.engine.ledger.decision_log import KEY_ENV


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _pg(postgres: LocalPostgres, tool: str, *args: str) -> subprocess.CompletedProcess:
    """A PostgreSQL client tool of the cluster's own release, as an operator runs it."""
    return subprocess.run(
        [str(postgres.bindir / tool), *args], capture_output=True, text=True, timeout=120
    )


def _dump_and_restore(postgres: LocalPostgres, database: str, tmp_path: Path) -> str:
    """`database` through pg_dump and pg_restore into a fresh database, as docs/deploy.md
    says; the restored one's DSN."""
    dump = tmp_path / "datavisa.dump"
    dumped = _pg(postgres, "pg_dump", "--format=custom", f"--file={dump}", database)
    assert dumped.returncode == 0, dumped.stderr
    restored = postgres.create_database(f"{database.rsplit('/', 1)[1]}_restored")
    loaded = _pg(postgres, "pg_restore", "--exit-on-error", "--single-transaction",
                 f"--dbname={restored}", str(dump))  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    return restored


def test_a_pg_dump_restored_into_a_fresh_database_verifies_and_serves(
    postgres: LocalPostgres, pg_database: str, opa_args, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv(KEY_ENV, secrets.token_hex(32))  # the key every engine signs with
    made = _cli("request", RESOURCE, "--for", "1h", "--from", "DE", "--reason", "INC-7",
                "--as", "alice", "--json", "--db", pg_database, *opa_args)  # fmt: skip
    assert made.exit_code == 0, made.output
    grant = json.loads(made.stdout)["id"]
    approved = _cli("approve", grant, "--as", "bob", "--from", "DE", "--db", pg_database, *opa_args)
    assert approved.exit_code == 0, approved.output
    checked = _cli("check", "alice", RESOURCE, "--from", "DE", "--db", pg_database, *opa_args)
    assert checked.exit_code == 0, checked.output
    issued = _cli("token", "issue", "db-proxy", "--role", "service", "--db", pg_database)
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip().splitlines()[-1]
    before = {what: _cli(what, "verify", "--db", pg_database).stdout for what in ("audit", "log")}

    restored_db = _dump_and_restore(postgres, pg_database, tmp_path)

    for what, says in (("audit", "audit chain intact"), ("log", "decision log intact")):
        verified = _cli(what, "verify", "--db", restored_db)
        assert verified.exit_code == 0, verified.output
        assert verified.stdout.startswith(says) and verified.stdout == before[what]

    with serve_process("--db", restored_db, log=tmp_path / "serve.log") as served:
        answer = requests.post(
            served.url + "/v1/access/check",
            json={"subject": "alice", "resource": RESOURCE, "action": "read", "location": "DE"},
            headers={"Authorization": f"Bearer {token}"},  # restored with the store
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["allow"] is True and answer.json()["grant_id"] == grant
    after = _cli("log", "verify", "--db", restored_db)  # serve's decisions chain on
    assert after.exit_code == 0, after.output


def test_a_restore_verified_with_another_key_fails_at_its_signed_checkpoint(
    postgres: LocalPostgres, pg_database: str, opa_args, tmp_path: Path, monkeypatch
):
    """The key is part of the backup: without the engines' own, the restored log's signed
    checkpoints do not verify (docs/deploy.md: back it up with the database)."""
    monkeypatch.setenv(KEY_ENV, secrets.token_hex(32))
    checked = _cli("check", "alice", RESOURCE, "--from", "DE", "--db", pg_database, *opa_args)
    assert checked.exit_code == 1, checked.output  # a denial, recorded in the log
    signed = _cli("log", "checkpoint", "--db", pg_database)
    assert signed.exit_code == 0 and signed.stdout.startswith("checkpoint at record"), signed.output
    restored_db = _dump_and_restore(postgres, pg_database, tmp_path)
    monkeypatch.setenv(KEY_ENV, secrets.token_hex(32))
    verified = _cli("log", "verify", "--db", restored_db)
    assert verified.exit_code == 1, verified.output
    assert "checkpoint" in verified.output, verified.output
