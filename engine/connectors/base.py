"""What every connector does the same way, whatever the data system: the connector base.

A connector makes each live grant whose resource names a `target` of its kind an account
`dv_<grant id>` in that system, and takes it away when the grant ends. What it does with
the outbox is the same for every system, and lives here once (`ConnectorSink`):

- the Sink protocol of `lifecycle.grants` (put_subject / put_all / read_all / relevant),
  applied by the lifecycle with retries, never by a request handler;
- the plan of each grant, asked of `datavisa.provision` (logged, cached per grant,
  resource and actions) and checked against the privileges the system knows; a target of
  another kind is another connector's;
- converging: remove what no live grant holds, create what is missing, move the expiry,
  strip what a reconcile finds beyond the plan, each step in the system's own turn
  (`_exclusive`) and recorded as the grant's provisioning state (what the system refused
  marks it failed; an unreachable system raises SinkUnavailable, retried);
- a password the holder set for itself: put back the issued one or end the grant, as
  policy says (`own_password`);
- a supervised grant with no supervisor present (engine/supervision): login refused,
  and once the grace is over its sessions ended; login back when a supervisor rejoins
  (`_pause`, `_end_plan_sessions`), the account's expiry untouched;
- one session a supervisor asked to end: the ask comes with the grant's outbox row, the
  sink ends it and records how it went, audited (`_end_asked`);
- issuing credentials: the bookkeeping (once, again only rotated; the verifier written
  down before the system has it) around the system's own way of setting a password.

A connector subclasses `ConnectorSink` and gives the system's own steps (the methods that
raise NotImplementedError below); docs/connectors.md says how.

May import: `model`, `store`, `ledger`, `policy`. Never `lifecycle` or `api`.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from ..ledger import audit
from ..ledger.decision_log import DecisionLog
from ..model.errors import Conflict, DataVisaError, SinkUnavailable
from ..model.records import (
    SESSION_ENDED,
    SESSION_FAILED,
    SESSION_GRANT_ENDED,
    SESSION_NOT_FOUND,
    SESSION_PENDING,
    SYSTEM,
)
from ..policy.decide import PROVISION, decide
from ..policy.opa import OpaClient
from ..store import Store

log = logging.getLogger("datavisa.connectors")

ROLE_PREFIX = "dv_"
PROVISIONED, FAILED, REMOVED, KEPT = "provisioned", "failed", "removed", "kept"
ENDED = "ended"  # the grant's account removed because policy ends the grant (lifecycle.grants)
# What policy may answer for a password the holder set (datavisa.provision own_password).
RESTORE, END = "restore", "end"


class ProvisioningError(DataVisaError):
    """What the data system refused for one grant; retrying does not help (the grant's
    target, the policy, or the database has to change first). `sqlstate` is the system's
    code for it, when it gave one."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def role_name(grant_id: str) -> str:
    """The grant's account in every data system."""
    return f"{ROLE_PREFIX}{grant_id}"


@dataclass(frozen=True)
class Plan:
    """What one live grant should be in its data system."""

    grant_id: str
    subject: str
    resource: str
    actions: tuple[str, ...]
    connection: str
    database: str
    schema: str  # "" where the system has none between database and table (MariaDB)
    tables: tuple[str, ...]
    privileges: tuple[str, ...]
    valid_until: int  # epoch seconds: the grant's expiry, rounded down
    own_password: str = END  # policy's answer to a password the holder set: RESTORE or END
    # A supervised grant with no supervisor present (engine/supervision): its login is
    # refused; `sessions_ended`: and its grace is over, so its open sessions end too.
    paused: bool = False
    sessions_ended: bool = False

    @property
    def role(self) -> str:
        return role_name(self.grant_id)

    def comment(self) -> str:
        """What the account says about itself: which grant it is (json)."""
        return json.dumps(
            {"datavisa": 1, "grant_id": self.grant_id, "subject": self.subject,
             "resource": self.resource, "actions": list(self.actions),
             "connection": self.connection, "database": self.database, "schema": self.schema,
             "tables": list(self.tables), "privileges": list(self.privileges)},
            sort_keys=True,
        )  # fmt: skip

    def held(self) -> dict[str, Any]:
        """As `read_all` reports an account that matches this plan exactly."""
        where = self.schema or self.database
        return {
            "resource": self.resource,
            "actions": sorted(self.actions),
            "valid_until": self.valid_until,
            "login": not self.paused,
            "privileges": sorted(f"{where}.{t}:{p}" for t in self.tables for p in self.privileges),
        }


