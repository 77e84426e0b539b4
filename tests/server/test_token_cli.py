"""`datavisa token`: issue prints the token once; list never shows it; revoke ends it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from datavisa.cli.main import cli
from datavisa.engine.api.tokens import TokenStore

pytestmark = pytest.mark.stores  # each test on SQLite and on PostgreSQL


def _run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_issue_list_and_revoke(db):
    issued = _run("token", "issue", "db-proxy", "--role", "service", "--db", str(db), "--json")
    assert issued.exit_code == 0, issued.output
    record = json.loads(issued.stdout)
    assert (record["subject"], record["role"]) == ("db-proxy", "service")
    token = record["token"]
    store = TokenStore(db)
    assert store.verify(token).subject == "db-proxy"

    listed = _run("token", "list", "--db", str(db))
    assert record["id"] in listed.stdout and "service" in listed.stdout
    assert token not in listed.stdout

    revoked = _run("token", "revoke", record["id"], "--db", str(db))
    assert revoked.exit_code == 0
    assert store.verify(token) is None
    store.close()


def test_issue_prints_only_the_token_on_stdout(db):
    result = _run("token", "issue", "alice", "--db", str(db))
    assert result.stdout.strip().startswith("dvt_")
    assert len(result.stdout.strip().splitlines()) == 1
    assert "not shown again" in result.stderr


def test_bad_subjects_and_unknown_ids_are_refused(db):
    bad = _run("token", "issue", "has space", "--role", "service", "--db", str(db))
    assert bad.exit_code == 1
    assert "is not a subject name" in bad.stderr
    for role in ("user", "auditor", "admin"):  # a person's token: for someone policy knows
        stranger = _run("token", "issue", "mallory", "--role", role, "--db", str(db))
        assert stranger.exit_code == 2
        assert "is not in the directory of the shipped data" in stranger.stderr
    missing = _run("token", "revoke", "000000000000", "--db", str(db))
    assert missing.exit_code == 1
    assert "no token with id" in missing.stderr


def test_issuing_and_revoking_are_in_the_audit_trail_without_the_secret(db):
    issued = _run("token", "issue", "db-proxy", "--role", "service", "--as", "erin",
                  "--db", str(db), "--json")  # fmt: skip
    record = json.loads(issued.stdout)
    _run("token", "revoke", record["id"], "--as", "frank", "--db", str(db))
    _run("token", "revoke", record["id"], "--as", "frank", "--db", str(db))  # no change
    trail = _run("audit", "trail", "--db", str(db), "--json")
    events = [(e["event"], e["actor"], e["detail"]) for e in json.loads(trail.stdout)]
    detail = {"token_id": record["id"], "subject": "db-proxy", "role": "service"}
    assert events == [("token_issued", "erin", detail), ("token_revoked", "frank", detail)]
    assert record["token"] not in trail.stdout
    verified = _run("audit", "verify", "--db", str(db))
    assert verified.exit_code == 0, verified.output


def test_a_deployments_own_people_get_tokens_by_its_config_or_its_data_folder(db, tmp_path: Path):
    """`serve --bundle-dir` serves people the shipped data does not know; the token
    command takes them from the same folder, named by --bundle-dir or by serve's config."""
    repo = tmp_path / "our-policy"
    assert _run("policy", "init", str(repo)).exit_code == 0
    subjects = repo / "data" / "subjects.yaml"
    doc = yaml.safe_load(subjects.read_text())
    dana = json.loads(json.dumps(doc["subjects"]["alice"]))  # no YAML aliases
    doc["subjects"]["dana"] = {**dana, "name": "Dana Example"}
    subjects.write_text(yaml.safe_dump(doc))

    shipped = _run("token", "issue", "dana", "--db", str(db))
    assert shipped.exit_code == 2 and "--config or --bundle-dir" in shipped.stderr
    by_folder = _run("token", "issue", "dana", "--db", str(db), "--bundle-dir", str(repo / "data"))
    assert by_folder.exit_code == 0, by_folder.output

    config = tmp_path / "datavisa.yaml"
    config.write_text(yaml.safe_dump({"database": str(db), "bundle_dir": str(repo / "data")}))
    by_config = _run("token", "issue", "dana", "--role", "auditor", "--config", str(config))
    assert by_config.exit_code == 0, by_config.output
    store = TokenStore(db)  # the config's database: the token is the server's to verify
    assert store.verify(by_config.stdout.strip()).role == "auditor"
    store.close()
    stranger = _run("token", "issue", "mallory", "--config", str(config))
    assert stranger.exit_code == 2 and str(repo / "data") in stranger.stderr
