"""Chat approvals in Slack (issue 27, items 3 and 4) against real parts: uvicorn, OPA,
SQLite and the SCIM directory; only Slack's Web API is stood in for, by a loopback recorder
at the configured API base URL (slack_recorder.py). Interactions are sent as Slack sends
them, signed (or not) with the app's signing secret. Bounded waits only."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from live_server import IN_GERMANY, RESOURCE, Caller, serve_process, uvicorn_thread, wait_for
from slack_recorder import SlackRecorder, block_actions, sign

from datavisa.engine.api import config
from datavisa.engine.api.app import create_app
from datavisa.engine.api.service import Service
from datavisa.engine.api.tokens import SUBJECT_PATTERN, TokenStore
from datavisa.engine.chat.interactions import Interactions
from datavisa.engine.chat.notices import Notices, approvers_of
from datavisa.engine.chat.slack import Signatures, SlackConfig
from datavisa.engine.directory.directory import Directory
from datavisa.engine.directory.scim import Filter
from datavisa.engine.identity.oidc import Identity
from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.model.errors import DataVisaError
from datavisa.engine.monitoring.notify import approval_body
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store import open_store

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0APPROVERS"
CONSOLE = "https://console.example/#/requests/{id}"
SLACK_IDS = {"alice": "U0ALICE", "bob": "U0BOB", "erin": "U0ERIN", "oscar": "U0OSCAR",
             "jack": "U0JACK"}  # fmt: skip
STRANGER = ("mallory@elsewhere.example", "U0MALLORY")  # in Slack, not in the directory
USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def _email(person: str) -> str:
    return f"{person}@acme.example"


@dataclass
class Chat:
    url: str
    service: Service
    notices: Notices
    slack: SlackRecorder

    @property
    def engine(self) -> Engine:
        return self.service.engine

    def click(self, user: str, action: str, request_id: str, message: tuple[str, str],
              secret: str = SECRET, at: int | None = None, body: str | None = None,
              ) -> requests.Response:  # fmt: skip
        body = body or block_actions(user, action, request_id, *message)
        headers = sign(body, secret, at)
        return requests.post(self.url + "/slack/interactions", data=body, headers=headers,
                             timeout=10)  # fmt: skip

    def posted(self, request_id: str, channel: str = CHANNEL, kind: str = "") -> tuple[str, str]:
        """Wait for the request's message in `channel`; (channel Slack answered, ts)."""
        wanted = kind or f"request `{request_id}`"
        wait_for(lambda: self.slack.posts(channel, wanted), f"the message of {request_id}")

        def stored():
            return self.service.engine.store.db.execute(
                "SELECT channel, ts FROM chat_messages WHERE request_id = ? ORDER BY posted_at",
                [request_id],
            ).fetchall()

        rows = wait_for(stored, "the message's ts to be kept")
        return rows[0][0], rows[0][1]

    def trail(self, request_id: str) -> list[tuple[str, str]]:
        return [(e["event"], e["actor"]) for e in self.engine.trail(request_id)]


@contextlib.contextmanager
def chat_server(db: Path, opa: OpaProcess, slack: SlackRecorder,
                channel: str | None = CHANNEL) -> Iterator[Chat]:  # fmt: skip
    store, client = open_store(db), opa.client()
    tokens = TokenStore(store)
    engine = Engine(store, client, revision="test", log=DecisionLog(store, b"test-key"))
    engine.grants.sync()
    directory = Directory(engine, SUBJECT_PATTERN)
    for person in SLACK_IDS:  # the IdP's directory, with each person's work email
        emails = [{"value": _email(person), "primary": True}]
        user = {"schemas": [USER], "userName": person, "active": True, "emails": emails}
        directory.create_user(user, "okta")
    cfg = SlackConfig(bot_token="xoxb-test-token", signing_secret=SECRET, api_url=slack.api_url,
                      channel=channel, console_url=CONSOLE, scan_every_s=0.1)  # fmt: skip
    notices = Notices(engine, cfg, backoff_s=0.05).start()
    chat = Interactions(engine, notices, Signatures(store, SECRET))
    service = Service(engine, tokens, location=IN_GERMANY, directory=directory, chat=chat)
    try:
        with uvicorn_thread(create_app(service)) as url:
            yield Chat(url, service, notices, slack)
    finally:
        notices.stop()
        service.close()
        tokens.close()
        store.close()
        client.put_data("directory", {"people": {}})  # the session's OPA: nobody synced
        client.close()


