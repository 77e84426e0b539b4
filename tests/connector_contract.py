"""What every connector must show (issue 33, items 3 and 5; the connector contract kit of
issue 29 takes these up): nothing of a grant outlives it, and only the credentials
DataVisa issued work.

A check takes a `Kit`, the connector under test as a sink of a real engine, with a way to
act as a grant's holder in the data system, and a `leave` or `set_own` callable that does
what a holder would, through that way. The data system's own tests (test_postgresql_*)
give the kit and the holder's acts; the checks hold for any of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.lifecycle.provisioned import residues
from datavisa.engine.model.records import Alert
from datavisa.engine.monitoring.monitor import Monitor


class Kit(Protocol):
    """The connector under test, as a sink of `engine`."""

    engine: Engine

    def grant(self) -> str:
        """A new live grant provisioned by the connector, its credentials issued: its id."""

    def holder(self, grant_id: str) -> Any:
        """How to act as the grant's holder in the data system (with what was issued)."""

    def logs_in(self, grant_id: str, credential: Any = None) -> bool:
        """Whether the grant's account takes a login: with `credential`, else with each
        credential the kit has seen for it (issued ones, and the holder's own)."""

    def residue(self, grant_id: str) -> list[tuple[str, str]]:
        """What of the grant's account is left in the data system: (where, what) pairs,
        the account itself among them while it exists."""


def connector_alerts(engine: Engine, grant_id: str) -> list[Alert]:
    """The alerts naming `grant_id`, after the connector facts are handed to the rules as
    serve hands them (residues kept, drift put right)."""
    Monitor(engine.log, engine.opa).check_history(
        {"grant_residues": residues(engine), "sink_drifts": engine.grants.take_drifts()}
    )
    found = Monitor(engine.log, engine.opa).alerts.query(limit=1000)
    return [a for a in found if grant_id in a.evidence]


def check_nothing_outlives_the_grant(
    kit: Kit, leave: Callable[[Any], None], end: Callable[[str], None]
) -> list[Alert]:
    """The holder leaves something behind (`leave`, acting as `kit.holder`), the grant
    ends (`end`): no login works, and nothing of the account is left, or an alert names
    where and what each thing left is. The alerts that name the grant."""
    grant_id = kit.grant()
    leave(kit.holder(grant_id))
    end(grant_id)
    assert not kit.logs_in(grant_id), "an ended grant's account still takes a login"
    left = kit.residue(grant_id)
    alerts = connector_alerts(kit.engine, grant_id)
    for where, what in left:
        assert any(
            a.rule == "grant_residue" and where in a.message and what in a.message for a in alerts
        ), f"{what} in {where} outlives grant {grant_id}, and no alert names it: {alerts}"
    return alerts


def check_only_issued_credentials_work(
    kit: Kit, set_own: Callable[[Any], Any], reconcile: Callable[[], Any]
) -> str:
    """The holder sets a credential of its own (`set_own`, acting as `kit.holder`; it
    returns that credential), reconcile runs: the holder's own no longer works, a
    `sink_drift` is raised naming the grant, and either the issued credentials work again
    or the grant ended. Which of the two ("restore" or "end")."""
    grant_id = kit.grant()
    own = set_own(kit.holder(grant_id))
    assert kit.logs_in(grant_id, own), "the data system did not take the holder's own"
    reconcile()
    assert not kit.logs_in(grant_id, own), "a credential DataVisa never issued still works"
    alerts = connector_alerts(kit.engine, grant_id)
    assert any(a.rule == "sink_drift" for a in alerts), alerts
    if kit.engine.get(grant_id).state == "active":
        assert kit.logs_in(grant_id), "the issued credentials were not put back"
        return "restore"
    assert not kit.logs_in(grant_id) and not kit.residue(grant_id)
    return "end"
