"""The notices outbox: what is to be told to whom in Slack, found, de-duplicated, and
delivered with retries, every attempt recorded.

Finding (`plan`, every `scan_every` and whenever woken):
- the audit trail, after a cursor (as the webhooks' notifier reads it): a new request
  waiting for approval is announced; a decision on a request already posted (approved,
  activated, denied, cancelled, lapsed ...) updates its messages;
- policy (`datavisa.notification.due`, on OPA's clock): the reminders before a request
  lapses, the escalation steps of a request nobody decided, and the expiry warning of a
  grant, each once.
Who is told is policy too (`datavisa.notification.recipients`): the people the approval
decision lets approve the request, an escalation step's groups and rota, a grant's holder.
With `slack.channel` a request's notice goes to the channel naming them; without, to each
of them by direct message. An expiry warning always goes to the holder directly.

Each notice is a row of `notices`, unique by its key (`requested:ID`, `reminder:ID`,
`escalation:ID:LEVEL`, `expiring:ID`, `update:ID:SEQ`; a direct message adds `:PERSON`),
so a notice found twice, by two scans or two engines, is sent once, as an alert raised
twice is one alert. Delivering (`deliver`) takes the rows due, calls Slack, keeps the
message's channel and ts (`chat_messages`) so it can be updated, and records each attempt
in `deliveries` (webhook `slack`); a failure Slack may mend (a connection error, 429, 5xx,
`ratelimited`) is tried again with backoff, up to `attempts` times.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..lifecycle.engine import Engine, approved_so_far, request_input
from ..model.records import ACTIVE, PENDING, Request, effective_state
from ..policy.opa import OpaUnavailable
from .messages import expiry_message, outcome_message, request_message
from .people import People
from .slack import SlackApi, SlackConfig, SlackFailed

log = logging.getLogger("datavisa.chat")

RECIPIENTS = "datavisa/notification/recipients"
DUE = "datavisa/notification/due"
CURSOR = "chat"
ATTEMPTS = 5
BACKOFF_S = 1.0  # then 2, 4, 8 s
BATCH = 50
CLAIM_S = 60.0  # how long a notice being sent is left to its sender
UPDATE = "update"
OUTCOME = "outcome"  # to the requester: approved (active, scheduled, extended) or denied
_TOLD = ("activated", "scheduled", "extension_applied", "denied")
_ANNOUNCED = ("requested", "extension_requested")
_DECIDED = ("approved", "activated", "scheduled", "denied", "cancelled", "lapsed",
            "extension_applied", "revoked")  # fmt: skip
SLACK = "slack"  # how `deliveries` names the Slack side


class Notices:
    """Finds notices and delivers them to Slack (see the module doc); `start`, `stop`."""

    def __init__(
        self,
        engine: Engine,
        config: SlackConfig,
        api: SlackApi | None = None,
        clock: Callable[[], float] = time.time,
        attempts: int = ATTEMPTS,
        backoff_s: float = BACKOFF_S,
    ) -> None:
        self.engine, self.store, self.config = engine, engine.store, config
        self.api = api or SlackApi(config)
        self.people = People(self.store, self.api, clock)
        self.clock, self.attempts, self.backoff_s = clock, attempts, backoff_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        with self.store.transaction(durable=False) as db:
            if self.store.cursor(CURSOR) is None:
                # Requests made before chat was set up are not announced now.
                head = db.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchone()
                self.store.set_cursor(CURSOR, head[0])

    # -- running --------------------------------------------------------------------------

    def start(self) -> Notices:
        self._thread = threading.Thread(target=self._run, name="chat-notices", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)

    def wake(self) -> None:
        """Look now (a decision was just taken), not at the next scan."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.scan_every_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.plan()
                self.deliver()
            except Exception:
                log.exception("chat notices failed; trying again")

    # -- finding --------------------------------------------------------------------------

    def plan(self) -> int:
        """Find what is new in the audit trail and what policy says is due; the notices
        added."""
        return self._from_audit() + self._from_policy()

    def _from_audit(self) -> int:
        added = 0
        rows = self.store.db.execute(
            "SELECT seq, request_id, event FROM audit WHERE seq > ? ORDER BY seq LIMIT 500",
            [self.store.cursor(CURSOR) or 0],
        ).fetchall()
        for seq, request_id, event in rows:
            req = self.store.get(request_id) if request_id else None
            if req is not None and event in _ANNOUNCED:
                if req.approvals_required and effective_state(req, self.clock()) == PENDING:
                    try:
                        added += self._announce(req, "requested", 0, f"requested:{req.id}")
                    except OpaUnavailable as e:
                        # Not past this event: it is announced once policy answers.
                        log.warning("cannot ask who to tell of %s yet: %s", req.id, e)
                        return added
            # An update shows the request as it stands when sent: one waiting is enough
            # for every event of a decision (approved, then activated).
            elif (
                req is not None
                and event in _DECIDED
                and self._posted(req.id)
                and not self._update_waiting(req.id)
            ):
                added += self.add(f"update:{req.id}:{seq}", UPDATE, req.id, "", {})
            if req is not None and event in _TOLD and self._posted(req.id):
                # The requester hears the outcome too, once.
                added += self.add(f"outcome:{req.id}", OUTCOME, req.id, req.requester, {})
            with self.store.transaction(durable=False):
                if (self.store.cursor(CURSOR) or 0) < seq:
                    self.store.set_cursor(CURSOR, seq)
        return added

    def _from_policy(self) -> int:
        now = self.clock()
        watched = self.engine.list_requests(state=PENDING) + self.engine.list_requests(state=ACTIVE)
        items = [_due_input(r) for r in watched if r.kind != "transfer" or r.state == PENDING]
        if not items or self.engine.opa is None:
            return 0
        try:
            due = self.engine.opa.query(DUE, {"requests": items}).result
        except OpaUnavailable as e:
            log.warning("cannot ask which notices are due: %s", e)
            return 0
        if not isinstance(due, list):
            log.warning("malformed answer from %s: %r", DUE, due)
            return 0
        by_id = {r.id: r for r in watched}
        added = 0
        for notice in due:
            req = by_id.get(notice.get("request_id"))
            key = notice.get("key")
            if req is None or not isinstance(key, str) or self._known(key):
                continue
            if effective_state(req, now) not in (PENDING, ACTIVE):
                continue
            try:
                added += self._announce(req, str(notice["kind"]), int(notice.get("level", 0)), key)
            except OpaUnavailable as e:
                log.warning("cannot ask who to tell of %s yet: %s", req.id, e)
                return added
        return added

    def _announce(self, req: Request, kind: str, level: int, key: str) -> int:
        """Ask policy who is told of `req` (`kind`, `level`), and add the notices."""
        if self._known(key):
            return 0
        said = recipients(self.engine, req, kind, level)
        detail = {
            "kind": kind,
            "level": level,
            "approvers": said.get("approvers", []),
            "notify": said["notify"],
            "chat_approve": bool(said.get("chat_approve")),
            "console_reasons": said.get("console_reasons", []),
        }
        if self.config.channel and kind != "expiring":
            return self.add(key, kind, req.id, "#" + self.config.channel, detail)
        # A direct message to each: the key alone marks the notice as found.
        added = self.add(key, kind, req.id, "", detail, state="planned")
        for person in said["notify"]:
            added += self.add(f"{key}:{person}", kind, req.id, person, detail)
        return added

    def add(
        self,
        key: str,
        kind: str,
        request_id: str,
        recipient: str,
        detail: dict[str, Any],
        state: str = "queued",
    ) -> int:
        """Add a notice unless one with its key exists; 1 when added, else 0."""
        now = self.clock()
        with self.store.transaction(durable=False) as db:
            added = db.execute(
                "INSERT INTO notices (key, kind, request_id, recipient, detail, created_at, "
                "state, attempts, next_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?) "
                "ON CONFLICT DO NOTHING RETURNING seq",
                [key, kind, request_id, recipient, json.dumps(detail), now, state, now],
            ).fetchone()
        if added is not None and state == "queued":
            self._wake.set()
        return int(added is not None and state == "queued")

    def _known(self, key: str) -> bool:
        found = self.store.db.execute("SELECT 1 FROM notices WHERE key = ?", [key]).fetchone()
        return found is not None

    def _update_waiting(self, request_id: str) -> bool:
        found = self.store.db.execute(
            "SELECT 1 FROM notices WHERE request_id = ? AND kind = ? AND state = 'queued' "
            "AND detail = '{}' LIMIT 1",
            [request_id, UPDATE],
        ).fetchone()
        return found is not None

    def _posted(self, request_id: str) -> bool:
        found = self.store.db.execute(
            "SELECT 1 FROM chat_messages WHERE request_id = ? LIMIT 1", [request_id]
        ).fetchone()
        return found is not None

    # -- delivering -----------------------------------------------------------------------

    def deliver(self) -> int:
        """Send the notices due; how many were delivered."""
        now = self.clock()
        rows = self.store.db.execute(
            "SELECT seq, key, kind, request_id, recipient, detail, attempts FROM notices "
            "WHERE state = 'queued' AND next_at <= ? ORDER BY seq LIMIT ?",
            [now, BATCH],
        ).fetchall()
        delivered = 0
        for seq, key, kind, request_id, recipient, detail, attempts in rows:
            if not self._claim(seq, now):
                continue  # another engine on the store is sending it
            attempt = attempts + 1
            try:
                self._send(kind, request_id, recipient, json.loads(detail or "{}"))
            except SlackFailed as e:
                final = not e.retry or attempt >= self.attempts
                self._settle(seq, key, attempt, "failed" if final else "queued", str(e), e.status)
                if final:
                    log.warning("chat notice %s failed: %s", key, e)
                continue
            self._settle(seq, key, attempt, "delivered", None, 200)
            delivered += 1
        return delivered

    def _claim(self, seq: int, now: float) -> bool:
        """Take a notice for sending: of the engines sharing the store, one sends it (a
        claim not settled within CLAIM_S, its engine killed, is taken again)."""
        with self.store.transaction(durable=False) as db:
            taken = db.execute(
                "UPDATE notices SET next_at = ? WHERE seq = ? AND state = 'queued' "
                "AND next_at <= ?",
                [now + CLAIM_S, seq, now],
            )
            return bool(taken.rowcount == 1)

    def _settle(
        self, seq: int, key: str, attempt: int, state: str, error: str | None, status: int | None
    ) -> None:
        now = self.clock()
        next_at = now + self.backoff_s * 2 ** (attempt - 1)
        outcome = {"queued": "retrying"}.get(state, state)
        with self.store.transaction(durable=False) as db:
            db.execute(
                "UPDATE notices SET state = ?, attempts = ?, next_at = ?, error = ?, done_at = ? "
                "WHERE seq = ?",
                [state, attempt, next_at, error, None if state == "queued" else now, seq],
            )
            db["deliveries"].insert(
                {"kind": "chat", "ref": key, "webhook": SLACK, "attempt": attempt, "at": now,
                 "status": status, "error": error, "outcome": outcome}
            )  # fmt: skip

    def _send(self, kind: str, request_id: str, recipient: str, detail: dict[str, Any]) -> None:
        req = self.store.get(request_id)
        if req is None:
            raise SlackFailed(f"no request {request_id}", retry=False)
        now = self.clock()
        link = self.config.console_link(req.id)
        if kind == UPDATE:
            self._update(req, detail, now)
            return
        if recipient.startswith("#"):
            channel = recipient[1:]
        else:
            found = self.people.slack_user_of(recipient)
            if found is None:
                raise SlackFailed(f"Slack knows no user by {recipient}'s directory email", False)
            channel = found
        if kind == "expiring":
            text, blocks = expiry_message(req, link, now)
        elif kind == OUTCOME:
            text, blocks = outcome_message(req, self.engine.approvals(req.id), link, now)
        else:
            ids = self._slack_ids([*detail.get("approvers", []), *detail.get("notify", [])])
            approvals = self.engine.approvals(req.id)
            text, blocks = request_message(req, approvals, detail, ids, link, now)
        channel_id, ts = self.api.post(channel, text, blocks)
        with self.store.transaction(durable=False) as db:
            db.execute(
                "INSERT INTO chat_messages (channel, ts, request_id, recipient, kind, detail, "
                "posted_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [channel_id, ts, req.id, recipient, kind, json.dumps(detail), now],
            )

    def _update(self, req: Request, detail: dict[str, Any], now: float) -> None:
        """Rewrite the request's messages as it stands now (one message, with `target`),
        with `note` beneath (a refusal's reason)."""
        rows = self.store.db.execute(
            "SELECT channel, ts, detail FROM chat_messages WHERE request_id = ? "
            "AND kind NOT IN ('expiring', 'outcome') ORDER BY posted_at",
            [req.id],
        ).fetchall()
        target = detail.get("target")
        approvals = self.engine.approvals(req.id)
        for channel, ts, posted in rows:
            if target and [channel, ts] != target:
                continue
            said = json.loads(posted or "{}")
            ids = self._slack_ids([*said.get("approvers", []), *said.get("notify", [])])
            link = self.config.console_link(req.id)
            text, blocks = request_message(
                req, approvals, said, ids, link, now, note=detail.get("note")
            )
            self.api.update(channel, ts, text, blocks)

    def _slack_ids(self, people: list[str]) -> dict[str, str | None]:
        """Mentions for the people named, where Slack knows them (a name otherwise)."""
        ids: dict[str, str | None] = {}
        for person in dict.fromkeys(people):
            try:
                ids[person] = self.people.slack_user_of(person)
            except SlackFailed:
                ids[person] = None
        return ids

    def message_of(self, channel: str, ts: str) -> str | None:
        """The request a message we posted is about, None for a message not ours."""
        row = self.store.db.execute(
            "SELECT request_id FROM chat_messages WHERE channel = ? AND ts = ?", [channel, ts]
        ).fetchone()
        return None if row is None else str(row[0])


