"""What input the API accepts beyond its shapes: the countries the policy bundle knows, and
how large and how deep free-form JSON may be.

`InputRules` is set per running service (`Service.rules`): the countries come from the
bundle the server runs (see `serve.running`), the bounds from the serve config's `limits`.
`RulesScope`, an ASGI middleware, makes a service's rules the ones the pydantic validators
in `schemas` read (`current`) for every call it serves, on either lane of the access check.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ..ledger.decision_log import EVENT_VALUE_BYTES, EVENT_VALUE_DEPTH, READ_DEPTH

# The most a config may allow: an event holding such a value still reads back whole
# (READ_DEPTH), and model.bounded parses deeper still.
MAX_DEPTH = READ_DEPTH - 4


@dataclass(frozen=True)
class Limits:
    """How large (bytes as compact JSON) and how deep (levels) free-form JSON may be: a
    check's context, and each free-form part (input, result, ...) of an uploaded
    decision-log event."""

    context_bytes: int = 8 * 1024  # facts about one access, not documents
    context_depth: int = 32  # enough for any record of facts, far from a stack's end
    log_value_bytes: int = EVENT_VALUE_BYTES  # what an OPA was asked and answered, each
    log_value_depth: int = EVENT_VALUE_DEPTH  # an event's input holds a context, and more


@dataclass(frozen=True)
class InputRules:
    countries: frozenset[str]
    limits: Limits = field(default_factory=Limits)


@cache
def shipped() -> InputRules:
    """The rules of the shipped bundle with the default limits."""
    from ..policy.bundle import shipped_countries  # YAML and jsonschema: only when needed

    return InputRules(shipped_countries())


_RULES: ContextVar[InputRules | None] = ContextVar("datavisa_input_rules", default=None)


def current() -> InputRules:
    """The rules of the service serving this call; the shipped ones outside any."""
    return _RULES.get() or shipped()


class RulesScope:
    """Serves `app` with `rules` as the input rules of every call."""

    def __init__(self, app: Any, rules: InputRules) -> None:
        self.app, self.rules = app, rules

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        token = _RULES.set(self.rules)
        try:
            await self.app(scope, receive, send)
        finally:
            _RULES.reset(token)
