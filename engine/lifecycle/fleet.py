"""A fleet of OPAs fed by the engine's bundle service: what each one holds, and the sink
whose removals are complete only when every trusted OPA says it holds them.

Sidecar OPAs download two bundles from the engine over OPA's bundle protocol: the policy
bundle `datavisa serve` built (roots `datavisa`, `system/log`) and a live-grants data
bundle (root `grants`: `data.grants`, the very document `OpaSink` writes to the engine's
own OPA). The grants bundle's revision is the grant outbox's head, the seq of its newest
row: every change up to it is in the bundle. So an OPA whose status report says it runs
grants revision R holds every change up to outbox row R, on any engine sharing the store.

`Fleet` builds those bundles (a snapshot, or a delta of the subjects changed since the
revision an OPA holds, when the outbox still has every row since), wakes the long polls
when the outbox moves, and records status reports: each trusted OPA's confirmed grants
revision is a cursor in the store (`opa:NAME`), so it survives a restart and is shared by
engines on one database; so is when one was last heard from (`opa-contact:NAME`, in ms),
since a sidecar polls one engine while a change made through another waits for it. A
report from an OPA not in `FleetConfig.opas` is recorded and shown, never trusted.
`FleetSink` is the fleet in the grant outbox: it has applied a change once every trusted
OPA confirmed a revision at or past it; `held` waits for that a bounded time
(`confirm_within`), so a revoke answers once the fleet denies, or names the OPAs that have
not confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import logging
import tarfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model.errors import DataVisaError, StorageUnavailable
from ..policy.bundle import sidecar
from ..store import Store
from .grants import GRANTS_PATH, grants_pointer, live_grants

log = logging.getLogger("datavisa.fleet")

GRANTS_BUNDLE = "grants"  # the name sidecars give the live-grants bundle (opa-config)
POLICY_BUNDLE = "datavisa"  # ... and the policy bundle
CONTENT_TYPE = "application/vnd.openpolicyagent.bundles"  # tells OPA long polling works
DEFAULT_CONFIRM_WITHIN_S = 1.0
DEFAULT_STALE_AFTER_S = 30.0
DEFAULT_LONG_POLL_S = 10
_LOOK_AGAIN_S = 0.02  # a revoke waiting for the fleet reads the store this often
_MAX_DELTA_ROWS = 5_000  # more changes than this since an OPA's revision: a snapshot
CONTACT_EVERY_S = 1.0  # how often an engine writes down that it heard from a trusted OPA
_SCOPES_KEPT = 16  # grants snapshots kept, one a scope (the resources a sidecar guards)


@dataclass(frozen=True)
class FleetConfig:
    """The OPAs the engine trusts to confirm grant changes, and its bounds."""

    opas: tuple[str, ...] = ()  # the subjects of the trusted OPAs' opa tokens
    confirm_within_s: float = DEFAULT_CONFIRM_WITHIN_S  # a change waits this long for them
    stale_after_s: float = DEFAULT_STALE_AFTER_S  # behind (or silent) longer: stale
    long_poll_s: int = DEFAULT_LONG_POLL_S  # the long-poll wait opa-config tells sidecars
    # Delta bundles to OPAs that ask for them. Off by default: OPA v1.22 activates a delta
    # on the compiler its queries use, and while it does (tens of ms here) the policy's
    # decisions are undefined, so a sidecar briefly answers nothing (docs/deploy.md).
    deltas: bool = False


@dataclass
class Member:
    """What the engine has heard of one OPA (by its token's subject)."""

    name: str
    trusted: bool
    last_contact: float | None = None  # its last bundle request or status report
    last_report: float | None = None
    reported_revision: str | None = None  # the grants revision in its last report
    policy_revision: str | None = None
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MemberView:
    """One OPA as /v1/fleet, /health and `datavisa fleet` show it."""

    name: str
    trusted: bool
    confirmed: int  # the grants revision (outbox seq) it holds, by its reports
    lag: int  # grant changes it does not hold yet (outbox head - confirmed)
    behind_s: float  # how long since the oldest change it does not hold was written
    stale: bool  # behind, or silent, for longer than stale_after
    last_contact: float | None
    last_report: float | None
    policy_revision: str | None
    errors: tuple[str, ...]


def revision_of(etag: str) -> int | None:
    """The grants revision an ETag names (`"42"`), None when it names none."""
    value = etag.strip().removeprefix("W/").strip('"')
    return int(value) if value.isdigit() else None


def _json(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def _tarball(files: dict[str, Any]) -> bytes:
    """A gzipped bundle holding each of `files` (path → JSON document, or its text)."""
    out = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for name, doc in files.items():
            body = (doc if isinstance(doc, str) else _json(doc)).encode()
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


Scope = tuple[str, ...]  # the resources a sidecar's grants bundle holds, sorted; () all


def _in_scope(held: dict[str, Any], scope: Scope) -> dict[str, Any]:
    """Of one subject's grants (by id), those on a resource in `scope` (all for ())."""
    return {gid: g for gid, g in held.items() if not scope or g["resource"] in scope}


def _by_resource(held: dict[str, Any]) -> dict[str, str]:
    """One subject's grants (by id) as JSON object members, by the resource they are on."""
    out: dict[str, list[str]] = {}
    for gid in sorted(held):
        out.setdefault(held[gid]["resource"], []).append(f"{_json(gid)}:{_json(held[gid])}")
    return {resource: ",".join(members) for resource, members in out.items()}


def _members(by_resource: dict[str, str], scope: Scope) -> str:
    """The JSON object members of one subject's grants in `scope` (all for ())."""
    wanted = scope or sorted(by_resource)
    return ",".join(by_resource[r] for r in wanted if r in by_resource)


class Fleet:
    """The bundle service's state: the bundles it serves, and what each OPA reported."""

    def __init__(
        self,
        store: Store,
        config: FleetConfig | None = None,
        policy_bundle: Path | None = None,
        policy_revision: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.config = store, config or FleetConfig()
        self.policy_bundle, self.policy_revision = policy_bundle, policy_revision
        self.clock = clock
        self.members: dict[str, Member] = {
            name: Member(name, trusted=True) for name in self.config.opas
        }
        self._lock = threading.Lock()
        self._reported = threading.Condition(self._lock)  # a status report confirmed more
        self._confirmations = 0  # how many have, so a waiter misses none between looks
        # (revision, tarball), the newest, of each scope sidecars asked for (() is every
        # resource), the most recently asked kept
        self._snapshots: OrderedDict[Scope, tuple[int, bytes]] = OrderedDict()
        self._snapshot_lock = threading.Lock()
        # subject → resource → its live grants there, as JSON object members ...
        self._subjects: dict[str, dict[str, str]] = {}
        self._subjects_at = 0  # ... at this revision (0: not read yet)
        self._policy: bytes | None = None
        self._policy_lock = threading.Lock()  # built once, by the first sidecar to ask
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._shared: dict[str, float] = {}  # by OPA: when its contact was last written down
        # Called when a trusted OPA confirms a newer revision (serve: the outbox runner
        # looks again at once, so a late confirmation lands without waiting out a backoff).
        self.on_confirm: Callable[[], None] | None = None

    # -- the bundles ----------------------------------------------------------------------

    def head(self) -> int:
        """The grants revision now: the newest outbox row's seq."""
        return self.store.grant_changes_head()

    def policy(self) -> bytes | None:
        """The policy bundle for sidecars, built once from the one serve runs: only the
        modules the access decision needs (bundle.sidecar), so each grants activation has
        little to compile; None with an external OPA."""
        with self._policy_lock:
            if self._policy is None and self.policy_bundle is not None:
                try:
                    self._policy = sidecar(Path(self.policy_bundle))
                except (DataVisaError, tarfile.TarError) as e:  # the same answers, slower
                    log.warning("serving sidecars the whole policy bundle: %s", e)
                    self._policy = Path(self.policy_bundle).read_bytes()
        return self._policy

    def grants_bundle(
        self, since: int | None, delta_ok: bool, scope: Scope = ()
    ) -> tuple[int, bytes, bool]:
        """(revision, tarball, is_delta): the live grants now, as a delta from `since` when
        the OPA takes deltas and the outbox still holds every change since, else whole.
        With a `scope` (resource names, sorted), only the grants on those resources: a
        sidecar guarding a few resources parses only their grants on each activation."""
        if delta_ok and since is not None:
            head = self.head()  # read before the grants it covers
            if 0 < since < head and (patch := self._patch(since, head, scope)):
                manifest = {"revision": str(head), "roots": [GRANTS_PATH]}
                return head, _tarball({"/.manifest": manifest, "/patch.json": patch}), True
        return (*self._whole(scope), False)

    def _whole(self, scope: Scope = ()) -> tuple[int, bytes]:
        """(revision, tarball) of every live grant (in `scope`) at the head now. The long
        polls a change wakes all ask at once: the first builds it, the others share it."""
        with self._snapshot_lock:
            head = self.head()  # read before the grants it covers
            held = self._snapshots.get(scope)
            if held is None or held[0] != head:
                self._refresh_subjects(head)
                members = (
                    (subject, _members(by_resource, scope))
                    for subject, by_resource in sorted(self._subjects.items())
                )
                data = ",".join(f"{_json(s)}:{{{m}}}" for s, m in members if m)
                files = {
                    "/.manifest": {"revision": str(head), "roots": [GRANTS_PATH]},
                    "/data.json": f'{{"{GRANTS_PATH}":{{{data}}}}}',
                }
                held = self._snapshots[scope] = (head, _tarball(files))
            self._snapshots.move_to_end(scope)
            while len(self._snapshots) > _SCOPES_KEPT:
                self._snapshots.popitem(last=False)
            return held

    def reread(self) -> None:
        """Build the next snapshot from every grant in the store (a full sync: whatever the
        outbox says, the store is the record)."""
        with self._snapshot_lock:
            self._snapshots.clear()
            self._subjects_at = 0

    def _refresh_subjects(self, head: int) -> None:
        """Bring each subject's grants, kept as JSON, up to `head`: read again from the
        store only the subjects changed since the last snapshot (at 100,000 grants, reading
        them all takes seconds), or all of them when the outbox no longer reaches back."""
        changed = self._changed(self._subjects_at, head) if self._subjects_at else None
        if changed is None:
            self._subjects = {s: _by_resource(held) for s, held in live_grants(self.store).items()}
        for subject, held in (changed or {}).items():
            if held:
                self._subjects[subject] = _by_resource(held)
            else:  # as live_grants: a subject holding no grant is not there
                self._subjects.pop(subject, None)
        self._subjects_at = head

    def _changed(self, since: int, head: int) -> dict[str, dict[str, Any]] | None:
        """The live grants now of each subject whose grants changed after revision `since`
        (up to `head`); None when the outbox no longer holds each of those rows (they were
        pruned) or there are too many."""
        oldest = self.store.grant_changes(0, 1)
        if not oldest or oldest[0].seq > since + 1:
            return None
        rows = self.store.grant_changes(since, _MAX_DELTA_ROWS + 1)
        if not rows or len(rows) > _MAX_DELTA_ROWS:
            return None
        subjects = dict.fromkeys(row.subject for row in rows if row.seq <= head)
        return {subject: live_grants(self.store, subject).get(subject, {}) for subject in subjects}

    def _patch(self, since: int, head: int, scope: Scope = ()) -> dict[str, Any] | None:
        """Upserts of the subjects changed after `since` (their grants in `scope`), or None
        when `_changed` has none."""
        changed = self._changed(since, head)
        if not changed:
            return None  # an empty patch would wipe OPA's data: send the snapshot
        return {
            "data": [
                {"op": "upsert", "path": grants_pointer(subject), "value": _in_scope(held, scope)}
                for subject, held in changed.items()
            ]
        }

    # -- long polls -----------------------------------------------------------------------

    def notify(self) -> None:
        """The outbox moved: wake every long poll waiting for a newer revision."""
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    async def wait_change(
        self, revision: int, wait_s: float, closing: threading.Event | None = None
    ) -> int:
        """Return when the grants revision passes `revision`, after `wait_s`, or when the
        server closes, with the revision it last read; woken by `notify`, and every second
        it looks at the store (a change another engine made)."""
        loop, event = asyncio.get_running_loop(), asyncio.Event()
        entry = (loop, event)
        with self._lock:
            self._waiters.add(entry)
        head = revision
        try:
            deadline = loop.time() + wait_s
            while (left := deadline - loop.time()) > 0 and not (closing and closing.is_set()):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(left, 1.0))
                event.clear()
                if (head := await asyncio.to_thread(self.head)) > revision:
                    break
        finally:
            with self._lock:
                self._waiters.discard(entry)
        return head

    async def wait_policy(self, wait_s: float, closing: threading.Event | None = None) -> None:
        """The policy bundle never changes while serve runs: hold the poll for `wait_s`."""
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0 and not (closing and closing.is_set()):
            await asyncio.sleep(min(left, 1.0))

    # -- what the OPAs say ----------------------------------------------------------------

    def _member(self, name: str) -> Member:
        member = self.members.get(name)
        if member is None:  # not one the config trusts: recorded and shown, never trusted
            member = self.members[name] = Member(name, trusted=False)
            log.warning("an OPA not in fleet.opas is polling or reporting: %s", name)
        return member

    def contact(self, name: str) -> None:
        """`name` asked for a bundle: it is alive (written down for the other engines from
        a thread of its own: the bundle routes call this on the event loop)."""
        now = self.clock()
        with self._lock:
            member = self._member(name)
            member.last_contact = now
            due = self._share_due(member, now)
        if due:
            threading.Thread(target=self._share_contact, args=(name, now), daemon=True).start()

    def _share_due(self, member: Member, now: float) -> bool:
        """Whether a trusted OPA's contact is to be written down now; under `_lock`."""
        if not member.trusted or now - self._shared.get(member.name, 0.0) < CONTACT_EVERY_S:
            return False
        self._shared[member.name] = now
        return True

    def _share_contact(self, name: str, now: float) -> None:
        # A store gone: /health says so.
        with contextlib.suppress(StorageUnavailable), self.store.transaction(durable=False):
            self.store.set_cursor(f"opa-contact:{name}", int(now * 1000))

    def last_contact(self, member: Member) -> float | None:
        """When any engine on the store last heard from `member` (this one, for an OPA
        not trusted)."""
        shared = self.store.cursor(f"opa-contact:{member.name}") if member.trusted else None
        heard = [t for t in (member.last_contact, shared and shared / 1000) if t]
        return max(heard) if heard else None

    def report(self, name: str, status: dict[str, Any]) -> Member:
        """Record OPA `name`'s status report (OPA's status plugin's body); a trusted OPA's
        active grants revision, at most the head, becomes its confirmed revision."""
        bundles = status.get("bundles") if isinstance(status.get("bundles"), dict) else {}
        grants = bundles.get(GRANTS_BUNDLE) if isinstance(bundles.get(GRANTS_BUNDLE), dict) else {}
        policy = bundles.get(POLICY_BUNDLE) if isinstance(bundles.get(POLICY_BUNDLE), dict) else {}
        active = grants.get("active_revision")
        revision = revision_of(active) if isinstance(active, str) else None
        errors = [
            f"{bundle_name}: {status_of.get('message') or status_of.get('code')}"
            for bundle_name, status_of in bundles.items()
            if isinstance(status_of, dict) and (status_of.get("code") or status_of.get("message"))
        ]
        now = self.clock()
        with self._lock:
            member = self._member(name)
            member.last_contact = member.last_report = now
            due = self._share_due(member, now)
            member.reported_revision = active if isinstance(active, str) else None
            policy_rev = policy.get("active_revision")
            member.policy_revision = policy_rev if isinstance(policy_rev, str) else None
            member.errors = [e[:300] for e in errors[:10]]
            trusted = member.trusted
        if due:
            self._share_contact(name, now)
        if trusted and revision is not None:
            # No more than its own bundle polls received: a report from someone holding
            # the token confirms nothing this OPA was not served (docs/security.md).
            revision = min(revision, self.head(), self.downloaded(name))
        if trusted and revision is not None and revision > self.confirmed(name):
            with self.store.transaction(durable=False):
                self.store.set_cursor(f"opa:{name}", revision)
            with self._reported:
                self._confirmations += 1
                self._reported.notify_all()
            if self.on_confirm is not None:
                self.on_confirm()
        return member

    def confirmed(self, name: str) -> int:
        return self.store.cursor(f"opa:{name}") or 0

    def served(self, name: str, revision: int) -> None:
        """A grants bundle at `revision` went to OPA `name` (a trusted one): written down in
        the store, so a report to any engine may confirm up to it and no further."""
        if name in self.config.opas and revision > self.downloaded(name):
            with self.store.transaction(durable=False):
                self.store.set_cursor(f"opa-served:{name}", revision)

    def downloaded(self, name: str) -> int:
        """The newest grants revision any engine served OPA `name`."""
        return self.store.cursor(f"opa-served:{name}") or 0

    def _current(self, member: Member, now: float) -> bool:
        """Heard from, by any engine, within stale_after: worth waiting for."""
        heard = self.last_contact(member)
        return heard is not None and now - heard < self.config.stale_after_s

    def unconfirmed(self, seq: int) -> list[str]:
        """The trusted OPAs that do not yet hold outbox row `seq`."""
        return [name for name in self.config.opas if self.confirmed(name) < seq]

    def wait_confirmed(self, seq: int, timeout_s: float) -> int:
        """Wait up to `timeout_s` for every trusted OPA to hold outbox row `seq` (not for
        one silent for longer than stale_after); how far all of them hold it now."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                seen = self._confirmations
            confirmed = {name: self.confirmed(name) for name in self.config.opas}
            held = min([seq, *confirmed.values()])
            if held >= seq:
                return seq
            now, left = self.clock(), deadline - time.monotonic()
            with self._lock:
                members = [Member(**vars(self.members[n])) for n in confirmed]
            heard = [m.name for m in members if self._current(m, now)]
            waiting = [n for n in heard if confirmed[n] < seq]
            if not waiting or left <= 0:
                return held
            with self._reported:
                if self._confirmations == seen:  # none since the look: wait for one, or
                    self._reported.wait(min(left, _LOOK_AGAIN_S))  # another engine's

    def view(self) -> list[MemberView]:
        """Every OPA heard of, or trusted: trusted ones first, by name."""
        head, now = self.head(), self.clock()
        with self._lock:
            members = sorted(self.members.values(), key=lambda m: (not m.trusted, m.name))
            members = [Member(**vars(m)) for m in members]
        out = []
        for member in members:
            member.last_contact = self.last_contact(member)
            if member.trusted:
                confirmed = self.confirmed(member.name)
            else:
                confirmed = revision_of(member.reported_revision or "") or 0
            missing = self.store.grant_changes(confirmed, 1) if confirmed < head else []
            behind_s = now - missing[0].at if missing else 0.0
            silent = member.last_contact is None or now - member.last_contact >= (
                self.config.stale_after_s
            )
            out.append(
                MemberView(
                    member.name,
                    member.trusted,
                    confirmed,
                    max(0, head - confirmed),
                    behind_s,
                    silent or behind_s >= self.config.stale_after_s,
                    member.last_contact,
                    member.last_report,
                    member.policy_revision,
                    tuple(member.errors),
                )
            )
        return out


class FleetSink:
    """The fleet in the grant outbox: a change is applied once every trusted OPA holds it.

    The bundle service reads the store itself, so taking a change is waking the long
    polls; `held` is what the outbox's cursor may move to."""

    name = "fleet"
    shared = True  # one for every engine on the store: reconciled by one at a time

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def put_subject(self, subject: str, grants: dict[str, Any]) -> None:
        self.fleet.notify()

    def put_all(self, grants: dict[str, dict[str, Any]]) -> None:
        self.fleet.reread()
        self.fleet.notify()

    def read_all(self) -> dict[str, dict[str, Any]]:
        return live_grants(self.fleet.store)  # what the grants bundle serves

    def held(self, seq: int) -> int:
        """How far every trusted OPA holds the outbox, up to `seq`: waits for those heard
        from until confirm_within after change `seq` was written (so a change applied
        again later, by the runner, does not wait again)."""
        fleet = self.fleet
        row = fleet.store.grant_changes(seq - 1, 1)
        written = row[0].at if row and row[0].seq == seq else fleet.clock()
        timeout = written + fleet.config.confirm_within_s - fleet.clock()
        return fleet.wait_confirmed(seq, max(0.0, timeout))

    def behind(self, seq: int) -> list[str]:
        """`fleet:NAME` for each trusted OPA that does not hold outbox row `seq`."""
        return [f"{self.name}:{name}" for name in self.fleet.unconfirmed(seq)]
