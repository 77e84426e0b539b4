"""A click in Slack: a signed `block_actions` interaction, taken as the person it came
from, by asking the same approval decision the API asks.

The request's signature is checked first (slack.Signatures: v0 HMAC over the raw body,
signed within five minutes, not seen before); a request that fails any of it changes
nothing. The Slack user is then matched to a directory person by email (people.py); the
Approve button calls `Engine.approve` and Deny `Engine.deny` as that person, exactly as
POST /v1/requests/{id}/approve|deny do (the same decision, the same audit record naming
the person), with no sign-in the identity provider vouched for (so a tier that asks for
step-up refuses, and its message leads to the console instead) and the location unknown,
from the chat channel. Nothing here judges whether the person may: policy does, and its
reason is shown under the message. The message itself is updated through the notices
outbox, never from here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from ..lifecycle.engine import Engine
from ..location.origin import Origin
from ..model.errors import Conflict, DataVisaError, Denied, NotFound
from ..policy.opa import OpaUnavailable
from .messages import APPROVE, DENY, escape
from .notices import UPDATE, Notices
from .slack import Signatures, SlackFailed

CHAT = "chat"  # the channel a chat approval comes in by (input.origin.channel)
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_SLACK_ID = re.compile(r"^[A-Z0-9]{2,32}$")


@dataclass(frozen=True)
class Answer:
    """What the endpoint answers: HTTP status and a JSON body."""

    status: int
    body: dict[str, Any]


def _error(status: int, code: str, message: str, **more: Any) -> Answer:
    return Answer(status, {"error": {"code": code, "message": message, **more}})


class Interactions:
    def __init__(self, engine: Engine, notices: Notices, signatures: Signatures) -> None:
        self.engine, self.notices, self.signatures = engine, notices, signatures

    def take(self, body: bytes, timestamp: str | None, signature: str | None) -> Answer:
        """Check, then act on, one interaction as Slack sent it."""
        taken = self.signatures.check(body, timestamp, signature)
        if not isinstance(taken, str):
            return _error(401, taken.code, taken.message)
        payload = _payload(body)
        if isinstance(payload, Answer):
            return payload
        if payload.get("type") != "block_actions":
            return Answer(200, {"ok": True, "ignored": str(payload.get("type"))[:40]})
        action = _action(payload)
        if isinstance(action, Answer):
            return action
        verb, request_id = action
        if verb not in (APPROVE, DENY):
            return Answer(200, {"ok": True, "ignored": verb})  # the console link: Slack opens it
        user = (payload.get("user") or {}).get("id")
        if not isinstance(user, str) or not _SLACK_ID.fullmatch(user):
            need = "payload.user.id is required"
            return _error(400, "bad_payload", need, field="payload.user.id")
        target = _message(payload)
        if target is None or self.notices.message_of(*target) != request_id:
            return _error(400, "unknown_message", "the button is not on a message DataVisa posted "
                          "for this request", field="payload.container")  # fmt: skip
        try:
            person, email = self.notices.people.person_of(user)
        except SlackFailed as e:
            return _error(503, "slack_unavailable", f"cannot ask Slack who {user} is: {e}")
        if person is None:
            said = f"the email Slack holds for <@{user}> ({escape(email)})" if email else (
                f"<@{user}>'s Slack profile, which shows no email")  # fmt: skip
            note = f":no_entry: No directory person has {said}; nothing was decided."
            self._note(request_id, target, note, taken)
            return _error(403, "unknown_user", f"no directory person has the email of Slack user "
                          f"{user}; nothing was decided")  # fmt: skip
        return self._decide(verb, request_id, person, target, taken)

    def _decide(
        self, verb: str, request_id: str, person: str, target: list[str], taken: str
    ) -> Answer:
        try:
            if verb == APPROVE:
                req = self.engine.approve(request_id, person, "unknown", None, Origin(CHAT))
            else:
                req = self.engine.deny(request_id, person, "denied in Slack")
        except Denied as e:
            reasons = e.decision.reasons
            words = "; ".join(str(r.get("message", r.get("code"))) for r in reasons) or str(e)
            link = self.notices.config.console_link(request_id)
            where = f" <{link}|Open it in the console>." if link and _step_up(reasons) else ""
            note = f":no_entry: {escape(person)} could not {verb}: {escape(words)}.{where}"
            self._note(request_id, target, note, taken)
            return _error(403, "refused", f"{verb} refused: {words}", reasons=reasons)
        except (Conflict, NotFound) as e:
            self._note(request_id, target, f":warning: {escape(person)}: {escape(str(e))}", taken)
            return _error(409 if isinstance(e, Conflict) else 404, "conflict", str(e))
        except (OpaUnavailable, DataVisaError) as e:
            return _error(503, "policy_unavailable", f"nothing was decided: {e}")
        self.notices.wake()  # the audit event updates the messages through the outbox
        return Answer(200, {"ok": True, "request": req.id, "state": req.state, "by": person})

    def _note(self, request_id: str, target: list[str], note: str, taken: str) -> None:
        """Show `note` under the message clicked, through the outbox."""
        key = f"{UPDATE}:{request_id}:note:{taken}"
        self.notices.add(key, UPDATE, request_id, "", {"target": target, "note": note})


def _step_up(reasons: list[dict[str, Any]]) -> bool:
    return any(r.get("code") == "step_up_required" for r in reasons)


def _payload(body: bytes) -> dict[str, Any] | Answer:
    try:
        form = parse_qs(body.decode(), strict_parsing=True)
        [raw] = form["payload"]
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError, KeyError):
        return _error(400, "bad_payload", "the body must be a form with one `payload` field "
                      "holding JSON", field="payload")  # fmt: skip
    if not isinstance(payload, dict):
        return _error(400, "bad_payload", "payload must be a JSON object", field="payload")
    return payload


def _action(payload: dict[str, Any]) -> tuple[str, str] | Answer:
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        none = "payload.actions holds no action"
        return _error(400, "bad_payload", none, field="payload.actions")
    verb, value = actions[0].get("action_id"), actions[0].get("value", "")
    if not isinstance(verb, str) or not isinstance(value, str):
        return _error(400, "bad_payload", "an action needs action_id and value",
                      field="payload.actions[0]")  # fmt: skip
    if verb in (APPROVE, DENY) and not _ID.fullmatch(value):
        return _error(400, "bad_payload", "the action's value must be a request id",
                      field="payload.actions[0].value")  # fmt: skip
    return verb, value


def _message(payload: dict[str, Any]) -> list[str] | None:
    """The (channel, ts) of the message the button is on."""
    container = payload.get("container") or {}
    channel = container.get("channel_id") or (payload.get("channel") or {}).get("id")
    ts = container.get("message_ts") or (payload.get("message") or {}).get("ts")
    if isinstance(channel, str) and isinstance(ts, str):
        return [channel, ts]
    return None
