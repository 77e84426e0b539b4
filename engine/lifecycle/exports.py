"""Export counts: how many individuals' personal information each exporter sent abroad
in a calendar year (China's PIPL route: exempt, standard contract or certification, CAC
security assessment, by that count).

Policy says which transfers count, for which exporter and year, and which route the
count reaches (the transfer decisions' `exports`, rego/datavisa/pipl_route). The engine
keeps one count per counter, exporter and year, and gives the request and approval
decisions all of them (`export_counts`), so that policy picks the route from the count
plus the transfer. A transfer is added when it is approved (its quorum met), in that
transaction: approval is when the copy may happen. The decision was asked on the counts
read before the transaction; inside it, under the store's write lock, the counts are read
again and the approval is judged again if another landed meanwhile, and the total each
addition returns is held against the one policy judged, so that two approvals can never
both slip under a threshold.
"""

from __future__ import annotations

from typing import Any

from ..ledger import audit
from ..model.errors import Conflict
from ..model.records import Request
from ..store import Store


def export_counts(store: Store) -> list[dict[str, Any]]:
    """The yearly counts, as the request and approval decisions take them (export_counts)."""
    return [
        {
            "counter": c["counter"],
            "exporter": c["exporter"],
            "year": c["year"],
            "individuals": c["individuals"],
            "sensitive_individuals": c["sensitive_individuals"],
        }
        for c in store.export_counts()
    ]


def count_exports(
    store: Store,
    req: Request,
    exports: list[dict[str, Any]],
    seen: list[dict[str, Any]],
    now: float,
    actor: str,
    decision_id: str | None,
    revision: str,
) -> list[dict[str, Any]]:
    """Add what policy said `req` adds (`exports`) to the counts, which were `seen` when
    it was judged; inside the approving transaction. What was counted, with the counts
    before it (the transfer check judges its route again on those). Raises Conflict, so
    that the transaction rolls back, when a count is not what policy judged."""
    counted = []
    for export in exports:
        key = (export["counter"], export["exporter"], export["year"])
        before = _count(seen, key)
        after = store.add_to_export_count(
            *key, export["individuals"], export["sensitive_individuals"], now
        )
        wanted = (
            before[0] + export["individuals"],
            before[1] + export["sensitive_individuals"],
        )
        if after != wanted:  # another writer counted meanwhile: judge again
            raise Conflict(
                f"{export['exporter']}'s {export['year']} export count changed while "
                f"{req.id} was being approved; try again"
            )
        record = {
            **export,
            "before_individuals": before[0],
            "before_sensitive_individuals": before[1],
        }
        counted.append(record)
        audit.append(
            store.db,
            at=now,
            actor=actor,
            event="export_counted",
            request_id=req.id,
            detail={**record, "total_individuals": after[0], "total_sensitive": after[1]},
            decision_id=decision_id,
            revision=revision,
        )
    if counted:
        store.update(req.id, {"exports": counted})
        req.exports = counted
    return counted


def counts_before(req: Request) -> list[dict[str, Any]]:
    """The counts as they stood before `req` was counted, as the transfer check takes
    them (export_counts): its route is judged again as when it was approved."""
    return [
        {
            "counter": e["counter"],
            "exporter": e["exporter"],
            "year": e["year"],
            "individuals": e["before_individuals"],
            "sensitive_individuals": e["before_sensitive_individuals"],
        }
        for e in req.exports
    ]


def _count(counts: list[dict[str, Any]], key: tuple[str, str, int]) -> tuple[int, int]:
    for c in counts:
        if (c["counter"], c["exporter"], c["year"]) == key:
            return c["individuals"], c["sensitive_individuals"]
    return 0, 0