@dataclass
class Held:
    """A managed account as the data system holds it now."""

    role: str
    connection: str
    about: dict[str, Any]  # what it says about itself (Plan.comment)
    valid_until: int | None
    login: bool
    privileges: list[str] = field(default_factory=list)
    # The password is not the verifier DataVisa set for it (the holder set its own).
    own_password: bool = False

    @property
    def grant_id(self) -> str:
        # A managed account nobody made through DataVisa is named by itself in drift reports.
        return str(self.about.get("grant_id") or self.role)

    @property
    def subject(self) -> str:
        return str(self.about.get("subject") or "")

    def view(self) -> dict[str, Any]:
        view = {
            "resource": self.about.get("resource"),
            "actions": sorted(self.about.get("actions") or []),
            "valid_until": self.valid_until,
            "login": self.login,
            "privileges": sorted(self.privileges),
        }
        if self.own_password:  # a plan never has it: reconcile sees the grant differ
            view["own_password"] = True
        return view


def about(comment: str | None) -> dict[str, Any]:
    """An account's comment (Plan.comment) read back; {} when it is not one of ours."""
    try:
        found = json.loads(comment or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


class ConnectorSink:
    """The grants of the live-grant outbox, as managed accounts in one kind of system.

    Subclasses set `name`, `kind`, `label` (how messages name the system), `account`
    (what they call an account: role, account), `privileges_known` and `exists` (the codes
    of "it is there already"), and give the system's steps."""

    name = ""
    kind = ""
    label = ""
    account = "account"
    privileges_known: frozenset[str] = frozenset()
    exists: frozenset[str] = frozenset()
    scheme = ""  # of the URL a holder's client connects with
    client_env: tuple[str, ...] = ()  # its client's variables: host, port, database, user, password
    provisions = True  # an activation it refuses, or never takes, is ended (lifecycle.grants)
    shared = True  # one for every engine on the store: reconciled by one at a time

    def __init__(
        self,
        connections: dict[str, Any],
        store: Store,
        opa: OpaClient | None,
        log: DecisionLog | None = None,
        revision: str = "",
        clock: Any = time.time,
    ) -> None:
        self.connections = connections
        self.store, self.opa, self.log, self.revision = store, opa, log, revision
        self.clock = clock
        self._plans: dict[tuple[str, str, tuple[str, ...]], Plan | ProvisioningError | None] = {}
        self._lock = threading.RLock()  # one change to the accounts at a time (per sink)
        self._no_verifiers: set[str] = set()  # servers whose verifiers the admin cannot read

    # -- the Sink protocol ----------------------------------------------------------------

    def put_subject(self, subject: str, grants: dict[str, Any]) -> None:
        with self._lock:
            wanted = self._wanted({subject: grants})
            held = {h.grant_id: h for h in self._held() if h.subject == subject}
            self._converge(wanted, held, deep=False)
            self._end_asked(wanted, held)

    def put_all(self, grants: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            held = {h.grant_id: h for h in self._held(passwords=True)}
            wanted = self._wanted(grants)
            self._converge(wanted, held, deep=True)
            self._end_asked(wanted, held)

    def read_all(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            out: dict[str, dict[str, Any]] = {}
            for held in self._held(privileges=True, passwords=True):
                out.setdefault(held.subject, {})[held.grant_id] = held.view()
            return out

    def relevant(self, grants: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The live grants this sink holds accounts for, as `read_all` reports them."""
        out: dict[str, dict[str, Any]] = {}
        for plan in self._wanted(grants, record=False).values():
            out.setdefault(plan.subject, {})[plan.grant_id] = plan.held()
        return out

    def holds(self, grant_id: str) -> bool:
        """Whether this sink provisioned (or tried to provision) `grant_id`."""
        return self._state(grant_id) is not None

    # -- credentials ----------------------------------------------------------------------

    def issue_credentials(self, grant_id: str, rotate: bool = False) -> dict[str, Any]:
        """A new password for the grant's account, returned once: as a URL and as the
        system's client variables. Refused when credentials were issued before, unless
        `rotate`."""
        with self._lock:
            standing = {r["sink"]: r for r in self.store.provisioning(grant_id)}.get(self.name)
            if standing is None or standing["state"] != PROVISIONED:
                why = f": {standing['detail']}" if standing and standing.get("detail") else ""
                state = standing["state"] if standing else "not provisioned"
                raise Conflict(
                    f"grant {grant_id} has no {self.account} in {self.label} ({state}{why})"
                )
            if standing.get("credentials_at") and not rotate:
                raise Conflict(
                    f"credentials for grant {grant_id} were already issued; "
                    "--rotate (rotate=true) issues a new password and ends the old one"
                )
            held = {h.grant_id: h for h in self._held()}.get(grant_id)
            if held is None:
                raise Conflict(f"grant {grant_id} has no {self.account} in {self.label} any more")
            conn = self._connection(held.connection)
            password = secrets.token_urlsafe(24)
            verifier = self._new_verifier(password)
            # Written down first: a reconcile between the two sees the new one as issued.
            self.store.set_verifier(self.name, grant_id, verifier)
            self._set_password(conn, held.role, verifier)
            self.store.set_credentials_issued(self.name, grant_id, self.clock())
        url, env = self._connection_details(conn, held, password)
        return {"grant_id": grant_id, "url": url, "env": env, "valid_until": held.valid_until}

    # -- what should be -------------------------------------------------------------------

    def _wanted(self, grants: dict[str, dict[str, Any]], record: bool = True) -> dict[str, Plan]:
        """The plans of the live grants that target this kind of system; a grant that
        cannot be provisioned is recorded as failed, with why, and left out."""
        plans: dict[str, Plan] = {}
        for subject, held in grants.items():
            for grant_id, doc in held.items():
                plan = self._plan(subject, grant_id, doc, record)
                if plan is not None:
                    plans[grant_id] = plan
        return plans

    def _plan(self, subject: str, grant_id: str, doc: dict[str, Any], record: bool) -> Plan | None:
        key = (grant_id, str(doc.get("resource")), tuple(doc.get("actions") or ()))
        if key not in self._plans:
            self._plans[key] = self._decide_plan(subject, grant_id, doc)
        plan = self._plans[key]
        if isinstance(plan, ProvisioningError):
            if record and self._state(grant_id) != FAILED:
                log.warning("grant %s cannot be provisioned: %s", grant_id, plan)
                self.store.set_provisioning(self.name, grant_id, FAILED, str(plan), self.clock())
            return None
        if plan is None:
            return None
        if self._state(grant_id) in (FAILED, ENDED):
            return None  # refused by the database before, or ended: not tried again
        now = {
            "valid_until": int(doc["expires_ns"] // 1_000_000_000),
            # The grant document says whether a supervisor is present (engine/supervision).
            "paused": bool(doc.get("supervised")) and not doc.get("supervisor_present"),
            "sessions_ended": bool(doc.get("sessions_ended")),
        }
        if all(getattr(plan, key) == value for key, value in now.items()):
            return plan
        return replace(plan, **now)

    def _decide_plan(
        self, subject: str, grant_id: str, doc: dict[str, Any]
    ) -> Plan | ProvisioningError | None:
        asked = {
            "grant_id": grant_id,
            "subject": subject,
            "resource": doc.get("resource"),
            "actions": list(doc.get("actions") or []),
        }
        decision = decide(
            self.opa, PROVISION, asked, log=self.log, caller=SYSTEM, revision=self.revision
        )
        if decision.codes == ["policy_unavailable"]:
            self._plans.clear()
            raise SinkUnavailable(decision.explain())
        target = decision.result.get("target") or {}
        if target.get("kind", self.kind) != self.kind:
            return None  # another kind of system's: another connector's grant
        if not decision.result.get("targeted", False) and decision.allow:
            return None
        if not decision.allow:
            return ProvisioningError(decision.explain())
        if target.get("connection") not in self.connections:
            known = ", ".join(sorted(self.connections)) or "none"
            return ProvisioningError(
                f"resource {doc.get('resource')} names connection {target.get('connection')!r}, "
                f"which serve's config does not have (connections: {known})"
            )
        privileges = tuple(decision.result.get("privileges") or ())
        unknown = sorted(set(privileges) - self.privileges_known)
        if unknown:
            return ProvisioningError(
                f"policy gives {', '.join(unknown)}, not a table privilege {self.label} knows"
            )
        own_password = decision.result.get("own_password")
        return Plan(
            grant_id=grant_id,
            subject=subject,
            resource=str(doc.get("resource")),
            actions=tuple(sorted(asked["actions"])),
            connection=target["connection"],
            database=target["database"],
            schema=str(target.get("schema") or ""),
            tables=tuple(target["tables"]),
            privileges=privileges,
            valid_until=int(doc["expires_ns"] // 1_000_000_000),
            # An answer policy did not give (an older bundle) is the closed one.
            own_password=own_password if own_password in (RESTORE, END) else END,
        )

    def _state(self, grant_id: str) -> str | None:
        rows = {r["sink"]: r for r in self.store.provisioning(grant_id)}
        return rows[self.name]["state"] if self.name in rows else None

    def _verifier(self, grant_id: str) -> str | None:
        """The password verifier DataVisa last set for the grant's account (the store's)."""
        rows = {r["sink"]: r for r in self.store.provisioning(grant_id)}
        return rows[self.name].get("verifier") if self.name in rows else None

    # -- making it so ---------------------------------------------------------------------

    def _converge(self, wanted: dict[str, Plan], held: dict[str, Held], deep: bool) -> None:
        for grant_id, role in held.items():
            if grant_id not in wanted:
                self._remove(role)
        for grant_id, plan in wanted.items():
            role = held.get(grant_id)
            if role is not None and role.own_password and self._own_password(plan, role) == END:
                continue
            if role is None:
                self._guarded(plan, self._create)
                if plan.paused:  # made before credentials exist: nobody logged in yet
                    self._guarded(plan, self._pause)
            elif plan.paused:
                if role.valid_until != plan.valid_until:  # moved while paused: still paused
                    self._guarded(plan, self._move_expiry)
                if role.login or role.valid_until != plan.valid_until:
                    self._guarded(plan, self._pause)
                if plan.sessions_ended:
                    self._guarded(plan, self._end_plan_sessions)
            elif role.valid_until != plan.valid_until or not role.login:
                self._guarded(plan, self._move_expiry)  # login on: a supervisor's back
            if deep and role is not None:
                self._guarded(plan, self._strip)

    def _guarded(self, plan: Plan, step: Any) -> None:
        """Run one step for `plan`; what the database refuses marks the grant failed (and
        rolls the step back); a database that cannot be reached raises SinkUnavailable."""
        try:
            with self._exclusive(self._connection(plan.connection), plan.role):
                step(plan)
        except ProvisioningError as e:
            if e.sqlstate in self.exists:
                # Made meanwhile by another engine sharing this store: it is held, and
                # the next reconcile compares it with the grant like any other.
                log.info("grant %s: %s %s exists already", plan.grant_id, self.account, plan.role)
                return
            log.warning("grant %s: %s", plan.grant_id, e)
            self.store.set_provisioning(self.name, plan.grant_id, FAILED, str(e), self.clock())

    def _pause(self, plan: Plan) -> None:
        """No supervisor present: the account's login is refused (sessions open run on
        until the grace is over); `_move_expiry` turns it back on when one rejoins. The
        grant's clock, the account's own expiry, is not touched."""
        self._refuse_login(self._connection(plan.connection), plan.role)
        log.info("grant %s: %s %s paused: no supervisor", plan.grant_id, self.account, plan.role)

    def _end_plan_sessions(self, plan: Plan) -> None:
        """The grace is over with no supervisor: the account's open sessions end."""
        self._end_sessions(self._connection(plan.connection), plan.role)

    def _end_asked(self, wanted: dict[str, Plan], held: dict[str, Held]) -> None:
        """End the sessions a supervisor asked to end of the grants just converged (the
        store's session_ends, written with the outbox row that brought them here), and
        say how each went, with its audit event, in one transaction: ended, not_found (the
        account has no such session: also an account made just now), grant_ended (the
        account was just removed, its sessions with it). Replaying is harmless: an ask
        done (by this engine or another sharing the server) is not done again. A server
        that cannot be reached raises SinkUnavailable: the outbox row is retried."""
        for row in self.store.session_ends():
            grant_id = row["grant_id"]
            if grant_id not in wanted and grant_id not in held:
                continue  # another subject's, or another system's
            if grant_id not in wanted:
                self._session_end_done(row, SESSION_GRANT_ENDED)
            elif grant_id not in held:
                self._session_end_done(row, SESSION_NOT_FOUND)
            else:
                account = held[grant_id]
                # In the account's turn, so two engines applying one outbox do not both try
                # (the second would find the session gone and say not_found).
                conn = self._connection(account.connection)
                with self._exclusive(conn, account.role):
                    if (self.store.session_end(row["seq"]) or {}).get("state") != SESSION_PENDING:
                        continue  # another engine did it meanwhile
                    try:
                        ended = self._end_one_session(conn, account.role, row["session"])
                        state = SESSION_ENDED if ended else SESSION_NOT_FOUND
                    except ProvisioningError as e:
                        log.warning("grant %s: ending session %s: %s", grant_id, row["session"], e)
                        state = SESSION_FAILED
                    self._session_end_done(row, state)

    def _session_end_done(self, row: dict[str, Any], state: str) -> None:
        """Say how the session end `row` went, with its audit event, in one transaction."""
        now = self.clock()
        with self.store.transaction():
            if self.store.finish_session_end(row["seq"], state, self.name, now):
                event = "session_ended" if state == SESSION_ENDED else "session_end_done"
                audit.append(
                    self.store.db, at=now, actor=row["asked_by"], event=event,
                    request_id=row["grant_id"], decision_id=row["decision_id"],
                    detail={"session": row["session"], "sink": self.name, "end": row["seq"],
                            "outcome": state},
                    revision=self.revision,
                )  # fmt: skip

    def _own_password(self, plan: Plan, held: Held) -> str:
        """The account's password is not the one DataVisa set: the holder chose its own.
        Put the issued verifier back and end the account's sessions (any of them may have
        used the other password), or end the grant, as policy said (`plan.own_password`)."""
        conn = self._connection(plan.connection)
        if plan.own_password == RESTORE:
            verifier = self._verifier(plan.grant_id)
            with self._exclusive(conn, plan.role):
                self._set_password(conn, plan.role, verifier)  # type: ignore[arg-type]
                self._end_sessions(conn, plan.role)
            log.warning(
                "grant %s: %s %s had a password DataVisa did not issue: the issued one is "
                "back, its sessions ended", plan.grant_id, self.account, plan.role,
            )  # fmt: skip
            return RESTORE
        # Unusable at once; the grant's end (the sweep: lifecycle.grants.ended) removes it.
        with self._exclusive(conn, plan.role):
            self._disable(conn, plan.role)
        why = (
            f"{self.account} {plan.role} held a password DataVisa did not issue (the holder "
            "set its own): policy ends the grant; login disabled, sessions ended"
        )
        log.warning("grant %s: %s", plan.grant_id, why)
        self.store.set_provisioning(self.name, plan.grant_id, ENDED, why, self.clock())
        return END

    def _provisioned(self, plan: Plan, verifier: str, where: str) -> None:
        """Record a grant's account made, with the verifier of its (unissued) password."""
        log.info("grant %s: %s %s created in %s", plan.grant_id, self.account, plan.role, where)
        self.store.set_provisioning(
            self.name, plan.grant_id, PROVISIONED,
            f"{self.account} {plan.role} in {plan.connection}/{plan.database}: "
            f"{', '.join(plan.privileges)} on {', '.join(plan.tables)}",
            self.clock(),
        )  # fmt: skip
        self.store.set_verifier(self.name, plan.grant_id, verifier)

    def _removed(self, held: Held, detail: str, state: str = REMOVED) -> None:
        log.info("grant %s: %s", held.grant_id, detail)
        self.store.set_provisioning(self.name, held.grant_id, state, detail, self.clock())
        self._plans = {key: plan for key, plan in self._plans.items() if key[0] != held.grant_id}

    def _connection(self, name: str) -> Any:
        try:
            return self.connections[name]
        except KeyError:
            raise ProvisioningError(f"no connection {name!r} in serve's config") from None

    # -- the system's own steps -----------------------------------------------------------

    def _held(self, privileges: bool = False, passwords: bool = False) -> list[Held]:
        """Every account this deployment manages on every configured server; with
        `privileges`, what each holds; with `passwords`, whether each still has the
        password DataVisa set."""
        raise NotImplementedError

    def _exclusive(self, conn: Any, role: str) -> AbstractContextManager[None]:
        """Change `role` while no other engine sharing this server changes it."""
        raise NotImplementedError

    def _create(self, plan: Plan) -> None:
        """Make the plan's account, all or nothing, then `_provisioned`."""
        raise NotImplementedError

    def _move_expiry(self, plan: Plan) -> None:
        """Move the account's own expiry (the second clock) to the plan's, login on."""
        raise NotImplementedError

    def _strip(self, plan: Plan) -> None:
        """Take back privileges beyond the plan's, give back those missing."""
        raise NotImplementedError

    def _remove(self, held: Held) -> None:
        """Lock, revoke, end the sessions (waiting until they are gone), drop; `_removed`."""
        raise NotImplementedError

    def _new_verifier(self, password: str) -> str:
        """What the system stores for `password` (never the password itself)."""
        raise NotImplementedError

    def _set_password(self, conn: Any, role: str, verifier: str) -> None:
        """Give `role` the password `verifier` stands for."""
        raise NotImplementedError

    def _end_sessions(self, conn: Any, role: str) -> None:
        """End every session of `role` and wait until they are gone."""
        raise NotImplementedError

    def _refuse_login(self, conn: Any, role: str) -> None:
        """Refuse new logins of `role`, keeping its password and its expiry (a pause)."""
        raise NotImplementedError

    def _end_one_session(self, conn: Any, role: str, session: str) -> bool:
        """End the session `session` (as the activity names it) of `role`, and wait until
        it is gone; False when `role` has no such session."""
        raise NotImplementedError

    def _disable(self, conn: Any, role: str) -> None:
        """No login, no password, no open session: an account no one can use any more."""
        raise NotImplementedError

    def _connection_details(
        self, conn: Any, held: Held, password: str
    ) -> tuple[str, dict[str, str]]:
        """The holder's URL (`scheme`) and client variables (`client_env`) for `held` with
        `password`, reaching the server where `conn.address()` says."""
        host, port = conn.address()
        database = str(held.about.get("database"))
        url = (
            f"{self.scheme}://{quote(held.role)}:{quote(password, safe='')}@{host}:{port}/"
            f"{quote(database)}"
        )
        values = (host, str(port), database, held.role, password)
        return url, dict(zip(self.client_env, values, strict=True))

    def close(self) -> None:
        """Close the admin connections."""


def scrub(text: str, secret: str | None) -> str:
    """`text` with `secret` (plain or URL-quoted) cut out."""
    if secret:
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            text = text.replace(form, "***")
    return text


def wait_until_gone(still: Any, what: str, wait_s: float) -> None:
    """Poll `still()` (the sessions left) every millisecond or so until it is empty;
    SinkUnavailable (retried) when they outlast `wait_s`."""
    deadline = time.monotonic() + wait_s
    while still():
        if time.monotonic() > deadline:
            raise SinkUnavailable(f"sessions of {what} still running after termination")
        time.sleep(0.001)
