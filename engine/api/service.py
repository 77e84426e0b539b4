"""What the API serves: the engine, the token store, the OPA supervisor, the monitor.

`Service` holds the running parts together and answers for them as a whole: whether
they can decide correctly now (`problems`, behind /health), what Prometheus sees
(`snapshot`), and where the records' heads are (`heads`, behind the dashboard's stream).
Access checks that arrive together are decided together (`checks`).
"""

from __future__ import annotations

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
from .metrics import Metrics, Snapshot
from .tokens import TokenStore


@dataclass
class Service:
    """What the app serves: the engine, the token store, and the OPA supervisor if any."""

    engine: Engine
    tokens: TokenStore
    supervisor: OpaSupervisor | None = None
    monitor: Monitor | None = None
    notifier: Notifier | None = None
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
            problems.append(f"OPA at {self.engine.opa.url} is not answering with its bundle active")
        elif self.supervisor is not None and not self.supervisor.in_sync:
            problems.append("the live grants are not yet pushed to OPA")
        try:
            self.engine.store.db.execute("SELECT 1").fetchone()
        except sqlite3.Error as e:
            problems.append(f"the database cannot be read: {e}")
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
        alerts, acked, raised = self.alerts.version()
        return {
            "log": log_head, "audit": audit_head, "alerts": alerts, "acked": acked,
            "raised": raised,
        }  # fmt: skip

    def close(self) -> None:
        self.closing.set()
        self.checks.close()
        self._probe.close()
