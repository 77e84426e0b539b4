"""`datavisa db backup` and `restore`: an SQLite store copied while an engine keeps
writing to it, both hash chains verified on the copy and again in place, and a tampered
backup refused before anything is written."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from click.testing import CliRunner

from datavisa.cli.main import cli
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store import open_store


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_a_backup_taken_under_writes_restores_with_both_chains_intact(
    run, db: Path, opa: OpaProcess, tmp_path: Path
):
    filed = run("request", "eu-customer-analytics", "--for", "20m", "--from", "DE",
                "--reason", "INC-1", "--as", "alice")  # fmt: skip
    assert filed.exit_code == 0, filed.output
    store = open_store(db)
    engine = Engine(store, opa.client(), revision="test")  # signs with the key beside db
    done, checks = threading.Event(), []

    def keep_checking() -> None:  # an engine still deciding while the backup runs
        while not done.is_set():
            checks.append(engine.check("alice", "eu-customer-analytics", "read", "DE"))

    writer = threading.Thread(target=keep_checking)
    writer.start()
    try:
        while len(checks) < 20:  # the writer is under way
            writer.join(0.05)
        backup = tmp_path / "backups" / "datavisa.db"
        taken = _cli("db", "backup", "--db", str(db), "--to", str(backup))
    finally:
        done.set()
        writer.join()
        store.close()
    assert taken.exit_code == 0, taken.output
    assert "audit trail intact" in taken.stdout and "decision log intact" in taken.stdout
    key = Path(str(backup) + ".logkey")
    assert key.read_text() == Path(str(db) + ".logkey").read_text()
    assert key.stat().st_mode & 0o077 == 0
    again = _cli("db", "backup", "--db", str(db), "--to", str(backup))
    assert again.exit_code == 1 and "exists" in again.output

    target = tmp_path / "restored" / "datavisa.db"
    restored = _cli("db", "restore", str(backup), "--db", str(target))
    assert restored.exit_code == 0, restored.output
    assert "restored" in restored.stdout and "decision log intact" in restored.stdout
    copy = open_store(target, readonly=True)
    try:
        (row,) = copy.db.execute("SELECT requester, resource FROM requests").fetchall()
        assert row == ("alice", "eu-customer-analytics")
    finally:
        copy.close()
    over = _cli("db", "restore", str(backup), "--db", str(db))
    assert over.exit_code == 1 and "move it aside first" in over.output


def test_a_tampered_backup_is_refused_and_nothing_is_restored(run, db: Path, tmp_path: Path):
    filed = run("request", "eu-customer-analytics", "--for", "20m", "--from", "DE",
                "--reason", "INC-1", "--as", "alice")  # fmt: skip
    assert filed.exit_code == 0, filed.output
    backup = tmp_path / "b.db"
    assert _cli("db", "backup", "--db", str(db), "--to", str(backup)).exit_code == 0
    with sqlite3.connect(backup) as edit:
        edit.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 1")
    target = tmp_path / "restored.db"
    refused = _cli("db", "restore", str(backup), "--db", str(target))
    assert refused.exit_code == 1
    assert "audit trail broken at event 1" in refused.output
    assert not target.exists()


def test_postgresql_is_pointed_at_pg_dump(tmp_path: Path):
    url = "postgresql://datavisa@127.0.0.1:1/datavisa"
    for args in (("backup", "--db", url, "--to", str(tmp_path / "b.db")),
                 ("restore", str(__file__), "--db", url)):  # fmt: skip
        refused = _cli("db", *args)
        assert refused.exit_code == 1 and "pg_dump" in refused.output