@pytest.fixture
def slack() -> Iterator[SlackRecorder]:
    users = {_email(p): u for p, u in SLACK_IDS.items()} | {STRANGER[0]: STRANGER[1]}
    with SlackRecorder(users) as recorder:
        yield recorder


@pytest.fixture
def chat(db: Path, opa: OpaProcess, slack: SlackRecorder) -> Iterator[Chat]:
    with chat_server(db, opa, slack) as served:
        yield served


def _request(chat: Chat, who: str = "alice"):
    return chat.engine.request(who, RESOURCE, ["read"], 1200, "DE", "INC-7 churn report")


# -- the notification --------------------------------------------------------------------


def test_a_request_is_posted_with_buttons_naming_the_people_who_may_approve(chat: Chat):
    req = _request(chat)
    chat.posted(req.id)
    [post] = chat.slack.posts(CHANNEL)
    assert post.token == "xoxb-test-token"
    blocks = json.dumps(post.args["blocks"])
    assert "<@U0BOB>" in blocks  # bob is the data owner policy lets approve; named, mentioned
    assert "U0ALICE" not in blocks and "U0ERIN" not in blocks
    [actions] = [b for b in post.args["blocks"] if b["type"] == "actions"]
    buttons = {e["action_id"]: e for e in actions["elements"]}
    assert buttons["approve"]["value"] == buttons["deny"]["value"] == req.id
    assert buttons["console"]["url"] == CONSOLE.replace("{id}", req.id)
    assert "alice asks for access to eu-customer-analytics" in post.args["text"]
    # Found again by another scan: still one message.
    chat.notices.plan()
    chat.notices.deliver()
    assert len(chat.slack.posts(CHANNEL)) == 1


@pytest.mark.stores  # on SQLite and on PostgreSQL
def test_approve_button_approves_as_the_person_and_updates_the_message(chat: Chat):
    req = _request(chat)
    message = chat.posted(req.id)
    answer = chat.click("U0BOB", "approve", req.id, message)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"ok": True, "request": req.id, "state": "active", "by": "bob"}
    assert chat.engine.get(req.id).state == "active"
    # The same audit record an API approval writes, naming the person, with its decision,
    # which the decision log holds as asked from the chat channel.
    approved = [e for e in chat.engine.trail(req.id) if e["event"] == "approved"]
    assert [e["actor"] for e in approved] == ["bob"] and approved[0]["decision_id"]
    [logged] = chat.engine.log.events([approved[0]["decision_id"]]).values()
    assert logged["input"]["approver"] == "bob"
    assert logged["input"]["origin"]["channel"] == "chat"
    [update] = wait_for(lambda: chat.slack.updates("*Approved* by bob"), "the message updated")
    assert [update.args["channel"], update.args["ts"]] == list(message)
    assert not [b for b in update.args["blocks"] if b["type"] == "actions"]  # no buttons left
    # ... and the requester is told, once, by direct message.
    [told] = wait_for(lambda: chat.slack.posts("U0ALICE", "*Approved* by bob"), "the requester")
    assert f"Your request {req.id}" in told.args["text"]


def test_deny_button_denies_as_the_person(chat: Chat):
    req = _request(chat)
    answer = chat.click("U0BOB", "deny", req.id, chat.posted(req.id))
    assert answer.status_code == 200, answer.text
    assert chat.engine.get(req.id).state == "denied"
    assert ("denied", "bob") in chat.trail(req.id)
    wait_for(lambda: chat.slack.updates("*Denied* by bob: denied in Slack"), "the update")
    wait_for(lambda: chat.slack.posts("U0ALICE", "*Denied* by bob"), "the requester told")


def test_a_request_not_signed_by_slack_changes_nothing(chat: Chat):
    req = _request(chat)
    message = chat.posted(req.id)
    before = chat.trail(req.id)
    for kw, code in (
        ({"secret": "not-the-signing-secret"}, "bad_signature"),
        ({"at": int(time.time()) - 302}, "stale_timestamp"),  # signed rightly, too long ago
        ({"at": int(time.time()) + 400}, "stale_timestamp"),
    ):
        answer = chat.click("U0BOB", "approve", req.id, message, **kw)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] == code
    # A body changed after signing: the signature is over the raw body.
    body = block_actions("U0BOB", "approve", req.id, *message)
    headers = sign(body, SECRET) | {"Content-Type": "application/x-www-form-urlencoded"}
    tampered = requests.post(chat.url + "/slack/interactions", data=body.replace("U0BOB", "U0ERIN"),
                             headers=headers, timeout=10)  # fmt: skip
    assert tampered.status_code == 401 and tampered.json()["error"]["code"] == "bad_signature"
    unsigned = requests.post(chat.url + "/slack/interactions", data=body, timeout=10)
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "unsigned"
    assert chat.engine.get(req.id).state == "pending" and chat.trail(req.id) == before


