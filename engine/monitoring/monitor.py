"""Real-time monitoring: the alert rules (rego/datavisa/monitor) judge each decision as it is
recorded, and the alerts they raise are stored, counted and handed on for delivery.

The decision log is the queue. A worker thread reads the records after its cursor (kept in
SQLite, so a restart resumes where it stopped and nothing is judged twice), gathers the
facts the rules need by looking up in SQLite, asks OPA which alerts each record raises
(all the records read at once, in one query), and stores the new alerts together with the
cursor in one transaction. DecisionLog wakes the worker after each commit; the worker lets
`gather_s` pass first, so an alert follows its decision within moments and a busy log is
judged in batches rather than record by record, off the decisions' path. It also looks by
itself every `poll_s`, which catches decisions that another process (the CLI) recorded in
the same database. The places each subject was seen in are kept as they are judged (table
`monitor_seen`), so gathering them costs the same however long the log grows.
When OPA cannot answer, the worker logs it and tries the same record again with backoff:
an alert may be late, never lost, and nothing in `serve` falls over.

Python only gathers facts; which of them are alarming, and how loud, is policy.
Overdue break-glass reviews, transfer deletions and filings follow from time alone, so
`check_reviews`, `check_deletions` and `check_filings` ask on a timer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..ledger.decision_log import READ_COLUMNS, DecisionLog, event_epoch, readable
from ..model.errors import NotFound
from ..model.records import (
    BREAKGLASS_KIND,
    EXPIRED,
    EXTENSION_KIND,
    RELINQUISHED,
    REVOKED,
    TRANSFER_KIND,
    Alert,
    Request,
    effective_state,
)
from ..policy.decide import APPROVAL
from ..policy.opa import OpaClient, OpaUnavailable
from ..store import Store
from ..store.schema import APPROVALS

log = logging.getLogger("datavisa.monitor")

BATCH_ALERTS = "datavisa/monitor/batch_alerts"
LOOKBACK = "datavisa/monitor/lookback"
MONITOR_PREFIX = "datavisa/monitor/"
SEVERITIES = ("info", "low", "medium", "high", "critical")
STATES = ("open", "acked")
CURSOR = "monitor"
BATCH = 200  # records judged together, in one OPA query and one transaction
GATHER_S = 0.2  # after a wake-up, how long records may gather before they are judged
LOOKBACK_TTL_S = 10.0  # the rules' windows are policy, re-read this often
MAX_EVIDENCE = 20  # decision ids an alert keeps, the newest: a repeat adds its own
_ENDED = (EXPIRED, REVOKED, RELINQUISHED)
_ENDED_AT = "coalesce(ended_at, expires_at)"  # when a grant ended, or ends by the clock
_ENDED_FEW = 5  # of the grants that ended last, how many are looked at


class Alerts:
    """The `alerts` table: one row per rule, subject and evidence, however often raised,
    and one open row per rule, subject, severity and dedup key within the rule's window
    (repeats are counted on it)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(
        self, found: list[dict[str, Any]], at: float, decision_id: str | None, seq: int | None
    ) -> list[Alert]:
        """Store what the rules raised at `at`; call inside `transaction()`. The alerts
        newly opened (a repeat counted on an open alert is not news: it is not returned).

        A repeat is the same rule, subject, severity and dedup_key as an open alert first
        raised less than the raise's `window_s` ago (policy says both): it adds one to the
        alert's count, moves last_raised_at, and takes the newest message and evidence. The
        same evidence raised again (a periodic check finding the same thing) changes nothing.
        """
        new = []
        db = self.store.db
        for alert in found:
            evidence = sorted(set(alert["evidence"]))
            dedup_key, window_s = alert.get("dedup_key", ""), alert.get("window_s", 0)
            if window_s > 0:
                row = db.execute(
                    "SELECT id, evidence FROM alerts WHERE rule = ? AND subject = ? "
                    "AND dedup_key = ? AND severity = ? AND state = 'open' AND raised_at > ? "
                    "ORDER BY id DESC LIMIT 1",
                    [alert["rule"], alert["subject"], dedup_key, alert["severity"], at - window_s],
                ).fetchone()
                if row is not None:
                    kept = json.loads(row[1])
                    if not set(evidence) <= set(kept):
                        newest = [e for e in kept if e not in evidence] + evidence
                        db.execute(
                            "UPDATE alerts SET count = count + 1, last_raised_at = ?, "
                            "message = ?, evidence = ? WHERE id = ?",
                            [at, alert["message"], json.dumps(newest[-MAX_EVIDENCE:]), row[0]],
                        )
                    continue
            key = hashlib.sha256(
                json.dumps([alert["rule"], alert["subject"], evidence]).encode()
            ).hexdigest()
            added = db.execute(
                "INSERT INTO alerts (key, rule, severity, subject, message, evidence, "
                "raised_at, state, decision_id, seq, count, last_raised_at, dedup_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, 1, ?, ?) "
                "ON CONFLICT DO NOTHING RETURNING id",
                [
                    key, alert["rule"], alert["severity"], alert["subject"], alert["message"],
                    json.dumps(evidence[-MAX_EVIDENCE:]), at, decision_id, seq, at, dedup_key,
                ],
            )  # fmt: skip
            if (row := added.fetchone()) is not None:
                new.append(self.get(row[0]))
        return new

    def get(self, alert_id: int) -> Alert:
        rows = list(self.store.db["alerts"].rows_where("id = ?", [alert_id]))
        if not rows:
            raise NotFound(f"no alert with id {alert_id}")
        return Alert.from_row(rows[0])

    def query(
        self,
        *,
        rule: str | None = None,
        severity: str | None = None,
        subject: str | None = None,
        state: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[Alert]:
        """Alerts oldest first, after id `after`."""
        clauses, params = ["id > ?"], [after]
        for column, value in (
            ("rule", rule), ("severity", severity), ("subject", subject), ("state", state),
        ):  # fmt: skip
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        rows = self.store.db["alerts"].rows_where(
            " AND ".join(clauses), params, order_by="id", limit=limit
        )
        return [Alert.from_row(r) for r in rows]

    def ack(self, alert_id: int, by: str, now: float | None = None) -> Alert:
        """Mark an open alert as seen by `by`; an acknowledged one stays as it was."""
        with self.store.transaction(durable=False) as db:
            alert = self.get(alert_id)
            if alert.state == "open":
                db.execute(
                    "UPDATE alerts SET state = 'acked', acked_by = ?, acked_at = ? WHERE id = ?",
                    [by, time.time() if now is None else now, alert_id],
                )
        return self.get(alert_id)

    def counts(self) -> list[tuple[str, str, str, int, int]]:
        """(rule, severity, state, alerts, times raised), for the metrics."""
        return [
            tuple(row)  # type: ignore[misc]
            for row in self.store.db.execute(
                "SELECT rule, severity, state, count(*), sum(count) FROM alerts "
                "GROUP BY rule, severity, state ORDER BY rule, severity, state"
            ).fetchall()
        ]

    def version(self) -> tuple[int, int, int]:
        """Changes whenever an alert is raised, raised again or acknowledged (live views):
        the newest id, how many are acknowledged, and how many raises in all."""
        row = self.store.db.execute(
            "SELECT coalesce(max(id), 0), count(acked_at), coalesce(sum(count), 0) FROM alerts"
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])


