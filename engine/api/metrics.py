"""What `datavisa serve` tells Prometheus, in its text format.

Decisions are counted as they are answered; the gauges (live grants, pending requests,
OPA up, OPA restarts) and the alert and webhook-delivery counts are read from their
source at each scrape, so they are never stale and survive a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..lifecycle.fleet import MemberView
from ..model.decision import Decision

# The `*_created` series double the output and no dashboard here reads them.
disable_created_metrics()

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True)
class Snapshot:
    live_grants: int
    pending_requests: int
    opa_up: bool
    opa_restarts: int
    # (rule, severity, state, alerts, times raised: repeats are counted on their alert)
    alerts: tuple[tuple[str, str, str, int, int], ...] = ()
    deliveries: tuple[tuple[str, str, int], ...] = ()  # (kind, outcome, attempts)
    sinks: tuple[tuple[str, int, int, float], ...] = ()  # (sink, changes, removals, age_s)
    drift_repairs: tuple[tuple[str, int], ...] = ()  # (sink, repairs)


class _State(Collector):
    def __init__(self, read: Callable[[], Snapshot]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        now = self.read()
        yield GaugeMetricFamily("datavisa_live_grants", "Grants active now.", value=now.live_grants)
        yield GaugeMetricFamily(
            "datavisa_pending_requests",
            "Requests waiting for approval.",
            value=now.pending_requests,
        )
        yield GaugeMetricFamily(
            "datavisa_opa_up", "1 when OPA answers with its bundle active.", value=int(now.opa_up)
        )
        yield CounterMetricFamily(
            "datavisa_opa_restarts", "Times the supervised OPA was restarted.", now.opa_restarts
        )
        raised = CounterMetricFamily(
            "datavisa_alerts", "Alerts raised, by rule and severity.", labels=["rule", "severity"]
        )
        open_now = GaugeMetricFamily(
            "datavisa_alerts_open",
            "Alerts raised and not yet acknowledged, by rule and severity.",
            labels=["rule", "severity"],
        )
        raises = CounterMetricFamily(
            "datavisa_alert_raises",
            "Times the rules raised an alert, by rule and severity: a repeat within the "
            "rule's window is counted on its open alert, not stored as another.",
            labels=["rule", "severity"],
        )
        totals: dict[tuple[str, str], tuple[int, int]] = {}
        for rule, severity, state, count, times in now.alerts:
            alerts, raised_times = totals.get((rule, severity), (0, 0))
            totals[rule, severity] = (alerts + count, raised_times + times)
            if state == "open":
                open_now.add_metric([rule, severity], count)
        for labels, (count, times) in sorted(totals.items()):
            raised.add_metric(list(labels), count)
            raises.add_metric(list(labels), times)
        yield raised
        yield open_now
        yield raises
        deliveries = CounterMetricFamily(
            "datavisa_webhook_deliveries",
            "Webhook delivery attempts, by kind (alerts, approvals) and outcome "
            "(delivered, retrying, failed).",
            labels=["kind", "outcome"],
        )
        for kind, outcome, count in now.deliveries:
            deliveries.add_metric([kind, outcome], count)
        yield deliveries
        lag = GaugeMetricFamily(
            "datavisa_grant_sink_lag",
            "Grant changes a sink (a system that enforces grants) has not applied yet.",
            labels=["sink"],
        )
        removals = GaugeMetricFamily(
            "datavisa_grant_sink_unapplied_removals",
            "Ended grants a sink still holds; while above 0 the server is not ready.",
            labels=["sink"],
        )
        age = GaugeMetricFamily(
            "datavisa_grant_sink_lag_seconds",
            "Age of the oldest grant change a sink has not applied (0 when none).",
            labels=["sink"],
        )
        for sink, changes, removed, age_s in now.sinks:
            lag.add_metric([sink], changes)
            removals.add_metric([sink], removed)
            age.add_metric([sink], age_s)
        yield lag
        yield removals
        yield age
        repairs = CounterMetricFamily(
            "datavisa_grant_sink_drift_repairs",
            "Times reconciliation found a sink's grants differing from the store and put "
            "them right.",
            labels=["sink"],
        )
        for sink, count in now.drift_repairs:
            repairs.add_metric([sink], count)
        yield repairs


class FleetGauges(Collector):
    """Each OPA of the fleet (routes/fleet.py): how far behind the grant outbox it is."""

    def __init__(self, read: Callable[[], list[MemberView]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "datavisa_fleet_opa_revision_lag",
            "Grant changes an OPA of the fleet does not hold yet (outbox head minus the "
            "revision its status reports confirm).",
            labels=["opa", "trusted"],
        )
        behind = GaugeMetricFamily(
            "datavisa_fleet_opa_behind_seconds",
            "Age of the oldest grant change an OPA of the fleet does not hold (0 when none).",
            labels=["opa", "trusted"],
        )
        stale = GaugeMetricFamily(
            "datavisa_fleet_opa_stale",
            "1 when an OPA of the fleet is behind, or silent, for longer than stale_after.",
            labels=["opa", "trusted"],
        )
        for member in self.read():
            labels = [member.name, str(member.trusted).lower()]
            lag.add_metric(labels, member.lag)
            behind.add_metric(labels, member.behind_s)
            stale.add_metric(labels, int(member.stale))
        yield lag
        yield behind
        yield stale


class Metrics:
    """One registry per server, so several servers in one process keep apart."""

    def __init__(self, read_state: Callable[[], Snapshot]) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "datavisa_decisions",
            "Access decisions answered, by result and reason code "
            "(a deny with two reasons counts under both; allow has reason none).",
            ["result", "reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "datavisa_decision_seconds",
            "Time to answer an access check, OPA included.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_State(read_state))

    def observe(self, decision: Decision, seconds: float) -> None:
        self.latency.observe(seconds)
        result = "allow" if decision.allow else "deny"
        for code in sorted(set(decision.codes)) or ["none"]:
            self.decisions.labels(result=result, reason=code).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