@pytest.mark.stores  # on SQLite and on PostgreSQL
def test_a_replayed_interaction_is_refused(chat: Chat):
    req = _request(chat)
    message = chat.posted(req.id)
    body = block_actions("U0BOB", "deny", req.id, *message)
    headers = sign(body, SECRET)
    first = requests.post(chat.url + "/slack/interactions", data=body, headers=headers, timeout=10)
    assert first.status_code == 200, first.text
    trail = chat.trail(req.id)
    again = requests.post(chat.url + "/slack/interactions", data=body, headers=headers, timeout=10)
    assert again.status_code == 401 and again.json()["error"]["code"] == "replayed"
    assert chat.trail(req.id) == trail


def test_an_unknown_slack_user_is_refused_with_a_message(chat: Chat):
    req = _request(chat)
    message = chat.posted(req.id)
    answer = chat.click(STRANGER[1], "approve", req.id, message)
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "unknown_user"
    assert chat.engine.get(req.id).state == "pending"
    [note] = wait_for(lambda: chat.slack.updates("No directory person has"), "the refusal shown")
    assert "mallory@elsewhere.example" in json.dumps(note.args["blocks"])
    assert [b for b in note.args["blocks"] if b["type"] == "actions"]  # the buttons stay
    assert {"U0MALLORY"} <= {c.args["user"] for c in chat.slack.of("users.info")}


def test_a_self_approval_is_refused_with_policys_reason_in_the_update(chat: Chat):
    req = _request(chat)
    answer = chat.click("U0ALICE", "approve", req.id, chat.posted(req.id))
    assert answer.status_code == 403
    assert {r["code"] for r in answer.json()["error"]["reasons"]} >= {"self_approval"}
    assert chat.engine.get(req.id).state == "pending"
    wait_for(lambda: chat.slack.updates("nobody may approve their own request"), "the reason")


def test_someone_directory_sync_deprovisioned_is_not_named_and_cannot_approve(chat: Chat):
    req = _request(chat)
    message = chat.posted(req.id)
    assert "<@U0BOB>" in json.dumps(chat.slack.posts(CHANNEL)[0].args["blocks"])  # named
    [bob], _ = chat.service.directory.users(Filter((("userName", "bob"),)), 1, 10)
    chat.service.directory.patch_user(bob.id, {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }, "okta")  # fmt: skip
    # His pending-request click (the mapping he had is still fresh) is refused by policy.
    answer = chat.click("U0BOB", "approve", req.id, message)
    assert answer.status_code == 403, answer.text
    assert chat.engine.get(req.id).state == "pending"
    later = _request(chat, "oscar")
    [post] = wait_for(lambda: chat.slack.posts(CHANNEL, f"request `{later.id}`"), "the post")
    assert "bob" not in json.dumps(post.args["blocks"]).replace("Bob", "")
    assert "nobody the directory names" in json.dumps(post.args["blocks"])


def test_a_button_on_a_message_not_ours_or_for_another_request_is_refused(chat: Chat):
    req, other = _request(chat), _request(chat, "oscar")
    message = chat.posted(req.id)
    wrong = chat.click("U0BOB", "approve", other.id, message)
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "unknown_message"
    forged = chat.click("U0BOB", "approve", req.id, (CHANNEL, "1.000001"))
    assert forged.status_code == 400
    assert chat.engine.get(req.id).state == chat.engine.get(other.id).state == "pending"


@pytest.mark.stores  # on SQLite and on PostgreSQL
def test_a_failing_slack_gets_the_message_on_a_later_attempt_recorded(chat: Chat):
    chat.slack.fail_posts = 2
    req = _request(chat)
    chat.posted(req.id)
    rows = chat.notices.store.db.execute(
        "SELECT attempt, status, outcome FROM deliveries WHERE ref = ? ORDER BY id",
        [f"requested:{req.id}"],
    ).fetchall()
    assert [tuple(r) for r in rows] == [(1, 503, "retrying"), (2, 503, "retrying"),
                                        (3, 200, "delivered")]  # fmt: skip


