"""Which API operations each token role may call: the table `datavisa.api` decides.

Every /v1 route declares one operation ("requests.create", "grants.revoke" ...). The
role model is policy (rego/datavisa/api): `Permissions.load` asks OPA once for the whole
role by operation table, `data.datavisa.api.permissions`, and the API authorizes every
call from it, so the access check's hot path makes no extra round trip to OPA. Until a
table is loaded every call is refused; `datavisa serve` loads it whenever its supervisor
resyncs OPA, so a server whose OPA could not answer at start serves once it can.
"""

from __future__ import annotations

import json
import logging

from ..policy.opa import OpaClient, OpaUnavailable

log = logging.getLogger("datavisa.permissions")

PERMISSIONS = "datavisa/api/permissions"


class Permissions:
    """The role by operation table from OPA, once loaded; refuses everything before."""

    def __init__(self) -> None:
        self._table: frozenset[tuple[str, str]] | None = None

    @property
    def loaded(self) -> bool:
        return self._table is not None

    def load(self, opa: OpaClient | None) -> None:
        """Ask OPA for the table and hold it from now on; OpaUnavailable when OPA cannot
        answer or answers something else than {role: [operation, ...]} (the table held
        so far, if any, stays)."""
        if opa is None:
            raise OpaUnavailable("no OPA configured")
        answer = opa.query(PERMISSIONS, {})
        table = answer.result
        if not isinstance(table, dict) or not all(
            isinstance(ops, list) and all(isinstance(op, str) for op in ops)
            for ops in table.values()
        ):
            raise OpaUnavailable(f"malformed API permissions from {PERMISSIONS}: {table!r}"[:300])
        self._table = frozenset((role, op) for role, ops in table.items() for op in ops)
        log.info(
            "API permissions from %s (OPA decision %s): %s",
            PERMISSIONS,
            answer.decision_id,
            json.dumps(table, sort_keys=True),
        )

    def allows(self, role: str, operation: str) -> bool | None:
        """May a token of `role` call `operation`? None while no table is loaded."""
        table = self._table
        return None if table is None else (role, operation) in table
