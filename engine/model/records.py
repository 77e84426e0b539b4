"""The shapes of what the engine stores and hands out: requests (which become grants),
approvals and alerts, and the state a record is in by the clock. Plain dataclasses, light
to import: the store, the monitor, the CLI's remote mode and the wire format need them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

# A request's states: pending until its quorum is met, then approved (a scheduled start)
# or active; every other state is final.
PENDING, APPROVED, ACTIVE = "pending", "approved", "active"
EXPIRED, REVOKED, RELINQUISHED = "expired", "revoked", "relinquished"
DENIED, CANCELLED, LAPSED = "denied", "cancelled", "lapsed"
FINAL = frozenset({EXPIRED, REVOKED, RELINQUISHED, DENIED, CANCELLED, LAPSED})
STATES = frozenset({PENDING, APPROVED, ACTIVE}) | FINAL
ACCESS_KIND, BREAKGLASS_KIND, EXTENSION_KIND = "access", "breakglass", "extension"
TRANSFER_KIND = "transfer"  # a copy job: the resource's data copied to target_region
REVIEW_OUTCOMES = ("accepted", "rejected")  # of a break-glass grant's review
# A supervised grant's presence (lifecycle: engine/supervision): a supervisor's lease is
# alive; none is (login refused, checks deny); none was for longer than the grace (its
# open sessions ended too).
PRESENT, ABSENT, UNWATCHED = "present", "absent", "ended"
# How one session a supervisor asked to end went (the store's session_ends: engine/supervision
# asks, the connector holding the grant acts): not yet; ended; the account had no such
# session; the grant ended first (its sessions with it); the data system refused.
SESSION_PENDING, SESSION_ENDED, SESSION_NOT_FOUND = "pending", "ended", "not_found"
SESSION_GRANT_ENDED, SESSION_FAILED = "grant_ended", "failed"
SYSTEM = "datavisa"  # the actor of what no person does: transitions time makes, serve's own


@dataclass
class Request:
    """An access request; once its quorum is met it is also the grant (same id).

    `kind` is access, breakglass (active at once, reviewed afterwards), extension (a
    request to lengthen the grant `parent_id`) or transfer (a copy of the resource's data
    to `target_region` for `importer`, allowed while active, the copy kept `retention_s`
    seconds at most: reported deleted by `delete_by`). Times are epoch seconds.
    """

    id: str
    requester: str
    resource: str
    actions: list[str]
    location: str
    countries: list[str]
    reason: str
    duration_s: int
    state: str
    created_at: float
    pending_until: float
    approvals_required: list[dict[str, Any]]
    revision: str
    decision_id: str | None = None
    kind: str = "access"
    parent_id: str | None = None
    evidence: list[str] = field(default_factory=list)
    start_at: float | None = None
    activation_deadline_s: int = 0
    activate_by: float | None = None
    approved_at: float | None = None
    activated_at: float | None = None
    expires_at: float | None = None
    extended_s: int = 0
    ended_at: float | None = None
    ended_by: str | None = None
    end_reason: str | None = None
    review_due: float | None = None
    reviewed_at: float | None = None
    reviewed_by: str | None = None
    review_outcome: str | None = None
    # Who may end this grant while OPA cannot be asked, as policy said when it became
    # live: {"revoke": [...], "relinquish": [...]} (datavisa.offline).
    offline_enders: dict[str, list[str]] = field(default_factory=dict)
    # A transfer's: where the copy goes, who operates it, how long it may be kept (None:
    # for ever), by when it must be reported deleted, and when and by whom it was.
    target_region: str | None = None
    importer: str | None = None
    retention_s: int | None = None
    delete_by: float | None = None
    deleted_at: float | None = None
    deleted_by: str | None = None
    # Who asked for a transfer, when not the organisation's own people: a foreign public
    # authority (foreign_public_authority; policy says which kinds there are).
    requester_kind: str | None = None
    # The filing deadlines policy said this grant or transfer starts when it becomes
    # active, the first time for its exporter: [{filing, exporter, within_s}]
    # (rego/datavisa/filing; lifecycle/filings.py).
    filings: list[dict[str, Any]] = field(default_factory=list)
    # A transfer's size as it declares it, for China's export route: how many individuals'
    # personal information the copy carries, and how many of those with sensitive personal
    # information (None: not said) (rego/datavisa/pipl_route).
    individuals: int | None = None
    sensitive_individuals: int | None = None
    # What its approval added to its exporter's yearly counts, with the counts before it:
    # [{counter, exporter, year, route, individuals, sensitive_individuals,
    # before_individuals, before_sensitive_individuals}] (lifecycle/exports.py).
    exports: list[dict[str, Any]] = field(default_factory=list)
    # What policy said of supervision when the request was filed ({supervised, lease_s,
    # heartbeat_s, grace_s}, datavisa.supervision; {}: none asked), and a supervised
    # active grant's state: present, absent or ended (SUPERVISION_STATES), since when.
    supervision: dict[str, Any] = field(default_factory=dict)
    supervision_state: str | None = None
    supervision_since: float | None = None

    _JSON = (
        "actions", "countries", "approvals_required", "evidence", "offline_enders", "filings",
        "exports", "supervision",
    )  # fmt: skip

    @property
    def supervised(self) -> bool:
        """Whether the grant works only while a supervisor is present."""
        return bool(self.supervision.get("supervised"))

    def to_row(self) -> dict[str, Any]:
        return self.to_row_values({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def to_row_values(cls, values: dict[str, Any]) -> dict[str, Any]:
        return {k: json.dumps(v) if k in cls._JSON else v for k, v in values.items()}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Request:
        values = dict(row)
        for name in cls._JSON:
            # A column added by an upgrade is NULL in the rows written before it.
            values[name] = json.loads(values[name]) if values[name] is not None else None
        values["offline_enders"] = values["offline_enders"] or {}
        values["filings"] = values["filings"] or []
        values["exports"] = values["exports"] or []
        values["supervision"] = values["supervision"] or {}
        return cls(**values)


@dataclass
class Approval:
    request_id: str
    approver: str
    verdict: str  # approve | deny
    at: float
    decision_id: str | None
    location: str | None = None
    reason: str | None = None
    # The approver's IdP groups as their token named them (JSON), which count for them
    # when later approvals judge the quorum again (datavisa.idp); None: the token named none.
    idp_groups: str | None = None


# What a grant change does to access: `add` makes or lengthens access, `remove` ends it.
ADD, REMOVE = "add", "remove"


@dataclass(frozen=True)
class GrantChange:
    """One row of the grant outbox: the live grants of `subject` changed (`grant_id`,
    `change`), written in the transaction of the state change. Every sink applies it."""

    seq: int
    at: float
    subject: str
    grant_id: str
    change: str


@dataclass(frozen=True)
class Alert:
    """An alert a rule raised: about `subject`, citing decision ids as `evidence`.

    `decision_id` and `seq` name the record that first raised it (none for the periodic
    check). The same rule raised again about the same subject and `dedup_key` within the
    rule's window is counted here: `count` raises in all, the last at `last_raised_at`,
    `message` the newest, `evidence` the newest decision ids (a bounded number of them).
    """

    id: int
    rule: str
    severity: str
    subject: str
    message: str
    evidence: list[str]
    raised_at: float
    state: str = "open"
    decision_id: str | None = None
    seq: int | None = None
    acked_by: str | None = None
    acked_at: float | None = None
    count: int = 1
    last_raised_at: float | None = None
    dedup_key: str = ""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Alert:
        values = {k: v for k, v in row.items() if k != "key"}
        return cls(**{**values, "evidence": json.loads(values["evidence"])})


def due_at(req: Request) -> float | None:
    """When time alone moves this record on (expiry or lapse), if it can."""
    return {
        ACTIVE: req.expires_at,
        PENDING: req.pending_until,
        APPROVED: req.activate_by,
    }.get(req.state)


def effective_state(req: Request, now: float) -> str:
    """The state the clock says the record is in, whether or not a sweep wrote it yet."""
    due = due_at(req)
    if due is None or now < due:
        return req.state
    return EXPIRED if req.state == ACTIVE else LAPSED
