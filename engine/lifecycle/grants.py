"""Where the store's live grants take effect: the grant-distribution seam.

The lifecycle decides which grants are live and writes that to the store; `Grants` takes
what the store holds to the systems that enforce it. Today that is one OPA's data
document `data.grants` (keyed by subject, then grant id, so a check reads one subject's
grants); every later place a grant must exist (an OPA fleet's bundle, a database's roles)
joins here, so the lifecycle never learns who enforces its grants.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

from ..model.durations import epoch_ns
from ..model.errors import DataVisaError
from ..model.records import ACTIVE, BREAKGLASS_KIND, Request
from ..policy.opa import OpaClient, OpaUnavailable
from ..store.sqlite import Store

GRANTS_PATH = "grants"  # data.grants: outside the bundle's roots, so the engine may write it


def grant_doc(req: Request) -> dict[str, Any]:
    """One live grant as the access policy reads it (data.grants[subject][id])."""
    return {
        "resource": req.resource,
        "actions": req.actions,
        "countries": req.countries,
        "evidence": req.evidence,
        "starts_ns": epoch_ns(req.activated_at),
        "expires_ns": epoch_ns(req.expires_at),
        "revision": req.revision,
        "breakglass": req.kind == BREAKGLASS_KIND,
    }


def live_grants(store: Store, subject: str | None = None) -> dict[str, dict[str, Any]]:
    """The active grants the store holds, {subject: {grant id: grant_doc}}."""
    where, params = "state = ?", [ACTIVE]
    if subject is not None:
        where, params = where + " AND requester = ?", [ACTIVE, subject]
    docs: dict[str, dict[str, Any]] = {}
    for req in store.requests(where, params):
        docs.setdefault(req.requester, {})[req.id] = grant_doc(req)
    return docs


class Grants:
    """Takes the live grants in `store` to the OPA behind `opa` (None: nowhere, so every
    push fails and checks deny)."""

    def __init__(self, store: Store, opa: OpaClient | None) -> None:
        self.store, self.opa = store, opa
        # Held while reading grants from the store and writing them to OPA, so a full
        # resync cannot put back a grant that a concurrent revoke has just taken out.
        self._lock = threading.Lock()

    def push(self, subject: str) -> None:
        """Replace the subject's live grants in OPA with what the store holds."""
        try:
            if self.opa is None:
                raise OpaUnavailable("no OPA configured")
            with self._lock:
                grants = live_grants(self.store, subject).get(subject, {})
                self.opa.put_data(f"{GRANTS_PATH}/{quote(subject, safe='')}", grants)
        except OpaUnavailable as e:
            raise DataVisaError(
                "saved, but OPA did not take the new grants; they are pushed again when "
                "the engine next starts, and until then access is denied"
            ) from e

    def sync(self) -> None:
        """Replace every live grant in OPA with what the store holds (start, OPA restart)."""
        if self.opa is None:
            raise OpaUnavailable("no OPA configured")
        with self._lock:
            self.opa.put_data(GRANTS_PATH, live_grants(self.store))
