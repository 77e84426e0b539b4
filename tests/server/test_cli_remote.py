"""The CLI's remote mode: the same verbs through `datavisa serve`, with the same output."""

from __future__ import annotations

import re

from click.testing import CliRunner

from datavisa.cli.main import cli

RESOURCE = "eu-customer-analytics"
_VOLATILE = [
    (re.compile(r"\b[0-9a-f]{12}\b"), "ID"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "TIME"),
    (re.compile(r"\((in |)[0-9dhms]+( ago|)\)"), "(REL)"),
    (re.compile(r"revision    \S+"), "revision    REV"),
    (re.compile(r"(?m)^(\d+ +TIME +\w+ +\w+ +ID +\w+ +)\S+"), r"\1DECISION"),
    # The audit trail's seq counts every event in the file, the server's token issues too.
    (re.compile(r"(?m)^\d+( +TIME )"), r"SEQ\1"),
]


def _normal(text: str) -> str:
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def _story(invoke) -> list[str]:
    """One request's life, as each command printed it."""
    outputs = []

    def step(*args: str, who: str = "alice", code: int = 0) -> str:
        result = invoke(*args, who=who)
        assert result.exit_code == code, result.output
        outputs.append(_normal(result.stdout + result.stderr))
        return result.stdout

    created = step("request", RESOURCE, "--for", "20m", "--from", "DE", "--reason", "INC-1",
                   who="alice")  # fmt: skip
    rid = re.search(r"request ([0-9a-f]{12})", created).group(1)
    step("approve", rid, "--from", "DE", who="alice", code=1)  # self-approval refused
    step("approve", rid, "--from", "DE", who="bob")
    step("show", rid, who="alice")
    step("list", who="alice")
    step("extend", rid, "--for", "10m", "--reason", "more", who="alice", code=1)
    step("revoke", rid, "--reason", "done", who="bob")
    step("revoke", rid, who="bob", code=1)
    step("show", "000000000000", who="alice", code=1)
    return outputs


def test_remote_mode_prints_what_local_mode_prints(api, opa_args, tmp_path):
    tokens = {who: api.service.tokens.issue(who, "user")[0] for who in ("alice", "bob")}

    def remote(*args: str, who: str):
        argv = [*args, "--server", api.url, "--token", tokens[who]]
        return CliRunner().invoke(cli, argv, catch_exceptions=False)

    def local(*args: str, who: str):
        argv = [*args, "--as", who, "--db", str(tmp_path / "local.db"), *opa_args]
        return CliRunner().invoke(cli, argv, catch_exceptions=False)

    assert _story(remote) == _story(local)


def test_remote_mode_acts_only_as_the_tokens_subject(api):
    token, _ = api.service.tokens.issue("alice", "user")
    result = CliRunner().invoke(
        cli,
        ["request", RESOURCE, "--for", "20m", "--from", "DE", "--reason", "x", "--as", "bob",
         "--server", api.url, "--token", token],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "acts as alice" in result.stderr
    assert api.service.engine.list_requests() == []


def test_remote_mode_needs_a_token_and_says_where_to_get_one(api):
    result = CliRunner().invoke(cli, ["list", "--server", api.url], env={"DATAVISA_TOKEN": ""})
    assert result.exit_code == 1
    assert "datavisa token issue" in result.stderr
    bad = CliRunner().invoke(cli, ["list", "--server", api.url, "--token", "dvt_x_y"])
    assert bad.exit_code == 1
    assert "refused the token" in bad.stderr


def _transfer_story(invoke) -> list[str]:
    """One transfer's life, as each command printed it (a pipeline checks it as etl-in)."""
    outputs = []

    def step(*args: str, who: str, code: int = 0) -> str:
        result = invoke(*args, who=who)
        assert result.exit_code == code, result.output
        # Columns are as wide as their relative times: compare the words.
        outputs.append(re.sub(" +", " ", _normal(result.stdout + result.stderr)))
        return result.stdout

    upi = ("in-upi-transactions", "--reason", "CHG-42", "--window", "1h")
    created = step("transfer", "request", *upi, "--to", "aws:ap-southeast-1", "--keep", "24h",
                   who="priya")  # fmt: skip
    tid = re.search(r"transfer ([0-9a-f]{12})", created).group(1)
    step("transfer", "check", "--id", tid, who="etl-in", code=1)
    step("approve", tid, "--from", "DE", who="dave")  # where the network places him
    step("transfer", "check", "in-upi-transactions", "--to", "aws:ap-southeast-1", who="etl-in")
    step("transfer", "list", who="priya")
    step("transfer", "request", *upi, "--to", "gcp:europe-west3", who="priya", code=1)
    step("transfer", "deleted", tid, who="priya")
    step("show", tid, who="priya")
    return outputs


def test_transfers_in_remote_mode_print_what_local_mode_prints(api, opa_args, tmp_path):
    roles = {"priya": "user", "dave": "user", "etl-in": "service"}
    tokens = {who: api.service.tokens.issue(who, role)[0] for who, role in roles.items()}

    def remote(*args: str, who: str):
        argv = [*args, "--server", api.url, "--token", tokens[who]]
        return CliRunner().invoke(cli, argv, catch_exceptions=False)

    def local(*args: str, who: str):
        argv = [*args, "--as", who, "--db", str(tmp_path / "local.db"), *opa_args]
        return CliRunner().invoke(cli, argv, catch_exceptions=False)

    told = _transfer_story(remote)
    assert told == _transfer_story(local)
    assert "keep: a copy outside IN must be deleted within 86400s" in told[5]