# -- step-up, direct messages, reminders, escalation, expiry (policy's timings) ---------------


@pytest.fixture(scope="module")
def timed_opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    """The shipped policy, with the confidential tier asking for step-up to approve and
    notification timings of seconds: a reminder 2 s after a request (its lifetime is an
    hour), an escalation to the on-call rota after 1 s, a grant's holder told at once."""
    data = tmp_path_factory.mktemp("data") / "data"
    shutil.copytree(DEFAULT_BUNDLE_DIR, data)
    tiers = yaml.safe_load((data / "tiers.yaml").read_text())
    tiers["tiers"]["confidential"]["step_up"] = {"approve": {"max_age_s": 300}}
    (data / "tiers.yaml").write_text(yaml.safe_dump(tiers))
    timings = yaml.safe_load((data / "notifications.yaml").read_text())
    timings["notifications"]["tiers"]["confidential"] = {
        "remind_before_lapse_s": 3598,
        "warn_before_expiry_s": 1199,
        "escalation": [{"after_s": 1, "notify": {"roles": ["oncall"]}}],
    }
    (data / "notifications.yaml").write_text(yaml.safe_dump(timings))
    tarball = bundle.build(POLICY_DIR, data, data.parent / "b.tar.gz", "timed")
    with OpaProcess(tarball) as process:
        yield process


@pytest.fixture
def timed(db: Path, timed_opa: OpaProcess, slack: SlackRecorder) -> Iterator[Chat]:
    with chat_server(db, timed_opa, slack, channel=None) as served:  # by direct message
        yield served


def test_where_step_up_is_required_the_button_leads_to_the_console(timed: Chat):
    req = _request(timed)
    message = timed.posted(req.id, channel="U0BOB")  # a DM: bob's id, by his email
    assert _email("bob") in {c.args["email"] for c in timed.slack.of("users.lookupByEmail")}
    [post] = timed.slack.posts("U0BOB", f"request `{req.id}`")
    blocks = post.args["blocks"]
    assert not [b for b in blocks if b["type"] == "actions"]  # no Approve button
    [console] = [b for b in blocks if b.get("block_id") == f"console:{req.id}"]
    assert console["accessory"]["url"] == CONSOLE.replace("{id}", req.id)
    assert "sign-in at the identity provider within the last 300s" in console["text"]["text"]
    # A click sent anyway (an old message, a forged one) is refused by policy.
    answer = timed.click("U0BOB", "approve", req.id, message)
    assert answer.status_code == 403
    assert [r["code"] for r in answer.json()["error"]["reasons"]] == ["step_up_required"]
    assert timed.engine.get(req.id).state == "pending"
    [note] = wait_for(lambda: timed.slack.updates("could not approve"), "the refusal shown")
    assert CONSOLE.replace("{id}", req.id) in json.dumps(note.args["blocks"])


@pytest.mark.stores  # on SQLite and on PostgreSQL
def test_a_reminder_and_an_escalation_follow_policys_timings(timed: Chat):
    req = _request(timed)
    timed.posted(req.id, channel="U0BOB")
    # Escalated after 1 s with no decision: the on-call rota (oscar, jack), by DM.
    for rota in ("U0OSCAR", "U0JACK"):
        wait_for(lambda r=rota: timed.slack.posts(r, "Escalated: no decision yet"), "escalation")
    # Reminded 3598 s before it lapses: 2 s after it was made.
    [reminder] = wait_for(lambda: timed.slack.posts("U0BOB", "Reminder: approval needed"),
                          "the reminder")  # fmt: skip
    assert req.id in json.dumps(reminder.args["blocks"])
    timed.notices.plan()  # once each, however often looked for
    timed.notices.deliver()
    assert len(timed.slack.posts("U0BOB", "Reminder")) == 1
    assert len(timed.slack.posts("U0OSCAR", "Escalated")) == 1
    assert not timed.slack.posts("U0ALICE", "Escalated")  # never the requester


def test_a_grant_about_to_expire_tells_its_holder(timed: Chat):
    req = _request(timed)
    strong = Identity("bob", "jwt:t", time.time() + 600, auth_time=time.time(), amr=("mfa",))
    assert timed.engine.approve(req.id, "bob", "DE", strong).state == "active"
    [warning] = wait_for(lambda: timed.slack.posts("U0ALICE", "about to expire"), "the warning")
    assert f"datavisa extend {req.id}" in json.dumps(warning.args["blocks"])


# -- configuration -------------------------------------------------------------------------


