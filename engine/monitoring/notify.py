"""Webhook notifications: alerts as they are raised, and new requests to their approvers.

Bodies are Slack-compatible JSON (`text`, and `blocks` for Slack's layout), so a Slack or
Mattermost incoming webhook shows them as they come and any other receiver can read
`text`. Each message is tried up to `attempts` times with exponential backoff: connection
errors, timeouts, 408, 429 and 5xx are tried again, any other answer is final. Every
attempt is recorded in the `deliveries` table (when, which attempt, status code or error,
outcome). A webhook URL is a secret (Slack's are), so only the webhook's name is stored
or logged.

New requests are found in the audit trail, as the monitor finds decisions in the decision
log: a cursor in SQLite, a look every `scan_s`, so requests made through the CLI on the
same database are announced too, and none twice.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from ..model.durations import format_duration, rfc3339
from ..model.errors import DataVisaError
from ..model.records import PENDING, Alert, Request, effective_state
from ..policy.opa import OpaUnavailable
from ..store import Store

log = logging.getLogger("datavisa.notify")

ALERTS, APPROVALS = "alerts", "approvals"
KINDS = frozenset({ALERTS, APPROVALS})
CURSOR = "approvals"
ATTEMPTS = 5
BACKOFF_S = 1.0  # then 2, 4, 8 s
TIMEOUT_S = 5.0
_RETRIED = {408, 425, 429}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Webhook:
    """Where to send what: `kinds` (alerts, approvals); for approvals, `groups` limits it
    to requests that need an approver from one of those groups (empty: every request)."""

    url: str
    name: str = ""
    kinds: frozenset[str] = KINDS
    groups: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DataVisaError(f"webhook url must be http(s)://HOST/..., not {self.url!r}")
        if not self.name:
            object.__setattr__(self, "name", parts.hostname)
        if not _NAME.fullmatch(self.name):
            raise DataVisaError(f"webhook name {self.name!r}: letters, digits, . _ -")
        if not self.kinds or not self.kinds <= KINDS:
            raise DataVisaError(f"webhook {self.name}: kinds are among {', '.join(sorted(KINDS))}")

    def wants(self, kind: str, groups: set[str] | None = None) -> bool:
        if kind not in self.kinds:
            return False
        return kind != APPROVALS or not self.groups or bool(self.groups & (groups or set()))


@dataclass
class Notifier:
    """Sends messages to webhooks from worker threads (`start`, `stop`)."""

    store: Store
    webhooks: tuple[Webhook, ...]
    base_url: str = ""  # where people reach the server, for commands and links
    attempts: int = ATTEMPTS
    backoff_s: float = BACKOFF_S
    timeout_s: float = TIMEOUT_S
    scan_s: float = 1.0
    clock: Callable[[], float] = time.time
    # Who policy lets approve a request (engine/chat: datavisa.notification), so its message
    # names people, not only groups; None: groups only.
    approvers: Callable[[Request], list[str]] | None = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)
    _scanner: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise DataVisaError("a webhook message is tried at least once")
        with self.store.transaction(durable=False) as db:
            if self.store.cursor(CURSOR) is None:
                # Requests made before notifications were set up are not announced now.
                head = db.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchone()
                self.store.set_cursor(CURSOR, head[0])

    # -- running --------------------------------------------------------------------------

    def start(self) -> Notifier:
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook")
        if any(APPROVALS in w.kinds for w in self.webhooks):
            self._scanner = threading.Thread(target=self._scan, name="approvals", daemon=True)
            self._scanner.start()
        return self

    def stop(self) -> None:
        """Stop: deliveries waiting to be tried again are given up (and recorded so)."""
        self._stop.set()
        if self._scanner is not None:
            self._scanner.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _scan(self) -> None:
        while not self._stop.wait(self.scan_s):
            try:
                self.scan_requests()
            except Exception:
                log.exception("looking for new requests failed; trying again")

    # -- what is sent ---------------------------------------------------------------------

    def alert(self, alert: Alert) -> None:
        """Send an alert to every webhook that takes alerts (Monitor calls this)."""
        body = alert_body(alert, self.base_url)
        for hook in self.webhooks:
            if hook.wants(ALERTS):
                self._send(hook, ALERTS, str(alert.id), body)

    def scan_requests(self) -> int:
        """Announce the requests made since the last look that wait for approval."""
        rows = self.store.db.execute(
            "SELECT seq, request_id FROM audit WHERE seq > ? "
            "AND event IN ('requested', 'extension_requested') ORDER BY seq LIMIT 200",
            [self.store.cursor(CURSOR) or 0],
        ).fetchall()
        sent, now = 0, self.clock()
        for seq, request_id in rows:
            with self.store.transaction(durable=False):
                # Claimed before it is announced: of the engines sharing the store, the
                # one that moves the cursor past it announces it.
                if (self.store.cursor(CURSOR) or 0) >= seq:
                    continue
                self.store.set_cursor(CURSOR, seq)
            req = self.store.get(request_id)
            if req is not None and req.approvals_required and effective_state(req, now) == PENDING:
                sent += self.request_pending(req)
        return sent

    def request_pending(self, req: Request) -> int:
        """Tell the approvers' webhooks about a request waiting for them; how many."""
        groups = {a["group"] for a in req.approvals_required}
        people = None
        if self.approvers is not None:
            try:
                people = self.approvers(req)
            except (OpaUnavailable, DataVisaError) as e:
                log.warning("cannot ask who may approve %s: %s", req.id, e)
        body = approval_body(req, self.base_url, people)
        hooks = [h for h in self.webhooks if h.wants(APPROVALS, groups)]
        for hook in hooks:
            self._send(hook, APPROVALS, req.id, body)
        return len(hooks)

    def deliveries(self, ref: str | None = None) -> list[dict[str, Any]]:
        """Every attempt recorded, oldest first; those of one alert or request with `ref`."""
        where, params = (None, []) if ref is None else ("ref = ?", [ref])
        return list(self.store.db["deliveries"].rows_where(where, params, order_by="id"))

    # -- delivering -----------------------------------------------------------------------

    def _send(self, hook: Webhook, kind: str, ref: str, body: dict[str, Any]) -> None:
        if self._pool is None or self._stop.is_set():
            raise DataVisaError("the notifier is not running")
        self._pool.submit(self._deliver, hook, kind, ref, body)

    def _deliver(self, hook: Webhook, kind: str, ref: str, body: dict[str, Any]) -> bool:
        for attempt in range(1, self.attempts + 1):
            status, error = None, None
            try:
                response = requests.post(
                    hook.url, json=body, timeout=self.timeout_s, allow_redirects=False
                )
                status = response.status_code
            except requests.RequestException as e:
                error = _redacted(e, hook)
            ok = status is not None and 200 <= status < 300
            retry = status is None or status in _RETRIED or status >= 500
            final = ok or not retry or attempt == self.attempts
            outcome = "delivered" if ok else "failed" if final else "retrying"
            self._record(kind, ref, hook, attempt, status, error, outcome)
            if final:
                if not ok:
                    log.warning("%s %s to webhook %s failed: %s", kind, ref, hook.name,
                                error or f"HTTP {status}")  # fmt: skip
                return ok
            if self._stop.wait(self.backoff_s * 2 ** (attempt - 1)):
                self._record(kind, ref, hook, attempt, None, "stopped", "failed")
                return False
        return False

    def _record(
        self,
        kind: str,
        ref: str,
        hook: Webhook,
        attempt: int,
        status: int | None,
        error: str | None,
        outcome: str,
    ) -> None:
        with self.store.transaction(durable=False) as db:
            db["deliveries"].insert(
                {
                    "kind": kind, "ref": ref, "webhook": hook.name, "attempt": attempt,
                    "at": self.clock(), "status": status, "error": error, "outcome": outcome,
                }
            )  # fmt: skip


