"""What the API serves: the engine, the token store, the OPA supervisor, the monitor,
and the rules its input is held to.

`Service` holds the running parts together and answers for them as a whole: whether
they can decide correctly now (`problems`, behind /health), what Prometheus sees
(`snapshot`), and where the records' heads are (`heads`, behind the dashboard's stream).
Access checks that arrive together are decided together (`checks`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Any

from ..lifecycle.engine import Engine
from ..model.decision import Check, Decision
from ..monitoring.monitor import Alerts, Monitor
from ..monitoring.notify import Notifier, delivery_counts
from ..policy.coalesce import Coalescer
from ..policy.opa import OpaClient
from ..policy.supervisor import PROBE_TIMEOUT_S, OpaSupervisor
from .limits import InputRules, shipped
from .metrics import Metrics, Snapshot
from .tokens import TokenStore

log = logging.getLogger("datavisa.server")


@dataclass
class Service:
    """What the app serves: the engine, the token store, and the OPA supervisor if any."""

    engine: Engine
    tokens: TokenStore
    supervisor: OpaSupervisor | None = None
    monitor: Monitor | None = None
    notifier: Notifier | None = None
    # What input the API accepts: the countries of the bundle it runs, the JSON bounds.
    rules: InputRules = field(default_factory=shipped)
    metrics: Metrics = field(init=False)
    alerts: Alerts = field(init=False)
    # Access checks that arrive together are decided together (see coalesce.py).
    checks: Coalescer[Check, Decision] = field(init=False)
    # Set when the service stops, so long-lived responses (/v1/events) end.
    closing: threading.Event = field(init=False, default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.snapshot)
        self.alerts = self.monitor.alerts if self.monitor else Alerts(self.engine.store)
        self._probe = OpaClient(self.engine.opa.url, timeout=PROBE_TIMEOUT_S)
        self.checks = Coalescer(self.engine.check_many, "checks")

    def opa_ready(self) -> bool:
        self._probe.url = self.engine.opa.url
        return self._probe.ready()

    def problems(self) -> list[str]:
        """Why the service cannot answer decisions correctly now; empty when it can."""
        problems = []
        if not self.opa_ready():
            problems.append("OPA is not answering with its bundle active")
        elif self.supervisor is not None and not self.supervisor.in_sync:
            problems.append("the live grants are not yet pushed to OPA")
        try:
            self.engine.store.db.execute("SELECT 1").fetchone()
        except sqlite3.Error as e:
            log.warning("the database cannot be read: %s", e)
            problems.append("the database cannot be read")
        return problems

    def snapshot(self) -> Snapshot:
        return Snapshot(
            live_grants=len(self.engine.list_requests(state="active")),
            pending_requests=len(self.engine.list_requests(state="pending")),
            opa_up=self.opa_ready(),
            opa_restarts=self.supervisor.restarts if self.supervisor else 0,
            alerts=tuple(self.alerts.counts()),
            deliveries=tuple(delivery_counts(self.engine.store)),
        )

    def heads(self) -> dict[str, Any]:
        """Where the decision log, the audit trail and the alerts are: changes with them."""
        db = self.engine.store.db
        log_head = db.execute("SELECT coalesce(max(seq), 0) FROM decision_log").fetchone()[0]
        audit_head = db.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchone()[0]
        alerts, acked = self.alerts.version()
        return {"log": log_head, "audit": audit_head, "alerts": alerts, "acked": acked}

    def close(self) -> None:
        self.closing.set()
        self.checks.close()
        self._probe.close()
