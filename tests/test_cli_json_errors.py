"""With --json, errors are JSON too: `{"error": {code, message, ...}}` on standard output,
with the exit status the command has without --json (1 refused, 2 usage)."""

from __future__ import annotations

import json

RESOURCE = "eu-customer-analytics"


def _error(result) -> dict:
    return json.loads(result.stdout)["error"]


def test_a_refusal_is_json_with_its_reasons(run):
    asked = run(
        "request", RESOURCE, "--for", "20m", "--from", "DE", "--reason", "INC-8", "--as", "alice",
        "--json",
    )  # fmt: skip
    req = json.loads(asked.stdout)
    refused = run("approve", req["id"], "--as", "alice", "--from", "DE", "--json")
    assert refused.exit_code == 1
    error = _error(refused)
    assert error["code"] == "denied"
    assert "self_approval" in [r["code"] for r in error["reasons"]]
    assert error["decision_id"]


def test_not_found_and_usage_errors_are_json_with_the_same_exit_status(run):
    missing = run("show", "0123456789ab", "--json")
    assert (missing.exit_code, _error(missing)["code"]) == (1, "not_found")
    usage = run("request", RESOURCE, "--json")  # no --for, --from
    assert (usage.exit_code, _error(usage)["code"]) == (2, "usage")
    assert "Missing option" in _error(usage)["message"]


def test_without_json_an_error_is_a_line_for_people(run):
    missing = run("show", "0123456789ab")
    assert missing.exit_code == 1
    assert missing.output.startswith("Error: no request with id")
