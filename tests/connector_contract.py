"""What every connector must show (issue 33, items 3 and 5; issue 29, item 3): the
credentials issued work, an open session ends with the grant, the data system's own clock
ends the account by itself, extension moves that clock, an unreachable server leaves the
change pending (202) and retried, drift is put right, nothing of a grant outlives it,
only the credentials DataVisa issued work, and a supervised grant works only while a
supervisor is present (paused and resumed, issue 33 items 1-2).

A check takes a `Kit`, the connector under test as a sink of a real engine, with a way to
act as a grant's holder in the data system, and a `leave` or `set_own` callable that does
what a holder would, through that way. The data system's own tests (test_postgresql_*)
give the kit and the holder's acts; the checks hold for any of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import pytest

from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.lifecycle.provisioned import residues, standing
from datavisa.engine.model.errors import NotFound, NotYetEnforced
from datavisa.engine.model.records import Alert
from datavisa.engine.monitoring.monitor import Monitor
from datavisa.engine.supervision import Supervision

# The resource of the tests' bundle (conftest's connectors_data) whose target is the
# MariaDB connection `support`; PostgreSQL's is the shipped eu-customer-analytics.
MARIADB_RESOURCE = "eu-support-tickets"


class Kit(Protocol):
    """The connector under test, as a sink of `engine`."""

    engine: Engine

    def grant(self, seconds: int = 1200) -> str:
        """A new live grant provisioned by the connector, its credentials issued: its id."""

    def supervised_grant(self) -> str:
        """A new live grant policy makes supervised (its credentials not issued yet: no
        supervisor is present, so the access decision that issues them would deny)."""

    def issue(self, grant_id: str) -> None:
        """Issue the grant's credentials, which `logs_in` and `session` then use."""

    def holder(self, grant_id: str) -> Any:
        """How to act as the grant's holder in the data system (with what was issued)."""

    def logs_in(self, grant_id: str, credential: Any = None) -> bool:
        """Whether the grant's account takes a login: with `credential`, else with each
        credential the kit has seen for it (issued ones, and the holder's own)."""

    def residue(self, grant_id: str) -> list[tuple[str, str]]:
        """What of the grant's account is left in the data system: (where, what) pairs,
        the account itself among them while it exists."""

    def session(self, grant_id: str) -> Any:
        """A session open as the grant's holder, with the credentials issued."""

    def reads(self, session: Any) -> bool:
        """Whether `session` still reads one of the target's tables (False: it failed)."""

    def session_id(self, session: Any) -> str:
        """`session` as the data system's activity (and `watch`) names it."""

    def expires(self, grant_id: str) -> int | None:
        """When the data system itself ends the grant's account (epoch seconds)."""

    def add_privilege(self, grant_id: str) -> None:
        """Grant the account, by hand as an admin would, more than its grant gives."""

    def unreachable(self, down: bool) -> None:
        """Point the connector at a port where no server listens (True), or back."""


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


def _sink(kit: Kit) -> str:
    [name] = [s.name for s in kit.engine.grants.sinks if getattr(s, "provisions", False)]
    return name


def check_credentials_work(kit: Kit) -> str:
    """Activation makes an account; the credentials issued log in and read the target."""
    grant_id = kit.grant()
    assert [s["state"] for s in standing(kit.engine, grant_id)] == ["provisioned"]
    assert kit.logs_in(grant_id)
    assert kit.reads(kit.session(grant_id))
    return grant_id


def check_an_open_session_ends_with_the_grant(kit: Kit, end: Callable[[str], Any]) -> None:
    """A session held open across the grant's end (`end`) fails its next statement, and
    no login works."""
    grant_id = kit.grant()
    session = kit.session(grant_id)
    assert kit.reads(session)
    end(grant_id)
    assert not kit.reads(session), "a session outlived its grant"
    assert not kit.logs_in(grant_id)


