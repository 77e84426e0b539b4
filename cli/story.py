"""The demo stories' cast and narrator: who asks, who approves, from where, numbered steps."""

from __future__ import annotations

import click

from datavisa.engine.model.decision import Decision

from . import output

RESOURCE = "eu-customer-analytics"
REQUESTER, APPROVER = "alice", "bob"
HOME, ABROAD = "DE", "US"


class Story:
    def __init__(self) -> None:
        self.step = 0

    def say(self, text: str) -> None:
        self.step += 1
        click.echo(f"\n{self.step}. {text}")

    def result(self, text: str) -> None:
        click.echo("   " + text.replace("\n", "\n   "))

    def decision(self, decision: Decision) -> None:
        self.result(output.describe_decision(decision))
