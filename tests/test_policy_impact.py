"""Impact before merge: `datavisa policy impact` judges every live grant and pending request
under the policy in force and a changed copy, with the real OPA and a real SQLite store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from datavisa.cli.main import cli
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR

RESOURCE = "eu-customer-analytics"


def _impact(db: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["policy", "impact", "--db", str(db), *args], catch_exceptions=False
    )
    return result.exit_code, result.output


def _without_uk_adequacy(tmp_path: Path) -> Path:
    """The shipped data, but the UK's adequacy decision ended in 2025."""
    data = Path(shutil.copytree(DEFAULT_BUNDLE_DIR, tmp_path / "bundle"))
    laws = data / "jurisdictions.yaml"
    text = laws.read_text()
    assert 'until: "2031-12-27"' in text
    laws.write_text(text.replace('until: "2031-12-27"', 'until: "2025-01-01"'))
    return data


def test_a_change_that_ends_uk_adequacy_lists_what_it_would_refuse(
    engine: Engine, db: Path, tmp_path: Path
):
    grant = engine.request("alice", RESOURCE, ["read"], 3600, "DE", "INC-1")
    engine.approve(grant.id, "bob", "DE")
    pending = engine.request("grace", RESOURCE, ["read"], 3600, "GB", "INC-2")
    assert pending.state == "pending"

    code, out = _impact(db, "--bundle-dir", str(_without_uk_adequacy(tmp_path)), "--json")
    assert code == 1
    changes = json.loads(out)
    (refused,) = [c for c in changes if c["request_id"] == pending.id]
    assert (refused["kind"], refused["before"]["allow"], refused["after"]["allow"]) == (
        "request", True, False
    )  # fmt: skip
    assert "location_not_permitted" in refused["after"]["reasons"]
    from_de = [c for c in changes if c["request_id"] == grant.id and c["asked"]["location"] == "DE"]
    assert from_de == []  # alice's access from Germany is not touched

    code, out = _impact(db, "--bundle-dir", str(_without_uk_adequacy(tmp_path / "again")))
    assert code == 1
    assert "request" in out and "would change" in out


def test_the_same_policy_changes_nothing(engine: Engine, db: Path):
    grant = engine.request("alice", RESOURCE, ["read"], 3600, "DE", "INC-1")
    engine.approve(grant.id, "bob", "DE")
    assert _impact(db) == (0, "no change: every live grant and pending request is decided as now\n")


def test_without_a_database_it_says_so(tmp_path: Path):
    code, out = _impact(tmp_path / "none.db")
    assert code == 1 and "no database at" in out


def test_transfers_are_judged_by_their_own_decisions(engine: Engine, db: Path, tmp_path: Path):
    """Ending the UK adequacy stops an open copy to London; a pending one is refused."""
    live = engine.transfers.request("alice", RESOURCE, "aws:eu-west-2", 3600, reason="CHG-1")
    engine.approve(live.id, "bob", "DE")
    engine.approve(live.id, "petra", "DE")
    pending = engine.transfers.request("oscar", RESOURCE, "aws:eu-west-2", 3600, reason="CHG-2")
    code, out = _impact(db, "--bundle-dir", str(_without_uk_adequacy(tmp_path)), "--json")
    assert code == 1
    changes = {c["request_id"]: c for c in json.loads(out)}
    assert set(changes) == {live.id, pending.id}
    stopped, refused = changes[live.id], changes[pending.id]
    assert (stopped["kind"], stopped["before"]["allow"], stopped["after"]) == (
        "transfer_check", True, {"allow": False, "reasons": ["transfer_not_permitted"]}
    )  # fmt: skip
    assert (refused["kind"], refused["before"]["allow"], refused["after"]["allow"]) == (
        "transfer_request", True, False
    )  # fmt: skip


def _with_dpf_suspended(tmp_path: Path) -> Path:
    """The shipped data, but the EU-US Data Privacy Framework suspended: one line."""
    data = Path(shutil.copytree(DEFAULT_BUNDLE_DIR, tmp_path / "bundle"))
    laws = data / "jurisdictions.yaml"
    text = laws.read_text()
    assert text.count("status: under_appeal") == 1
    laws.write_text(text.replace("status: under_appeal", "status: suspended"))
    return data


def test_suspending_an_adequacy_stops_what_rests_on_it_but_not_its_fallback(
    engine: Engine, db: Path, tmp_path: Path
):
    """Carol's access from the US and a copy to a DPF-certified importer rest on the EU-US
    DPF; suspended, both stop. A copy with SCCs on file (the fallback) goes on."""
    grant = engine.request("carol", RESOURCE, ["read"], 3600, "US", "INC-1")
    engine.approve(grant.id, "bob", "DE")
    engine.approve(grant.id, "petra", "DE")
    copies = {}
    for requester, evidence in (("alice", []), ("oscar", ["scc"])):
        copy = engine.transfers.request(
            requester, RESOURCE, "aws:us-east-1", 3600, reason="CHG-1", importer="acme-inc",
            evidence=evidence,
        )  # fmt: skip
        engine.approve(copy.id, "bob", "DE")
        engine.approve(copy.id, "petra", "DE")
        copies[tuple(evidence)] = copy
    code, out = _impact(db, "--bundle-dir", str(_with_dpf_suspended(tmp_path)), "--json")
    assert code == 1
    changes = {(c["request_id"], c["asked"].get("location")): c for c in json.loads(out)}
    assert set(changes) == {(grant.id, "US"), (copies[()].id, None)}
    stopped = changes[(grant.id, "US")]
    assert (stopped["kind"], stopped["before"]["allow"], stopped["after"]) == (
        "access", True, {"allow": False, "reasons": ["location_not_permitted"]}
    )  # fmt: skip
    copy = changes[(copies[()].id, None)]
    assert (copy["kind"], copy["after"]) == (
        "transfer_check", {"allow": False, "reasons": ["transfer_not_permitted"]}
    )  # fmt: skip