class Monitor:
    """Judges the decision log as it grows, in a thread of its own (`start`, `stop`)."""

    def __init__(
        self,
        decision_log: DecisionLog,
        opa: OpaClient | None,
        *,
        clock: Callable[[], float] = time.time,
        poll_s: float = 1.0,
        gather_s: float = GATHER_S,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.store, self.opa, self.clock = decision_log.store, opa, clock
        self.alerts = Alerts(self.store)
        self.poll_s, self.gather_s, self.backoff_max_s = poll_s, gather_s, backoff_max_s
        # Called with each newly raised alert, from the worker (delivery hooks in here).
        self.listeners: list[Callable[[Alert], None]] = []
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._lookback: tuple[float, dict[str, Any]] | None = None
        with self.store.transaction(durable=False) as db:
            if self.store.cursor(CURSOR) is None:
                # Monitoring starts now: what was logged before it is history, not news.
                head = db.execute("SELECT coalesce(max(seq), 0) FROM decision_log").fetchone()
                self.store.set_cursor(CURSOR, head[0])
        decision_log.listeners.append(self.wake)

    # -- the worker -----------------------------------------------------------------------

    def start(self) -> Monitor:
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join()

    def wake(self, _seq: int | None = None) -> None:
        """New records are in the log (DecisionLog calls this after each commit)."""
        self._wake.set()

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.is_set():
            if delay:
                self._stop.wait(delay)  # backing off: new records do not cut it short
            elif self._wake.wait(self.poll_s):
                self._stop.wait(self.gather_s)  # let a busy log's records gather
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_once()
                delay = 0.0
            except OpaUnavailable as e:
                delay = min(max(2 * delay, 0.5), self.backoff_max_s)
                log.warning("monitor: %s; trying the same record again in %.1fs", e, delay)
            except Exception:  # a bug must not stop monitoring for good
                delay = min(max(2 * delay, 0.5), self.backoff_max_s)
                log.exception("monitor failed; trying again in %.1fs", delay)

    def run_once(self) -> list[Alert]:
        """Judge every record after the cursor, oldest first; the alerts newly raised.

        Raises OpaUnavailable when OPA cannot answer; the cursor then stays before the
        records that could not be judged.
        """
        raised: list[Alert] = []
        while not self._stop.is_set():
            rows = self.store.db.execute(
                f"SELECT subject, {READ_COLUMNS} FROM decision_log WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                [self.store.cursor(CURSOR) or 0, BATCH],
            ).fetchall()
            if not rows:
                break
            read = [(subject, record[0], readable(*record)) for subject, *record in rows]
            known = _Facts(self.store, latest=max(event_epoch(event) for *_, event in read))
            judged: list[tuple[int, dict[str, Any]]] = []
            asked: list[dict[str, Any]] = []
            for subject, seq, event in read:
                event.pop("seq")
                # The monitor's own queries, uploaded by an OPA, are no news: judging them
                # would log another query, and so on for ever.
                if not str(event.get("path", "")).startswith(MONITOR_PREFIX):
                    judged.append((seq, event))
                    asked.append(
                        {"event": for_rules(event), "history": self.history(seq, event, known)}
                    )
                known.note(subject, event)
            found = self.evaluate_many(asked)
            with self.store.transaction(durable=False):
                new = [
                    alert
                    for (seq, event), alerts in zip(judged, found, strict=True)
                    for alert in self.alerts.add(alerts, self.clock(), event["decision_id"], seq)
                ]
                known.save()
                self.store.set_cursor(CURSOR, rows[-1][1])
            self._announce(new)
            raised += new
        return raised

    def check_reviews(self) -> list[Alert]:
        """Ask about every break-glass grant not yet reviewed (serve does this every minute)."""
        reviews = [
            {
                "grant_id": r.id,
                "subject": r.requester,
                "resource": r.resource,
                "review_due_ns": int(r.review_due * 1e9),
                "decision_id": r.decision_id,
            }
            for r in self.store.requests(
                "kind = ? AND reviewed_at IS NULL AND review_due IS NOT NULL", [BREAKGLASS_KIND]
            )
        ]
        return self._check_facts("breakglass_reviews", reviews)

    def check_deletions(self) -> list[Alert]:
        """Ask about every transfer's copy kept for a limited time and not yet reported
        deleted (serve does this every minute)."""
        copies = [
            {
                "transfer_id": r.id,
                "subject": r.requester,
                "resource": r.resource,
                "target_region": r.target_region,
                "delete_by_ns": int(r.delete_by * 1e9),
                "decision_id": r.decision_id,
            }
            for r in self.store.requests(
                "kind = ? AND deleted_at IS NULL AND delete_by IS NOT NULL", [TRANSFER_KIND]
            )
        ]
        return self._check_facts("transfer_deletions", copies)

    def check_filings(self) -> list[Alert]:
        """Ask about every filing due after an exporter's first transfer and not yet
        recorded (serve does this every minute)."""
        due = [
            {
                "filing": d["filing"],
                "exporter": d["exporter"],
                "first_transfer_id": d["first_transfer_id"],
                "first_transfer_ns": int(d["first_transfer_at"] * 1e9),
                "due_ns": int(d["due_at"] * 1e9),
                "decision_id": d["decision_id"],
            }
            for d in self.store.filing_deadlines(open_only=True)
        ]
        return self._check_facts("filing_deadlines", due)

    def check_enforcement(self, removals: list[dict[str, Any]]) -> list[Alert]:
        """Ask about grant removals a sink has not applied yet (serve does this while
        there are any): each {sink, subject, grant_id, ended_ns}."""
        return self._check_facts("unapplied_removals", removals)

    def _check_facts(self, name: str, facts: list[dict[str, Any]]) -> list[Alert]:
        """The periodic check: the alerts newly raised on `facts` as history `name`."""
        if not facts:
            return []
        [found] = self.evaluate_many([{"history": {name: facts}}])
        with self.store.transaction(durable=False):
            new = self.alerts.add(found, self.clock(), None, None)
        self._announce(new)
        return new

    def check_history(self, history: dict[str, list[dict[str, Any]]]) -> list[Alert]:
        """Ask the rules about facts no decision brings: removals an admin abandoned
        (abandoned_removals), drift a reconcile put right (sink_drifts), statements a
        provisioned database role ran (statements)."""
        history = {key: facts for key, facts in history.items() if facts}
        if not history:
            return []
        [found] = self.evaluate_many([{"history": history}])
        with self.store.transaction(durable=False):
            new = self.alerts.add(found, self.clock(), None, None)
        self._announce(new)
        return new

    def _announce(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            log.info("alert %s [%s] %s: %s", alert.id, alert.severity, alert.rule, alert.message)
            for listener in self.listeners:
                try:
                    listener(alert)
                except Exception:
                    log.exception("alert listener %r failed", listener)

    # -- asking the rules -----------------------------------------------------------------

    def evaluate_many(self, asked: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """The alerts for each {event, history} in `asked` (no event: the periodic check),
        in one query."""
        if not asked:
            return []
        # As JSON text: OPA's API authorization turns the whole body into a Rego value
        # before the query runs (and the handler once more), cheap for one string and not
        # for a list of records (a quarter of OPA's CPU for the batch).
        text = json.dumps(asked, separators=(",", ":"))
        answer = self._opa().query(BATCH_ALERTS, {"batch_json": text}).result
        if (
            not isinstance(answer, list)
            or len(answer) != len(asked)
            or not all(isinstance(one, list) and all(map(_well_formed, one)) for one in answer)
        ):
            raise OpaUnavailable(f"malformed answer from {BATCH_ALERTS}: {answer!r}"[:300])
        return answer

    def lookback(self) -> dict[str, Any]:
        """How far back the rules want history, in seconds (policy; re-read now and then)."""
        now = time.monotonic()
        if self._lookback is None or now - self._lookback[0] > LOOKBACK_TTL_S:
            answer = self._opa().query(LOOKBACK, {}).result
            if not isinstance(answer, dict):
                raise OpaUnavailable(f"malformed answer from {LOOKBACK}: {answer!r}"[:300])
            self._lookback = (now, answer)
        return self._lookback[1]

    def _opa(self) -> OpaClient:
        if self.opa is None:
            raise OpaUnavailable("no OPA configured")
        return self.opa

    # -- gathering facts ------------------------------------------------------------------

    def history(self, seq: int, event: dict[str, Any], known: _Facts) -> dict[str, Any]:
        """The facts about the past the rules are given with the record at `seq` (judged
        in order: `known` holds what the records before it showed)."""
        inp = event.get("input") if isinstance(event.get("input"), dict) else {}
        at = event_epoch(event)
        facts: dict[str, Any] = {}
        subject, resource = inp.get("subject"), inp.get("resource")
        if isinstance(subject, str):
            since = at - self.lookback().get("countries_s", 0)
            facts["countries_seen"] = known.places(subject, since)
            if isinstance(resource, str) and (
                ended := self._last_grant_end(known.ended(subject, resource, at), at)
            ):
                facts["last_grant_end"] = ended
        if event.get("path") == APPROVAL and isinstance(inp.get("approver"), str):
            since = at - self.lookback().get("approvals_s", 0)
            facts["approvals"] = self._approvals(seq, since, inp["approver"])
        return facts

    def _last_grant_end(self, grants: list[Request], at: float) -> dict[str, Any] | None:
        """Of a subject's grants on a resource, the one that ended last, no later than `at`."""
        now, last = self.clock(), None
        for req in grants:
            state = effective_state(req, now)
            ended = req.ended_at if req.ended_at is not None else req.expires_at
            latest = last is None or (ended is not None and ended > last[0])
            if state in _ENDED and ended is not None and ended <= at and latest:
                last = (ended, req, state)
        if last is None:
            return None
        ended, req, state = last
        return {
            "grant_id": req.id,
            "state": state,
            "ended_ns": int(ended * 1e9),
            "decision_id": req.decision_id,
        }

    def _approvals(self, seq: int, since: float, approver: str) -> dict[str, Any]:
        """The approvals allowed since `since` up to the record at `seq`, counted: all of
        them, those `approver` gave, and the decision ids of approver's newest few. Counts,
        not lists: a busy window holds thousands, and every approval is judged on it."""
        db = self.store.db
        total, mine = db.execute(
            "SELECT count(*), coalesce(sum(CASE WHEN subject = ? THEN 1 ELSE 0 END), 0) "
            f"FROM decision_log WHERE {APPROVALS} AND at >= ? AND seq <= ?",
            [approver, since, seq],
        ).fetchone()
        recent = db.execute(
            f"SELECT decision_id FROM decision_log WHERE {APPROVALS} AND subject = ? "
            "AND at >= ? AND seq <= ? ORDER BY at DESC, seq DESC LIMIT ?",
            [approver, since, seq, MAX_EVIDENCE],
        ).fetchall()
        return {"total": total, "mine": mine, "recent": [d for (d,) in reversed(recent)]}


class _Facts:
    """What the monitor looks up while judging one batch of records, each looked up once.

    The places each subject was seen in, and when last: table `monitor_seen`, as of the
    records judged so far, with those of the batch being judged on top until `save`. The
    grants of a subject on a resource that ended last before a time, as the store has them
    now.
    """

    def __init__(self, store: Store, latest: float) -> None:
        self.store = store
        self._places: dict[str, dict[str, float]] = {}
        self._changed: set[tuple[str, str]] = set()
        self._ended: dict[tuple[str, str, float], list[Request]] = {}
        self._latest = latest  # when the batch's newest record was made
        self._none_ended: dict[tuple[str, str], bool] = {}

    def ended(self, subject: str, resource: str, at: float) -> list[Request]:
        """The subject's grants on the resource (not extensions) that ended last no later
        than `at`, newest first: a few, however many the subject held before (a list of
        all of them was read for every record, and grew with every grant).

        Asked first, once a batch for a subject and resource: did any end by the batch's
        newest record? Most did not, and then no record of theirs in the batch needs its
        own query."""
        key = (subject, resource, at)
        if key not in self._ended:
            pair = (subject, resource)
            if pair not in self._none_ended:
                self._none_ended[pair] = not self._ended_by(subject, resource, self._latest, 1)
            if self._none_ended[pair] and at <= self._latest:
                self._ended[key] = []
            else:
                self._ended[key] = self._ended_by(subject, resource, at, _ENDED_FEW)
        return self._ended[key]

    def _ended_by(self, subject: str, resource: str, at: float, limit: int) -> list[Request]:
        return self.store.requests(
            f"requester = ? AND resource = ? AND {_ENDED_AT} <= ? AND kind NOT IN (?, ?) "
            "AND activated_at IS NOT NULL",
            [subject, resource, at, EXTENSION_KIND, TRANSFER_KIND],
            order_by=f"{_ENDED_AT} DESC",
            limit=limit,
        )

    def _of(self, subject: str) -> dict[str, float]:
        if subject not in self._places:
            rows = self.store.db.execute(
                "SELECT location, last_at FROM monitor_seen WHERE subject = ?", [subject]
            ).fetchall()
            self._places[subject] = dict(rows)
        return self._places[subject]

    def places(self, subject: str, since: float) -> list[str]:
        """Where `subject` was seen at or after `since`, sorted."""
        return sorted(place for place, at in self._of(subject).items() if at >= since)

    def note(self, subject: str | None, event: dict[str, Any]) -> None:
        """The record `event` (of `subject`, as logged) has been judged: remember its place."""
        inp = event.get("input")
        place = inp.get("location") if isinstance(inp, dict) else None
        if isinstance(subject, str) and isinstance(place, str):
            places, at = self._of(subject), event_epoch(event)
            if at >= places.get(place, at):
                places[place] = at
                self._changed.add((subject, place))

    def save(self) -> None:
        """Write the places noted down; call inside `transaction()`, with the cursor."""
        self.store.db.conn.executemany(
            "INSERT INTO monitor_seen (subject, location, last_at) VALUES (?, ?, ?) "
            "ON CONFLICT(subject, location) DO UPDATE SET last_at = CASE WHEN "
            "excluded.last_at > monitor_seen.last_at THEN excluded.last_at "
            "ELSE monitor_seen.last_at END",
            [(s, p, self._places[s][p]) for s, p in sorted(self._changed)],
        )
        self._changed.clear()


JUDGED_FIELDS = ("decision_id", "path", "input", "result", "timestamp")


def for_rules(event: dict[str, Any]) -> dict[str, Any]:
    """The parts of a record the alert rules are given (rego/datavisa/monitor: its Input),
    with each reason as its code alone: OPA parses every record of a batch, and the rest
    (labels, bundles, the reasons' prose) would be half of what it parses."""
    judged = {k: event[k] for k in JUDGED_FIELDS if k in event}
    result = judged.get("result")
    if isinstance(result, dict) and isinstance(result.get("reasons"), list):
        codes = [{"code": r.get("code")} for r in result["reasons"] if isinstance(r, dict)]
        judged["result"] = {**result, "reasons": codes}
    return judged


_FIELDS = {
    "rule": str, "severity": str, "subject": str, "message": str, "evidence": list,
    "dedup_key": str, "window_s": int | float,
}  # fmt: skip


def _well_formed(alert: Any) -> bool:
    return (
        isinstance(alert, dict)
        and all(isinstance(alert.get(k), t) for k, t in _FIELDS.items())
        and alert["severity"] in SEVERITIES
        and all(isinstance(e, str) for e in alert["evidence"])
        and not isinstance(alert["window_s"], bool)
        and alert["window_s"] >= 0
    )