def test_serve_config_reads_the_slack_secrets_from_files(tmp_path: Path):
    (tmp_path / "bot").write_text("xoxb-1\n")
    (tmp_path / "signing").write_text("s3cret\n")
    doc = {"public_url": "https://dv.example", "slack": {"bot_token_file": "bot",
           "signing_secret_file": "signing", "channel": "C1"}}  # fmt: skip
    cfg = config.from_dict(doc, tmp_path).slack
    assert (cfg.bot_token, cfg.signing_secret, cfg.channel) == ("xoxb-1", "s3cret", "C1")
    assert cfg.api_url == "https://slack.com/api/"
    assert cfg.console_link("r1") == "https://dv.example/#/requests/r1"
    assert "xoxb" not in repr(cfg) and "s3cret" not in repr(cfg)
    for bad, said in (
        ({"signing_secret_file": "signing"}, "slack.bot_token_file is required"),
        ({"bot_token_file": "nope", "signing_secret_file": "signing"}, "cannot read"),
        ({"bot_token_file": "bot", "signing_secret_file": "signing", "api_url": "ftp://x"},
         "slack.api_url"),
        ({"bot_token_file": "bot", "signing_secret_file": "signing", "chanel": "C1"},
         "slack.chanel is not a setting"),
    ):  # fmt: skip
        with pytest.raises(DataVisaError, match=said):
            config.from_dict({"slack": bad}, tmp_path)


def test_datavisa_serve_posts_takes_the_click_and_updates(tmp_path, opa, opa_args, slack):
    """The whole way: a `datavisa serve` process with `slack:` configured, the IdP's SCIM
    sync giving bob his email, a request over the API, bob's click, the message updated."""
    db = tmp_path / "datavisa.db"
    tokens = TokenStore(db)
    alice, okta = tokens.issue("alice")[0], tokens.issue("okta", "scim")[0]
    tokens.close()
    (tmp_path / "bot.token").write_text("xoxb-serve\n")
    (tmp_path / "signing.secret").write_text(SECRET + "\n")
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(
        "location: {networks: {127.0.0.0/8: DE}}\n"
        f"slack: {{bot_token_file: bot.token, signing_secret_file: signing.secret, "
        f"api_url: '{slack.api_url}', channel: {CHANNEL}, scan_every: 1s}}\n"
    )
    try:
        with serve_process("--config", str(cfg), "--db", str(db), *opa_args,
                           log=tmp_path / "serve.log") as proc:  # fmt: skip
            user = {"schemas": [USER], "userName": "bob", "active": True,
                    "emails": [{"value": _email("bob"), "primary": True}]}  # fmt: skip
            made = requests.post(proc.url + "/scim/v2/Users", json=user, timeout=10,
                                 headers={"Authorization": f"Bearer {okta}"})  # fmt: skip
            assert made.status_code == 201, made.text
            body = {"resource": RESOURCE, "duration": "20m", "location": "DE", "reason": "INC-8"}
            filed = Caller(proc.url, alice).post("/v1/requests", body)
            assert filed.status_code == 201, filed.text
            req_id = filed.json()["id"]
            [post] = wait_for(lambda: slack.posts(CHANNEL, f"request `{req_id}`"), "the post")
            assert post.token == "xoxb-serve"
            console = json.dumps(post.args["blocks"])
            assert f"{proc.url}/#/requests/{req_id}" in console  # default: the server's URL
            store = open_store(db)
            [(channel, ts)] = wait_for(
                lambda: store.db.execute(
                    "SELECT channel, ts FROM chat_messages WHERE request_id = ?", [req_id]
                ).fetchall(),
                "the message kept",
            )
            store.close()
            click = block_actions("U0BOB", "approve", req_id, channel, ts)
            answer = requests.post(proc.url + "/slack/interactions", data=click,
                                   headers=sign(click, SECRET), timeout=10)  # fmt: skip
            assert answer.status_code == 200, answer.text
            assert answer.json()["state"] == "active"
            wait_for(lambda: slack.updates("*Approved* by bob"), "the message updated")
    finally:
        client = opa.client()  # the session's OPA: nobody synced
        client.put_data("directory", {"people": {}})
        client.close()


def test_the_webhooks_request_message_names_the_people_who_may_approve(chat: Chat):
    req = _request(chat)
    body = approval_body(req, "", approvers_of(chat.engine, req))
    assert "Needs 1 from data_owner (may approve: bob)" in body["text"]
    assert "may approve: bob" in json.dumps(body["blocks"])