def delivery_counts(store: Store) -> list[tuple[str, str, int]]:
    """(kind, outcome, attempts), for the metrics."""
    rows = store.db.execute(
        "SELECT kind, outcome, count(*) FROM deliveries GROUP BY kind, outcome ORDER BY 1, 2"
    ).fetchall()
    return [(k, o, n) for k, o, n in rows]


def _redacted(error: Exception, hook: Webhook) -> str:
    """The error without the webhook's URL, whose path is often its secret."""
    text = f"{type(error).__name__}: {error}"
    path = urlsplit(hook.url).path
    if path and path != "/":
        text = text.replace(path, "/…")
    return text.replace(hook.url, hook.name)[:300]


# -- message bodies -------------------------------------------------------------------------


def _escape(text: str) -> str:
    """Slack's mrkdwn reads <...> as links and mentions: show such text as it is."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def alert_body(alert: Alert, base_url: str = "") -> dict[str, Any]:
    """An alert as a Slack-compatible message."""
    text = f"[{alert.severity}] {alert.rule}: {alert.message}"
    evidence = ", ".join(f"`{e}`" for e in alert.evidence) or "-"
    context = f"alert {alert.id} · {rfc3339(alert.raised_at)} · decisions {evidence}"
    if base_url:
        context += f" · <{base_url}/|dashboard>"
    return {
        "text": text,
        "blocks": [
            _section(
                f"*{alert.severity.upper()}* `{alert.rule}` · {_escape(alert.subject)}\n"
                f"{_escape(alert.message)}"
            ),
            _context(context),
        ],
    }


def approve_commands(req: Request, base_url: str = "") -> tuple[str, str]:
    """What an approver runs to approve: the CLI command and the HTTP call."""
    server = f" --server {base_url}" if base_url else ""
    cli = f"datavisa approve {req.id} --from CC{server}"
    http = (
        f"curl -X POST {base_url or 'http://SERVER'}/v1/requests/{req.id}/approve "
        "-H 'Authorization: Bearer $DATAVISA_TOKEN' -H 'Content-Type: application/json' "
        """-d '{"location": "CC"}'"""
    )
    return cli, http


def approval_body(
    req: Request, base_url: str = "", approvers: list[str] | None = None
) -> dict[str, Any]:
    """A request waiting for approval, as a Slack-compatible message for its approvers;
    `approvers`, the people policy lets approve it, are named (None: not known)."""
    needs = ", ".join(f"{a['count']} from {a['group']}" for a in req.approvals_required)
    if approvers is not None:
        needs += f" (may approve: {', '.join(approvers) or 'nobody the directory names'})"
    what = "an extension of " + (req.parent_id or "") if req.kind == "extension" else "access"
    asks = (
        f"{req.requester} asks for {what} to {req.resource} ({', '.join(req.actions)}) "
        f"from {req.location} for {format_duration(req.duration_s)}"
    )
    lapses = f"{rfc3339(req.pending_until)} (in {format_duration(req.pending_until - time.time())})"
    cli, http = approve_commands(req, base_url)
    text = (
        f"Approval needed: {asks}. Reason: {req.reason or '-'}. Needs {needs}. "
        f"Lapses {lapses}.\nApprove (CC: the country you approve from): {cli}\n"
        f"or over HTTP: {http}\nDeny: datavisa deny {req.id}"
    )
    link = f" · <{base_url}/|dashboard>" if base_url else ""
    return {
        "text": text,
        "blocks": [
            _section(f"*Approval needed* for request `{req.id}`\n{_escape(asks)}"),
            _section(
                f"*Reason:* {_escape(req.reason or '-')}\n*Needs:* {needs}\n*Lapses:* {lapses}"
            ),
            _section(
                f"*Approve* (CC: the country you approve from):\n```{cli}```\n"
                f"or over HTTP:\n```{http}```\n*Deny:* `datavisa deny {req.id}`"
            ),
            _context(f"request {req.id} · policy revision {req.revision}{link}"),
        ],
    }
