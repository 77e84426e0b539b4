"""What-if: `datavisa policy eval` asks a decision with the clock set, against the real
pinned OPA and the shipped bundle, reading (never writing) a real SQLite store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from click.testing import CliRunner

from datavisa.cli.main import cli
from datavisa.engine.lifecycle.engine import Engine

RESOURCE = "eu-customer-analytics"
# Grace works for ACME UK Ltd in GB; EU personal data reaches her on the UK's adequacy
# decision, which the bundle says runs until 2031-12-27.
FROM_THE_UK = {
    "subject": "grace", "resource": RESOURCE, "actions": ["read"], "duration_s": 3600,
    "location": "GB", "reason": "INC-4", "evidence": [],
}  # fmt: skip


def _eval(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["policy", "eval", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_uk_access_is_refused_once_the_adequacy_decision_has_ended(tmp_path: Path):
    asked = ["request", "--db", str(tmp_path / "none.db"), "--input", json.dumps(FROM_THE_UK)]
    now, today = _eval(*asked, "--json")
    later, after = _eval(*asked, "--json", "--at", "2032-01-01T00:00:00Z")
    assert (now, json.loads(today)["allow"]) == (0, True)
    assert later == 1
    assert [r["code"] for r in json.loads(after)["reasons"]] == ["location_not_permitted"]


def test_an_access_check_at_a_time_reads_the_stores_grants_and_changes_nothing(
    engine: Engine, db: Path
):
    grant = engine.request("alice", RESOURCE, ["read"], 3600, "DE", "INC-1")
    engine.approve(grant.id, "bob", "DE")
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    check = ["access", "--db", str(db), "--subject", "alice", "--resource", RESOURCE,
             "--action", "read", "--from", "DE"]  # fmt: skip
    assert _eval(*check)[0] == 0
    code, out = _eval(*check, "--at", "2099-01-01T00:00:00Z")
    assert code == 1 and "grant_expired" in out
    assert "2099-01-01T00:00:00Z" in out
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_bad_input_is_refused_with_a_message(tmp_path: Path):
    runner = CliRunner()
    for args, said in [
        (["access", "--at", "2032-01-01T00:00:00"], "no time zone"),
        (["access", "--at", "next year"], "not an RFC 3339 time"),
        (["access", "--input", "[1]"], "must be a JSON object"),
        (["access", "--input", "{"], "not JSON"),
        (["access", "--input", f"@{tmp_path / 'missing.json'}"], "cannot read"),
        (["access", "--from", "XX"], "not an ISO 3166"),
        (["verdict"], "'verdict' is not one of 'request', 'access'"),
    ]:
        result = runner.invoke(cli, ["policy", "eval", *args, "--db", str(tmp_path / "n.db")])
        assert result.exit_code == 2, (args, result.output)
        assert said in result.output, (args, result.output)
