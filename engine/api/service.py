"""What the API serves: the engine, the token store, the OPA supervisor, the monitor,
and the rules its input is held to.

`Service` holds the running parts together and answers for them as a whole: whether
they can decide correctly now (`problems`, behind /health), whether every removal of
access is in force everywhere (`enforcement_problems`), what Prometheus sees
(`snapshot`), and where the records' heads are (`heads`, behind the dashboard's stream).
Access checks that arrive together are decided together (`checks`). Which API operations
each token role may call is the table in `permissions`, loaded from OPA at start.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ..directory.directory import Directory
from ..identity.oidc import (
    REMEMBER_MAX,
    REMEMBER_S,
    Identity,
    IdentityUnavailable,
    RefusedToken,
    Verifier,
    looks_like_jwt,
)
from ..identity.web_session import SignInConfig, WebSessions
from ..lifecycle.engine import Engine
from ..lifecycle.fleet import Fleet
from ..location.networks import Networks
from ..model.decision import Check, Decision, TransferAsk
from ..model.errors import StorageUnavailable
from ..model.records import TRANSFER_KIND
from ..monitoring.monitor import Alerts, Monitor
from ..monitoring.notify import Notifier, delivery_counts
from ..policy.coalesce import Coalescer
from ..policy.decide import IDP, GatewayAnswer, decide
from ..policy.opa import OpaClient, OpaUnavailable
from ..policy.opa_async import AsyncOpaClient
from ..policy.supervisor import PROBE_TIMEOUT_S, OpaSupervisor
from ..stepup import StepUps
from .config import GatewayConfig
from .limits import InputRules, shipped
from .metrics import FleetGauges, Metrics, Snapshot
from .permissions import Permissions
from .tokens import SUBJECT_PATTERN, Principal, TokenStore

log = logging.getLogger("datavisa.service")


@dataclass
class Service:
    """What the app serves: the engine, the token store, and the OPA supervisor if any."""

    engine: Engine
    tokens: TokenStore
    supervisor: OpaSupervisor | None = None
    monitor: Monitor | None = None
    notifier: Notifier | None = None
    # The role by operation table (rego/datavisa/api); loaded here unless already loaded.
    permissions: Permissions = field(default_factory=Permissions)
    # What input the API accepts: the countries of the bundle it runs, the JSON bounds.
    rules: InputRules = field(default_factory=shipped)
    # How the forward-auth endpoints read a gateway's headers (config `gateway:`).
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    # Where callers are: the networks, trusted proxies and IP database (config `location:`).
    location: Networks = field(default_factory=Networks)
    # The bundle service for sidecar OPAs (routes/fleet.py); built on the store if not given.
    fleet: Fleet = None  # type: ignore[assignment]
    # What names this engine among those sharing its store (leases, cursors).
    instance: str = "local"
    # Whose JWT access tokens stand for people (config `identity:`), if anyone's.
    identity: Verifier | None = None
    # The dashboard's sign-in at that issuer (config `identity.sign_in`), if any.
    sign_in: SignInConfig | None = None
    sessions: WebSessions | None = field(init=False, default=None)
    # The console's step-ups on those sessions (engine/stepup), with the sign-in.
    stepups: StepUps | None = field(init=False, default=None)
    # The directory the IdP syncs by SCIM (routes/scim.py); built on the engine if not given.
    directory: Directory = None  # type: ignore[assignment]
    # Slack's interactions (config `slack:`, engine/chat), if chat approvals are set up.
    chat: Any = None
    metrics: Metrics = field(init=False)
    alerts: Alerts = field(init=False)
    # Access checks that arrive together are decided together (see coalesce.py).
    checks: Coalescer[Check, Decision] = field(init=False)
    answers: Coalescer[tuple[dict[str, Any], str | None, float], GatewayAnswer] = field(init=False)
    # Transfer checks, a pipeline's question before each copy, likewise.
    transfer_checks: Coalescer[TransferAsk, Decision] = field(init=False)
    # Set when the service stops, so long-lived responses (/v1/events) end.
    closing: threading.Event = field(init=False, default_factory=threading.Event)
    # People the IdP signed in, by token id: (principal, until (monotonic), decision).
    _people: dict[str, tuple[Principal, float, Decision]] = field(
        init=False, default_factory=dict, repr=False
    )
    _people_lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.snapshot)
        if self.sign_in is not None:
            if self.identity is None:
                raise ValueError("the dashboard's sign-in needs the issuer's verifier (identity)")
            self.sessions = WebSessions(self.engine.store, self.identity, self.sign_in)
            engine = self.engine
            self.stepups = StepUps(engine.store, engine.opa, engine.log, engine.revision)
        if self.fleet is None:
            self.fleet = Fleet(self.engine.store)
        self.metrics.registry.register(FleetGauges(self.fleet.view))
        self.alerts = self.monitor.alerts if self.monitor else Alerts(self.engine.store)
        opa = self.engine.opa
        self._probe = OpaClient(opa.url, timeout=PROBE_TIMEOUT_S, token=opa.token)
        self._opa_async = AsyncOpaClient(opa)
        self.checks = Coalescer(
            lambda checks, offload: self.engine.check_many_async(checks, self._opa_async, offload),
            "checks",
        )
        # Gateway requests that arrive together are answered together too.
        self.answers = Coalescer(
            lambda asked, offload: self.engine.answer_many_async(asked, self._opa_async, offload),
            "answers",
        )
        self.transfer_checks = Coalescer(
            lambda asked, offload: self.engine.check_transfers_async(
                asked, self._opa_async, offload
            ),
            "transfer-checks",
        )
        if not self.permissions.loaded:
            try:
                self.permissions.load(self.engine.opa)
            except OpaUnavailable as e:
                log.warning("every API call is refused until OPA answers: %s", e)
        if self.directory is None:
            self.directory = Directory(self.engine, SUBJECT_PATTERN)
            try:
                self.directory.sync()
            except OpaUnavailable as e:
                log.warning("the synced directory is not in OPA yet: %s", e)
        self.directory.changed.append(self.forget_people)
        # A deprovisioned person's static tokens end with them, in the same transaction.
        self.directory.gone.append(self.tokens.revoke_of)
        self.directory.changed.append(self.tokens.forget_all)

    def quick_principal(self, token: str) -> Principal | None:
        """The principal a bearer token stands for on the hot path, or None to leave the
        call to the slow one (which says why): a static token as `verify_recent` knows
        it, or a person's JWT verified against keys already held, whose role policy
        already gave."""
        if self.identity is not None and looks_like_jwt(token):
            try:
                person = self.identity.verify(token, fetch=False)
            except (RefusedToken, IdentityUnavailable):
                return None
            known = self._people.get(_remembered(person))
            return known[0] if known is not None and time.monotonic() < known[1] else None
        return self.tokens.verify_recent(token)

    def person(self, identity: Identity) -> tuple[Principal | None, Decision]:
        """The person the identity provider signed in, with the API role policy gives
        their groups (datavisa.idp), or None and the decision that refused them
        (deprovisioned, OPA unreachable). Asked once per token, remembered until it
        expires or for REMEMBER_S at most, and forgotten when the directory changes."""
        known = self._people.get(_remembered(identity))
        if known is not None and time.monotonic() < known[1]:
            # The role is remembered; how they signed in and stepped up is this call's.
            return replace(known[0], identity=identity), known[2]
        engine = self.engine
        asked = {"subject": identity.subject, "idp_groups": identity.idp_groups()}
        decision = decide(
            engine.opa, IDP, asked, log=engine.log, caller=identity.subject,
            revision=engine.revision,
        )  # fmt: skip
        role = decision.result.get("role")
        if not decision.allow or not isinstance(role, str):
            return None, decision
        principal = Principal.person(identity, role)
        until = time.monotonic() + min(REMEMBER_S, max(0.0, identity.expires_at - time.time()))
        with self._people_lock:
            self._people[_remembered(identity)] = principal, until, decision
            while len(self._people) > REMEMBER_MAX:
                self._people.pop(next(iter(self._people)))
        return principal, decision

    def forget_people(self) -> None:
        """Ask policy again for every person's role (the directory changed)."""
        with self._people_lock:
            self._people.clear()

    def opa_ready(self) -> bool:
        self._probe.follow(self.engine.opa)
        return self._probe.ready()

    def problems(self) -> list[str]:
        """Why the service cannot answer decisions correctly now (not ready: its store or
        its own OPA is not usable); empty when it can."""
        problems = []
        if not self.permissions.loaded:
            problems.append("the API permissions are not loaded from OPA: every call is refused")
        if not self.opa_ready():
            problems.append("OPA is not answering with its bundle active")
        elif self.supervisor is not None and not self.supervisor.in_sync:
            problems.append("the live grants are not yet pushed to OPA")
        elif self.directory.behind is not None and not self._directory_pushed():
            problems.append(f"the synced directory is not yet in OPA: {self.directory.behind}")
        problems += self.engine.store.problems()
        return problems

    def _directory_pushed(self) -> bool:
        """Push the synced directory to OPA again, which it lacks; whether that did it."""
        try:
            self.directory.sync()
        except OpaUnavailable:
            return False
        return True

    def enforcement_problems(self) -> list[str]:
        """The removals of access some system (a sink: an engine's OPA, a fleet OPA, a
        database) still holds back; empty when every ended grant is gone everywhere. The
        engine's own checks deny meanwhile, so this is not a reason to be unready."""
        try:
            lags = self.engine.grants.lag()
        except StorageUnavailable:  # a database gone: readiness says so
            return []
        problems = []
        for lag in lags:
            if lag.removals:
                age = time.time() - lag.removed[0].at
                problems.append(
                    f"{lag.removals} ended grant(s) not yet removed from {lag.sink} "
                    f"(the oldest {age:.0f}s ago); retrying"
                )
        if any(lag.sink == "fleet" and lag.removals for lag in lags):
            problems += [
                f"fleet OPA {m.name} does not hold the last {m.lag} grant change(s) yet"
                for m in self.fleet.view()
                if m.trusted and m.lag
            ]
        return problems

    def reach(self) -> list[str]:
        """What the grants' database roles reach beyond the databases they are approved
        for (PUBLIC's CONNECT elsewhere, tables granted to PUBLIC in a target): reported,
        not a reason to be unready (`public_connect: refuse` provisions nothing then)."""
        return [
            found
            for sink in self.engine.grants.sinks
            if (reach := getattr(sink, "reach", None))
            for found in reach()
        ]

    def snapshot(self) -> Snapshot:
        now = time.time()
        return Snapshot(
            live_grants=sum(
                r.kind != TRANSFER_KIND for r in self.engine.list_requests(state="active")
            ),
            pending_requests=len(self.engine.list_requests(state="pending")),
            opa_up=self.opa_ready(),
            opa_restarts=self.supervisor.restarts if self.supervisor else 0,
            alerts=tuple(self.alerts.counts()),
            sinks=tuple(
                (lag.sink, lag.changes, lag.removals, now - lag.oldest_at if lag.oldest_at else 0.0)
                for lag in self.engine.grants.lag()
            ),
            drift_repairs=tuple(sorted(self.engine.grants.drift_repairs.items())),
            deliveries=tuple(delivery_counts(self.engine.store)),
        )

    def unapplied_removals(self) -> list[dict[str, Any]]:
        """The ended grants some sink still holds, as the alert rules take them."""
        return [
            {"sink": lag.sink, "subject": r.subject, "grant_id": r.grant_id,
             "ended_ns": int(r.at * 1e9)}
            for lag in self.engine.grants.lag()
            for r in lag.removed
        ]  # fmt: skip

    def heads(self) -> dict[str, Any]:
        """Where the decision log, the audit trail and the alerts are: changes with them."""
        db = self.engine.store.db
        log_head = db.execute("SELECT coalesce(max(seq), 0) FROM decision_log").fetchone()[0]
        audit_head = db.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchone()[0]
        alerts, acked, raised = self.alerts.version()
        # What provisioned database roles ran (engine/connectors/activity.py).
        activity = db.execute("SELECT coalesce(max(seq), 0) FROM session_activity").fetchone()[0]
        return {
            "log": log_head, "audit": audit_head, "alerts": alerts, "acked": acked,
            "raised": raised, "activity": activity,
        }  # fmt: skip

    def close(self) -> None:
        self.closing.set()
        self.checks.close()
        self.answers.close()
        self.transfer_checks.close()
        self._opa_async.close()
        self._probe.close()


def _remembered(identity: Identity) -> tuple[str, tuple[str, ...] | None]:
    """What a person's role is remembered by: their token, and the groups it names (a
    renewed dashboard session keeps its token id and may name other groups)."""
    return identity.token_id, identity.groups
