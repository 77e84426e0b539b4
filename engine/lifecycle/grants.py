"""Where the store's live grants take effect: the grant outbox and the sinks that apply it.

The lifecycle writes every change to the live grants into the outbox (`record`), in the
same transaction as the state change and its audit event. `Grants` applies the outbox to
each sink and records how far each got (a cursor per sink, committed after the sink took
the change), so a change a sink missed is applied again until it lands: right after the
commit (`apply`), by the runner in `datavisa serve` with backoff, and in full when a sink
lost everything (`sync`, at start and after an OPA restart). `reconcile` compares what a
sink holds with the store and repairs drift; `prune` forgets what every sink applied. A
removal is in force only when every sink applied it (`pending`); until then the server is
not ready.

Changes are applied level-triggered: a sink is given the subject's live grants as the
store holds them now, not the delta, so replaying a change is harmless and order between
subjects does not matter.

The sinks are the OPA that decides (`OpaSink`, the data document `data.grants`, keyed by
subject, then grant id, so a check reads one subject's grants) and, when configured, an OPA
fleet fed by the bundle service (`fleet.FleetSink`), which has applied a change only once
its OPAs' status reports confirm it. Later sinks (a database's roles) are more `Sink`s
here; the lifecycle does not change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..ledger import audit
from ..model.durations import epoch_ns, rfc3339
from ..model.errors import SinkUnavailable
from ..model.records import (
    ACTIVE,
    BREAKGLASS_KIND,
    PRESENT,
    REMOVE,
    SYSTEM,
    TRANSFER_KIND,
    UNWATCHED,
    GrantChange,
    Request,
)  # fmt: skip
from ..policy.opa import OpaClient, OpaUnavailable
from ..store import Store

log = logging.getLogger("datavisa.grants")

GRANTS_PATH = "grants"  # data.grants: outside the bundle's roots, so the engine may write it
BATCH = 500  # outbox rows applied per round
# A sink cursor no engine confirmed for this long is a retired engine's: it no longer holds
# the outbox back. (Were its engine merely stuck, reconciling repairs what it missed.)
RETIRED_AFTER_S = 3600.0
ENGINE_LEASE = "engine:"  # + instance: held by each running engine sharing the store
OTHER_OPA_SINK = "sink:opa@"  # + instance: the cursor of another engine's own OPA
PROVISION_WITHIN_S = 120.0  # an activation a sink has not taken by then fails
# A sink's standing with a grant (the store's `provisioning`), as connectors write it;
# ENDED: the sink found the grant used against its terms, and policy ends it; KEPT: the
# grant ended, but what its account left could not all be removed (the sink retries).
REFUSED, ABANDONED, ENDED, KEPT = "failed", "abandoned", "ended", "kept"


def grant_doc(req: Request) -> dict[str, Any]:
    """One live grant as the access policy reads it (data.grants[subject][id]).

    `expires_at` restates `expires_ns` as the decision names it (RFC 3339 UTC, whole
    seconds, as OPA's time.format gives it), so the common allow need not format it. A
    supervised grant says whether a supervisor is present and whether its grace is over
    (engine/supervision): the access policy denies without one, a connector refuses its
    login, and ends its sessions once the grace is over."""
    expires_ns = epoch_ns(req.expires_at)
    doc = {
        "resource": req.resource,
        "actions": req.actions,
        "countries": req.countries,
        "evidence": req.evidence,
        "starts_ns": epoch_ns(req.activated_at),
        "expires_ns": expires_ns,
        "expires_at": None if expires_ns is None else rfc3339(expires_ns // 10**9),
        "revision": req.revision,
        "breakglass": req.kind == BREAKGLASS_KIND,
    }
    if req.supervised:  # what datavisa.access and the connectors read of its presence
        doc |= {
            "supervised": True,
            "supervisor_present": req.supervision_state == PRESENT,
            "sessions_ended": req.supervision_state == UNWATCHED,
        }
    return doc


def live_grants(store: Store, subject: str | None = None) -> dict[str, dict[str, Any]]:
    """The active grants the store holds, {subject: {grant id: grant_doc}}; a transfer is
    none (its pipeline's check reads the store)."""
    where, params = "state = ? AND kind != ?", [ACTIVE, TRANSFER_KIND]
    if subject is not None:
        where, params = where + " AND requester = ?", [*params, subject]
    docs: dict[str, dict[str, Any]] = {}
    for req in store.requests(where, params):
        docs.setdefault(req.requester, {})[req.id] = grant_doc(req)
    return docs


class Sink(Protocol):
    """A system where grants must exist to be enforced."""

    name: str

    def put_subject(self, subject: str, grants: dict[str, Any]) -> None:
        """Make the subject's grants exactly `grants` (none: an empty mapping)."""

    def put_all(self, grants: dict[str, dict[str, Any]]) -> None:
        """Make every subject's grants exactly `grants`."""

    def read_all(self) -> dict[str, dict[str, Any]]:
        """Every grant the sink holds now, as `put_all` takes them."""

    # Optional: `relevant(grants)`, the part of the store's live grants the sink holds, as
    # `read_all` reports them (a database holds only those that target it, in its own
    # terms); without it, the sink holds every grant as it is, as OPA does. `tidy()`,
    # called on each reconcile: try again what an earlier removal left behind.


def grants_pointer(subject: str) -> str:
    """The JSON pointer of a subject's grants in OPA's data (RFC 6901 escapes)."""
    return f"/{GRANTS_PATH}/" + subject.replace("~", "~0").replace("/", "~1")


class OpaSink:
    """The grants in the data of the OPA behind `client` (data.grants)."""

    def __init__(self, client: OpaClient, name: str = "opa") -> None:
        self.client, self.name = client, name

    def put_subject(self, subject: str, grants: dict[str, Any]) -> None:
        # Into the grants put_all pushed, never creating them: an OPA that restarted since
        # refuses it (SinkUnavailable, retried), rather than hold one subject's grants and
        # answer no_active_grant for everyone else before the full sync reaches it.
        self._call(self.client.add_data, grants_pointer(subject), grants)

    def put_all(self, grants: dict[str, dict[str, Any]]) -> None:
        self._call(self.client.put_data, GRANTS_PATH, grants)

    def read_all(self) -> dict[str, dict[str, Any]]:
        held = self._call(self.client.get_data, GRANTS_PATH)
        return held if isinstance(held, dict) else {}

    @staticmethod
    def _call(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except OpaUnavailable as e:
            raise SinkUnavailable(str(e)) from e


@dataclass(frozen=True)
class Lag:
    """How far one sink is behind the outbox."""

    sink: str
    changes: int  # outbox rows not yet applied
    removals: int  # of them, grants that ended
    oldest_at: float | None  # when the oldest unapplied row was written
    removed: tuple[GrantChange, ...] = ()  # the unapplied removals, the oldest 20


class Grants:
    """Applies the grant outbox of `store` to `sinks` (by default the OPA behind `opa`)."""

    def __init__(
        self, store: Store, opa: OpaClient | None = None, sinks: list[Sink] | None = None
    ) -> None:
        self.store = store
        self.sinks: list[Sink] = sinks if sinks is not None else ([OpaSink(opa)] if opa else [])
        # Held while reading the store and writing a sink, so a full sync cannot put back
        # a grant that a concurrent change has just taken out, and cursors move in order.
        self._lock = threading.RLock()
        # Set whenever a change is recorded, so the runner applies it without waiting.
        self.changed = threading.Event()
        self.drift_repairs: dict[str, int] = {}  # by sink: times reconcile put it right
        self.drifts: list[dict[str, Any]] = []  # drift found, not yet handed to the monitor
        # Whether this engine reconciles the sinks every engine on the store shares (those
        # marked `shared`: the fleet, a database); serve: the one holding the sweep lease.
        self.reconciles_shared: Callable[[], bool] = lambda: True

    @staticmethod
    def _cursor(sink: Sink) -> str:
        return f"sink:{sink.name}"

    def record(self, req: Request, change: str, now: float) -> None:
        """Write a change to `req`'s live grants to the outbox; call inside the
        transaction of the state change."""
        self.store.add_grant_change(now, req.requester, req.id, change)
        self.changed.set()

    def apply(self) -> list[str]:
        """Apply every unapplied outbox row to every sink; the names of the sinks still
        behind (empty when all caught up)."""
        behind = []
        with self._lock:
            for sink in self.sinks:
                try:
                    self._apply(sink)
                except SinkUnavailable as e:
                    log.warning("grant changes not yet applied to %s: %s", sink.name, e)
                    behind.append(sink.name)
        return behind

    def _apply(self, sink: Sink) -> None:
        while rows := self.store.grant_changes(self.store.cursor(self._cursor(sink)) or 0, BATCH):
            for subject in dict.fromkeys(row.subject for row in rows):
                sink.put_subject(subject, live_grants(self.store, subject).get(subject, {}))
            held = _held(sink, rows[-1].seq)
            with self.store.transaction(durable=False):  # a replay is harmless
                self.store.set_cursor(self._cursor(sink), held)
            if held < rows[-1].seq:
                raise SinkUnavailable(f"not every change is confirmed by {sink.name} yet")

    def sync(self, sinks: list[Sink] | None = None) -> None:
        """Replace every grant in the sinks with what the store holds, and mark the outbox
        applied up to now (at start, and when a sink lost its data). Raises
        SinkUnavailable when a sink does not take it."""
        with self._lock:
            for sink in self.sinks if sinks is None else sinks:
                head = self.store.grant_changes_head()  # read before the grants it covers
                sink.put_all(live_grants(self.store))
                with self.store.transaction(durable=False):
                    self.store.set_cursor(self._cursor(sink), _held(sink, head))

    def prune(self) -> int:
        """Forget the outbox rows every sink has applied, this engine's and those of the
        other engines sharing the store; how many."""
        if not self.sinks:
            return 0
        with self._lock:
            now = time.time()
            with self.store.transaction(durable=False):  # this engine's sinks are still here
                for sink in self.sinks:
                    if (seq := self.store.cursor(self._cursor(sink))) is not None:
                        self.store.set_cursor(self._cursor(sink), seq, now)
            cursors = self.store.sink_cursors(since=now - RETIRED_AFTER_S)
            applied = min(cursors.get(self._cursor(sink), 0) for sink in self.sinks)
            applied = min([applied, *cursors.values()])
            return self.store.forget_grant_changes(applied) if applied else 0

    def reconcile(self, sinks: list[Sink] | None = None) -> list[str]:
        """Compare what each sink (or each of `sinks`) holds with the store; put right any
        that differs. The names of the sinks that had drifted."""
        drifted = []
        if sinks is None:  # the periodic round: a shared sink by one engine at a time
            own = [s for s in self.sinks if not getattr(s, "shared", False)]
            sinks = self.sinks if len(own) == len(self.sinks) or self.reconciles_shared() else own
        with self._lock:
            for sink in sinks:
                try:
                    held, wanted = sink.read_all(), live_grants(self.store)
                    if relevant := getattr(sink, "relevant", None):
                        wanted = relevant(wanted)
                except SinkUnavailable as e:
                    log.warning("cannot reconcile %s: %s", sink.name, e)
                    continue
                # A grant whose change still waits in the outbox for this sink is the
                # outbox's work, not drift: it is compared once the change is applied.
                waiting = {row.grant_id for row in self._unapplied(sink)}
                held, wanted = _without(held, waiting), _without(wanted, waiting)
                if _normal(held) != _normal(wanted):
                    log.warning("the grants in %s differ from the store: repairing", sink.name)
                    self.sync([sink])
                    self._audit_drift(sink.name, _normal(held), _normal(wanted))
                    self.drift_repairs[sink.name] = self.drift_repairs.get(sink.name, 0) + 1
                    drifted.append(sink.name)
                if tidy := getattr(sink, "tidy", None):
                    try:
                        tidy()
                    except SinkUnavailable as e:
                        log.warning("cannot tidy %s: %s", sink.name, e)
        return drifted

    def _unapplied(self, sink: Sink) -> list[GrantChange]:
        """The outbox rows `sink` has not yet had from this engine (the first 10,000)."""
        after = self.store.cursor(self._cursor(sink)) or 0
        return self.store.grant_changes(after, limit=10_000)

    def _audit_drift(
        self, sink: str, held: dict[str, dict[str, Any]], wanted: dict[str, dict[str, Any]]
    ) -> None:
        """Record in the audit trail which grants a sink held differently from the store."""
        held_by_id = {gid: doc for docs in held.values() for gid, doc in docs.items()}
        wanted_by_id = {gid: doc for docs in wanted.values() for gid, doc in docs.items()}
        drift = {
            gid: ("not live" if gid not in wanted_by_id else
                  "missing" if gid not in held_by_id else "differs")
            for gid in held_by_id.keys() | wanted_by_id.keys()
            if held_by_id.get(gid) != wanted_by_id.get(gid)
        }  # fmt: skip
        with self.store.transaction():
            audit.append(
                self.store.db, at=time.time(), actor=SYSTEM, event="sink_drift",
                request_id=None, detail={"sink": sink, "grants": dict(sorted(drift.items()))},
            )  # fmt: skip
        self.drifts.append({"sink": sink, "grants": drift, "at_ns": time.time_ns()})

    def take_drifts(self) -> list[dict[str, Any]]:
        """The drift reconcile found since last asked, for the alert rules."""
        with self._lock:
            drifts, self.drifts = self.drifts, []
        return drifts

    def lag(self) -> list[Lag]:
        """How far each sink is behind the outbox."""
        out = []
        for sink in self.sinks:
            rows = self._unapplied(sink)
            removals = [
                row
                for row in rows
                if row.change == REMOVE and sink.name not in self.abandoned(row.grant_id)
            ]
            out.append(
                Lag(
                    sink.name,
                    len(rows),
                    len(removals),
                    rows[0].at if rows else None,
                    tuple(removals[:20]),
                )
            )
        return out

    def others_behind(self, grant_id: str, wait_s: float) -> list[str]:
        """The OPAs of the other running engines on the store (each holds its engine
        lease) that have not yet applied every change of `grant_id`, waited for up to
        `wait_s`: none on a store one engine has."""
        own = {self._cursor(sink) for sink in self.sinks}
        deadline = time.monotonic() + wait_s
        while True:
            last = self.store.grant_change_last(grant_id)
            running = self.store.held_leases(ENGINE_LEASE)
            behind = [
                name.removeprefix("sink:")
                for name, seq in self.store.sink_cursors().items()
                if name.startswith(OTHER_OPA_SINK)
                and name not in own
                and ENGINE_LEASE + name.removeprefix(OTHER_OPA_SINK) in running
                and seq < last
            ]
            if not behind or time.monotonic() >= deadline:
                return behind
            time.sleep(0.005)

    def pending(self, grant_id: str) -> list[str]:
        """The sinks that have not yet applied every change of `grant_id` (a sink of
        several systems, such as the fleet, names those that have not; an admin may have
        abandoned a removal: `abandoned`)."""
        given_up = self.abandoned(grant_id)
        pending = []
        for sink in self.sinks:
            if sink.name in given_up:
                continue
            after = self.store.cursor(self._cursor(sink)) or 0
            seqs = [row.seq for row in self.store.grant_changes(after) if row.grant_id == grant_id]
            if seqs:
                behind = getattr(sink, "behind", None)
                pending += behind(seqs[-1]) if behind else [sink.name]
        return pending

    # -- what the data systems said (the connectors' standing with each grant) ----------

    def abandoned(self, grant_id: str) -> set[str]:
        """The sinks whose removal of `grant_id` an admin abandoned (`revoke --force`)."""
        return {r["sink"] for r in self.store.provisioning(grant_id) if r["state"] == ABANDONED}

    def refused(self, grant_id: str) -> str | None:
        """Why a sink refused to provision `grant_id`, if one did."""
        why = [f"{r['sink']}: {r['detail']}" for r in self.store.provisioning(grant_id)
               if r["state"] == REFUSED]  # fmt: skip
        return "; ".join(why) or None

    def ended(self) -> list[tuple[str, str]]:
        """Active grants a sink says policy ends (ENDED): (grant id, why), for the sweep."""
        rows = self.store.provisioning_in(ENDED)
        return self._active({r["grant_id"]: f"{r['sink']}: {r['detail']}" for r in rows})

    def _active(self, found: dict[str, str]) -> list[tuple[str, str]]:
        """Of `found` (grant id: why), those still active, by id."""
        if not found:
            return []
        live = {r.id for r in self.store.requests(
            f"state = ? AND id IN ({', '.join('?' * len(found))})", [ACTIVE, *sorted(found)]
        )}  # fmt: skip
        return [(gid, why) for gid, why in sorted(found.items()) if gid in live]

    def unprovisioned(self, now: float) -> list[tuple[str, str]]:
        """Active grants a sink refused, or has not provisioned PROVISION_WITHIN_S after
        activation (it was retried meanwhile): (grant id, why), for the sweep to end."""
        out = {
            r["grant_id"]: f"{r['sink']}: {r['detail']}"
            for r in self.store.provisioning_in(REFUSED)
        }
        for sink in self.sinks:
            if not getattr(sink, "provisions", False):  # OPA: catches up, never refuses
                continue
            after = self.store.cursor(self._cursor(sink)) or 0
            for row in self.store.grant_changes(after, limit=10_000):
                if row.change != REMOVE and row.at <= now - PROVISION_WITHIN_S:
                    out.setdefault(
                        row.grant_id,
                        f"{sink.name} did not take it within {PROVISION_WITHIN_S:g}s "
                        "(retried with backoff meanwhile)",
                    )
        return self._active(out)


def _held(sink: Sink, seq: int) -> int:
    """How far `sink` holds the outbox, up to `seq`: all of it once it took the change,
    unless it confirms later (the fleet, by its OPAs' status reports: `held`)."""
    held = getattr(sink, "held", None)
    return held(seq) if held else seq


def _without(grants: dict[str, dict[str, Any]], ids: set[str]) -> dict[str, dict[str, Any]]:
    """`grants` (by subject, then grant id) without the grants `ids` names."""
    if not ids:
        return grants
    return {s: {g: d for g, d in held.items() if g not in ids} for s, held in grants.items()}


def _normal(grants: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Grants without the subjects that hold none (OPA keeps an emptied subject as {})."""
    return {subject: held for subject, held in grants.items() if held}


class Runner:
    """Applies the outbox in a thread of its own: at once when a change is recorded,
    again with backoff while a sink refuses, and reconciles every `reconcile_every_s`."""

    def __init__(
        self,
        grants: Grants,
        reconcile_every_s: float = 60.0,
        backoff_first_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        self.grants = grants
        self.reconcile_every_s = reconcile_every_s
        self.backoff_first_s, self.backoff_max_s = backoff_first_s, backoff_max_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="grant-sinks", daemon=True)

    def start(self) -> Runner:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.grants.changed.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        backoff, next_reconcile = self.backoff_first_s, time.monotonic() + self.reconcile_every_s
        # What a crash left in a data system (which keeps it across restarts, unlike OPA,
        # which serve syncs in full) is put right in the first round.
        at_start = [sink for sink in self.grants.sinks if getattr(sink, "provisions", False)]
        while not self._stop.is_set():
            self.grants.changed.clear()
            try:
                behind = self.grants.apply()
                if at_start and not behind:
                    self.grants.reconcile(at_start)
                    at_start = []
                if time.monotonic() >= next_reconcile and not behind:
                    self.grants.reconcile()
                    self.grants.prune()
                    next_reconcile = time.monotonic() + self.reconcile_every_s
            except Exception:  # a store fault: log it and try again, never die
                log.exception("applying grant changes failed")
                behind = ["store"]
            if behind:  # a new change (or a fleet's confirmation) cuts the wait short
                self.grants.changed.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            backoff = self.backoff_first_s
            wait = max(0.0, next_reconcile - time.monotonic())
            self.grants.changed.wait(min(wait, 1.0))
