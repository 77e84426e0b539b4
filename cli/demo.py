"""`datavisa demo`: one just-in-time access story, end to end, on the embedded defaults."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click

from datavisa.engine.ledger import audit
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.lifecycle.local import local_engine
from datavisa.engine.model.durations import format_duration
from datavisa.engine.model.errors import Denied

from . import output
from .story import ABROAD, APPROVER, HOME, REQUESTER, RESOURCE, Story


@click.command()
@click.option(
    "--duration",
    "duration_s",
    type=click.IntRange(1, 600),
    default=20,
    show_default=True,
    help="Seconds the demo grant lasts (the demo waits for it to expire).",
)
@click.option(
    "--postgres",
    is_flag=True,
    help="The database story instead: the grant as a real PostgreSQL role on a throwaway "
    "cluster, credentials, what PostgreSQL refuses and logs, a revoke that ends the session.",
)
def demo(duration_s: int, postgres: bool) -> None:
    """Walk one access story end to end on a fresh store and a private OPA.

    alice, in Germany, asks for read access to confidential EU customer data; the
    policy makes her wait for a data owner; bob approves; access works from Germany
    only, and ends by itself. Nothing is left running afterwards.

    \b
    Examples:
      datavisa demo
      datavisa demo --postgres    # where PostgreSQL is installed
    """
    if postgres:
        from .demo_postgres import postgres_demo

        postgres_demo()
        return
    with tempfile.TemporaryDirectory(prefix="datavisa-demo-") as tmp:
        db = Path(tmp) / "datavisa.db"
        with local_engine(db) as engine:
            click.echo(
                f"DataVisa demo: store {db}, OPA on {engine.opa.url}, "
                f"policy revision {engine.revision}"
            )
            _story(engine, duration_s)


def _story(engine: Engine, duration_s: int) -> None:
    story = Story()
    story.say(
        f"{REQUESTER}, in {HOME}, asks for {duration_s}s of read access to {RESOURCE} "
        "(confidential, EU personal data)"
    )
    req = engine.request(
        REQUESTER, RESOURCE, ["read"], duration_s, HOME, "INC-4711: customer data export fails"
    )
    needs = ", ".join(f"{a['count']} from {a['group']}" for a in req.approvals_required)
    story.result(f"request {req.id} is {req.state}; policy requires approval: {needs}")

    story.say(f"a service checks {REQUESTER}'s read access from {HOME} before approval")
    story.decision(engine.check(REQUESTER, RESOURCE, "read", HOME))

    story.say(f"{REQUESTER} tries to approve her own request")
    try:
        engine.approve(req.id, REQUESTER, HOME)
        raise click.ClickException("self-approval was accepted: the policy is broken")
    except Denied as e:
        story.result(click.style("refused", fg="red", bold=True) + f": {e.decision.explain()}")

    story.say(f"{APPROVER}, data owner of the analytics team, approves")
    req = engine.approve(req.id, APPROVER, HOME)
    story.result(f"grant {req.id} is {req.state} until {output.when(req.expires_at)}")

    story.say(f"the service checks again from {HOME}")
    story.decision(engine.check(REQUESTER, RESOURCE, "read", HOME))

    story.say(f"the same check from {ABROAD}, a country the grant was not approved for")
    story.decision(engine.check(REQUESTER, RESOURCE, "read", ABROAD))

    wait = req.expires_at - time.time() + 0.5
    story.say(f"time passes: waiting {format_duration(wait)} for the grant to expire")
    _wait(wait)
    story.decision(engine.check(REQUESTER, RESOURCE, "read", HOME))

    story.say("the audit trail")
    events = audit.trail(engine.store.db)
    story.result(output.audit_table(events))
    verdict = audit.verify(engine.store.db)
    story.result(f"hash chain: {'intact' if verdict.ok else 'BROKEN'} ({verdict.checked} events)")

    story.say("the decision log: every decision asked of the policy, refusals included")
    story.result(output.decision_table(engine.log.query(limit=1000)))
    checked = engine.log.verify()
    story.result(
        f"decision log: {'intact' if checked.ok else 'BROKEN'} ({checked.checked} records)"
    )


def _wait(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    with click.progressbar(
        length=max(1, round(seconds)), label="   waiting", show_eta=False
    ) as bar:
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(1.0, left))
            bar.update(1)