def check_the_system_s_own_clock_ends_the_account(kit: Kit, wait_s: float = 20.0) -> None:
    """With DataVisa doing nothing (no timer, no sweep), the account takes no login once
    the grant's expiry has passed: the data system's own clock."""
    grant_id = kit.grant(seconds=2)
    assert kit.expires(grant_id) == int(kit.engine.get(grant_id).expires_at)
    deadline = time.monotonic() + wait_s
    while kit.logs_in(grant_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not kit.logs_in(grant_id), "the account outlived the grant's expiry by itself"


def check_extension_moves_the_system_s_clock(kit: Kit) -> None:
    """An approved extension moves the account's own expiry to the grant's new one."""
    grant_id = kit.grant(seconds=4)  # 1.9 s left after half of it, on a loaded machine
    grant = kit.engine.get(grant_id)
    time.sleep(max(0.0, grant.activated_at + 2.1 - time.time()))  # policy: half elapsed
    ext = kit.engine.extend(grant_id, grant.requester, 60, "still running")
    kit.engine.approve(ext.id, "bob", "DE")
    extended = kit.engine.get(grant_id)
    assert extended.expires_at == pytest.approx(grant.expires_at + 60)
    assert kit.expires(grant_id) == int(extended.expires_at)


def check_an_unreachable_server_is_pending_and_retried(kit: Kit) -> None:
    """A revoke while the server cannot be reached is recorded and answered as not yet in
    force (the API's 202, naming the sink); the account stays until the server is back,
    when the retry removes it."""
    grant_id = kit.grant()
    kit.unreachable(True)
    try:
        with pytest.raises(NotYetEnforced) as pending:
            kit.engine.revoke(grant_id, "bob", "closed")
        assert pending.value.pending == [_sink(kit)]
        assert [s["state"] for s in standing(kit.engine, grant_id)] == ["revoking"]
        assert kit.engine.grants.apply() == [_sink(kit)]  # retried, still behind
    finally:
        kit.unreachable(False)
    assert kit.residue(grant_id), "removed while the server was said to be unreachable"
    assert kit.engine.grants.apply() == []
    assert kit.residue(grant_id) == [] and not kit.logs_in(grant_id)


def check_drift_is_put_right(kit: Kit) -> None:
    """A privilege granted by hand beyond the grant: reconcile strips it, audits and
    alerts (sink_drift), and the next reconcile finds nothing."""
    grant_id = kit.grant()
    kit.add_privilege(grant_id)
    assert kit.engine.grants.reconcile() == [_sink(kit)]
    assert any(a.rule == "sink_drift" for a in connector_alerts(kit.engine, grant_id))
    assert kit.engine.grants.reconcile() == []
    assert kit.reads(kit.session(grant_id))


def _wait(condition: Callable[[], bool], what: str, wait_s: float = 30.0) -> None:
    deadline = time.monotonic() + wait_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def check_a_supervised_grant_works_only_while_watched(kit: Kit, supervisor: str) -> None:
    """A supervised grant (issue 33, items 1-2): no login until a supervisor joins; the
    supervisor leaves: login refused at once, the open session ends once the grace is
    over; a supervisor rejoins: login works again; the account's own expiry never moves;
    a lease not renewed runs out and pauses the grant like a leave. Audited throughout."""
    supervision = Supervision(kit.engine)
    grant_id = kit.supervised_grant()
    grant = kit.engine.get(grant_id)
    assert grant.supervised and grant.supervision_state == "absent"
    expires = kit.expires(grant_id)
    supervision.join(grant_id, supervisor, "DE")
    kit.issue(grant_id)
    assert kit.logs_in(grant_id), "a supervised grant's login is refused while watched"
    session = kit.session(grant_id)
    assert kit.reads(session)

    supervision.leave(grant_id, supervisor)
    assert kit.engine.get(grant_id).supervision_state == "absent"
    assert not kit.logs_in(grant_id), "login works with no supervisor present"
    assert kit.reads(session), "the open session ended before the grace was over"
    _wait(lambda: _settled(supervision, grant_id) == "ended", "the grace to be over")
    assert kit.engine.get(grant_id).supervision_state == "ended"
    assert not kit.reads(session), "an open session outlived the grace with no supervisor"

    supervision.join(grant_id, supervisor, "DE")
    assert kit.logs_in(grant_id), "login refused after a supervisor rejoined"
    assert kit.expires(grant_id) == expires, "pausing moved the account's own expiry"

    # No heartbeat: the lease runs out, and the timer's settle pauses the grant.
    _wait(lambda: _settled(supervision, grant_id) != "present", "the lease to lapse")
    assert not kit.logs_in(grant_id), "login works after the supervisor's lease ran out"
    events = [e["event"] for e in kit.engine.trail(grant_id)]
    for event in ("supervisor_joined", "grant_resumed", "supervisor_left", "grant_paused",
                  "grant_sessions_ended"):  # fmt: skip
        assert event in events, events
    left = [e for e in kit.engine.trail(grant_id) if e["event"] == "supervisor_left"]
    assert [e["detail"]["how"] for e in left] == ["left", "lapsed"]


def _settled(supervision: Supervision, grant_id: str) -> str | None:
    """The grant's supervision state once the timer's `settle` ran (as serve runs it)."""
    supervision.settle()
    return supervision.engine.get(grant_id).supervision_state


def check_a_supervisor_ends_one_session_through_the_outbox(kit: Kit, supervisor: str) -> None:
    """A supervisor ends one session of a supervised grant (issue 33): the ask, its audit
    event and an outbox row commit together; the connector ends that session (the other
    runs on) and says so, audited. With the server unreachable the ask is pending and
    named so; the outbox retries it, and it is done once the server is back. A session
    the account does not have is NotFound."""
    supervision = Supervision(kit.engine)
    grant_id = kit.supervised_grant()
    supervision.join(grant_id, supervisor, "DE")
    kit.issue(grant_id)
    first, second = kit.session(grant_id), kit.session(grant_id)
    assert kit.reads(first) and kit.reads(second)
    outbox = kit.engine.store.grant_changes_head()

    ended = supervision.end_session(grant_id, supervisor, kit.session_id(first))
    assert ended["state"] == "ended" and ended["sink"] == _sink(kit), ended
    assert not kit.reads(first), "the session a supervisor ended runs on"
    assert kit.reads(second), "ending one session ended another"
    changes = kit.engine.store.grant_changes(outbox)
    assert [row.grant_id for row in changes] == [grant_id], "the ask went round the outbox"
    events = [e["event"] for e in kit.engine.trail(grant_id)]
    assert events[-2:] == ["session_end_asked", "session_ended"], events
    with pytest.raises(NotFound, match="no open session"):
        supervision.end_session(grant_id, supervisor, "4242")

    kit.unreachable(True)
    try:
        pending = supervision.end_session(grant_id, supervisor, kit.session_id(second))
        assert pending["state"] == "pending" and pending["pending_sinks"] == [_sink(kit)]
        assert supervision.session_end(grant_id, pending["end"])["state"] == "pending"
    finally:
        kit.unreachable(False)
    assert kit.reads(second), "a pending ask ended the session before the server took it"
    assert kit.engine.grants.apply() == []  # as serve's runner retries it
    done = supervision.session_end(grant_id, pending["end"])
    assert done["state"] == "ended" and done["done_at"] is not None, done
    assert not kit.reads(second), "the ask retried did not end the session"