def recipients(engine: Engine, req: Request, kind: str = "requested", level: int = 0) -> dict:
    """What policy says of who is told of `req` (datavisa.notification.recipients): the
    people who may approve it, those to tell for `kind` and `level`, whether chat may
    approve it. OpaUnavailable when policy gives no answer."""
    asked = {
        "kind": kind,
        "level": level,
        "request": request_input(req),
        **approved_so_far(engine.approvals(req.id)),
    }
    if engine.opa is None:
        raise OpaUnavailable("no OPA configured")
    said = engine.opa.query(RECIPIENTS, asked).result
    if not isinstance(said, dict) or not isinstance(said.get("notify"), list):
        raise OpaUnavailable(f"malformed answer from {RECIPIENTS}: {said!r}"[:300])
    return said


def approvers_of(engine: Engine, req: Request) -> list[str]:
    """The people policy would let approve `req` now (for the webhooks' messages)."""
    return [str(p) for p in recipients(engine, req).get("approvers", [])]


def _due_input(req: Request) -> dict[str, Any]:
    item: dict[str, Any] = {"id": req.id, "resource": req.resource, "state": req.state,
                            "created_at_s": req.created_at}  # fmt: skip
    if req.state == PENDING:
        item["pending_until_s"] = req.pending_until
    elif req.expires_at is not None:
        item["expires_at_s"] = req.expires_at
    return item
