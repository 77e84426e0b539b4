"""`datavisa transfer` and the lifecycle commands on transfers, through the CLI on a
real SQLite file and the session's OPA."""

from __future__ import annotations

import json

from click.testing import CliRunner

from datavisa.cli.main import cli

UPI, SINGAPORE = "in-upi-transactions", "aws:ap-southeast-1"


def _transfer(run, *extra: str):
    result = run(
        "transfer", "request", UPI, "--to", SINGAPORE, "--keep", "24h", "--window", "1h",
        "--reason", "CHG-42 backfill", "--as", "priya", "--json", *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_ask_approve_check_and_report_deleted(run):
    req = _transfer(run)
    assert (req["kind"], req["state"], req["retention_s"]) == ("transfer", "pending", 86400)
    before = run("transfer", "check", "--id", req["id"], "--as", "etl-in")
    assert before.exit_code == 1
    assert "no_approved_transfer" in before.output

    approved = run("approve", req["id"], "--as", "dave", "--from", "IE")
    assert approved.exit_code == 0, approved.output
    assert approved.output.startswith(f"transfer {req['id']}: active")
    assert f"copy to     {SINGAPORE}" in approved.output

    during = run("transfer", "check", UPI, "--to", SINGAPORE, "--as", "etl-in")
    assert during.exit_code == 0, during.output
    assert during.output.startswith(f"allow by transfer {req['id']} until ")

    listed = run("list")
    assert "transfer" in listed.output.splitlines()[1]
    transfers = run("transfer", "list")
    assert req["id"] in transfers.output and SINGAPORE in transfers.output
    assert run("transfer", "list", "--overdue").output.strip() == "no transfers"

    shown = run("show", req["id"])
    assert "transfer_requested" in shown.output

    done = run("transfer", "deleted", req["id"], "--as", "priya")
    assert done.exit_code == 0, done.output
    assert "deleted" in done.output
    again = run("transfer", "deleted", req["id"], "--as", "priya")
    assert again.exit_code == 1
    assert "already reported deleted" in again.output


def test_bad_input_is_a_message_naming_the_field_and_a_non_zero_exit(run):
    for args, words in [
        (["--to", "mars:olympus-1"], "target_region: no region named"),
        (["--to", "aws:ap-south-1"], "target_region: the data is already in"),
        (["--to", SINGAPORE, "--keep", "forever"], "keep: a copy outside IN must be deleted"),
        (["--to", SINGAPORE, "--keep", "48h"], "keep: "),
        (["--to", SINGAPORE, "--keep", "24h", "--evidence", "cac"], "evidence: "),
        (["--to", SINGAPORE, "--keep", "24h", "--requester-kind", "police"], "requester_kind: "),
    ]:
        result = run("transfer", "request", UPI, *args, "--reason", "x", "--as", "priya")
        assert result.exit_code == 1, (args, result.output)
        assert words in result.output, (args, result.output)
    assert run("transfer", "list").output.strip() == "no transfers"
    usage = run("transfer", "check")
    assert usage.exit_code == 2
    assert "name the transfer" in usage.output
    bad_keep = run("transfer", "request", UPI, "--to", SINGAPORE, "--keep", "a while")
    assert bad_keep.exit_code == 2
    assert "--keep" in bad_keep.output


def test_every_transfer_command_has_help_with_examples():
    for command in ([], ["request"], ["check"], ["deleted"], ["list"]):
        result = CliRunner().invoke(cli, ["transfer", *command, "--help"])
        assert result.exit_code == 0
        assert "Example" in result.output, command
