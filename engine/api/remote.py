"""The engine's lifecycle verbs against a `datavisa serve`, over HTTP.

`RemoteEngine` has the method names and return types of `Engine`, and raises the same
error classes (from the HTTP status), so the CLI prints the same thing locally and
remotely. The acting subject is the token's: an `actor` argument that names someone else
is refused here, rather than silently ignored by the server.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from ..model.decision import Decision
from ..model.durations import parse_rfc3339, rfc3339
from ..model.errors import Conflict, DataVisaError, Denied, NotFound, NotYetEnforced
from ..model.records import Approval, Request
from .wire import (
    approval_from_wire,
    audit_event_from_wire,
    decision_from_wire,
    request_from_wire,
)

SERVER_ENV, TOKEN_ENV = "DATAVISA_SERVER", "DATAVISA_TOKEN"
TIMEOUT_S = 30.0


class RemoteEngine:
    """An engine whose work is done by the server at `url`, as the token's subject."""

    def __init__(self, url: str, token: str, timeout: float = TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self._whoami: dict[str, str] | None = None
        self.transfers = RemoteTransfers(self)
        self.filings = RemoteFilings(self)

    # -- who --------------------------------------------------------------------------

    @property
    def subject(self) -> str:
        """The subject the token stands for: the actor of every call."""
        return self._who()["subject"]

    @property
    def role(self) -> str:
        return self._who()["role"]

    def _who(self) -> dict[str, str]:
        if self._whoami is None:
            self._whoami = self._call("GET", "/v1/whoami")
        return self._whoami

    def _as(self, actor: str | None) -> None:
        if actor is not None and actor != self.subject:
            raise DataVisaError(
                f"the server acts as {self.subject}, the subject of the token; "
                f"it cannot act as {actor}"
            )

    # -- asking for access ------------------------------------------------------------

    def request(
        self,
        requester: str,
        resource: str,
        actions: list[str],
        duration_s: int,
        location: str,
        reason: str = "",
        start_at: float | None = None,
        evidence: list[str] | None = None,
    ) -> Request:
        self._as(requester)
        body: dict[str, Any] = {
            "resource": resource,
            "actions": actions,
            "duration": duration_s,
            "location": location,
            "reason": reason,
            "evidence": evidence or [],
        }
        if start_at is not None:
            body["start_at"] = rfc3339(start_at)
        return self._request("POST", "/v1/requests", body)

    def break_glass(
        self,
        requester: str,
        resource: str,
        actions: list[str],
        duration_s: int,
        location: str,
        reason: str,
    ) -> Request:
        self._as(requester)
        body = {
            "resource": resource,
            "actions": actions,
            "duration": duration_s,
            "location": location,
            "reason": reason,
        }
        return self._request("POST", "/v1/break-glass", body)

    # -- deciding ---------------------------------------------------------------------

    def approve(self, request_id: str, approver: str, location: str = "unknown") -> Request:
        self._as(approver)
        return self._request("POST", _on("requests", request_id, "approve"), {"location": location})

    def deny(self, request_id: str, approver: str, reason: str = "") -> Request:
        self._as(approver)
        return self._request("POST", _on("requests", request_id, "deny"), {"reason": reason})

    def cancel(self, request_id: str, actor: str) -> Request:
        self._as(actor)
        return self._request("POST", _on("requests", request_id, "cancel"), {})

    # -- grants -----------------------------------------------------------------------

    def activate(self, request_id: str, actor: str) -> Request:
        self._as(actor)
        return self._request("POST", _on("grants", request_id, "activate"), {})

    def revoke(self, request_id: str, actor: str, reason: str = "") -> Request:
        self._as(actor)
        return self._request("POST", _on("grants", request_id, "revoke"), {"reason": reason})

    def relinquish(self, request_id: str, actor: str, reason: str = "") -> Request:
        self._as(actor)
        body = {"reason": reason}
        return self._request("POST", _on("grants", request_id, "relinquish"), body)

    def extend(self, request_id: str, actor: str, extra_s: int, reason: str = "") -> Request:
        self._as(actor)
        body = {"duration": extra_s, "reason": reason}
        return self._request("POST", _on("grants", request_id, "extend"), body)

    def review(self, request_id: str, reviewer: str, outcome: str, notes: str = "") -> Request:
        self._as(reviewer)
        body = {"outcome": outcome, "notes": notes}
        return self._request("POST", _on("grants", request_id, "review"), body)

    def sweep(self) -> dict[str, int]:
        return self._call("POST", "/v1/sweep")["counts"]

    # -- reading ----------------------------------------------------------------------

    def get(self, request_id: str) -> Request:
        return self._request("GET", _on("requests", request_id))

    def approvals(self, request_id: str) -> list[Approval]:
        body = self._call("GET", _on("requests", request_id, "approvals"))
        return [approval_from_wire(a) for a in body["approvals"]]

    def list_requests(
        self, state: str | None = None, requester: str | None = None, overdue: bool = False
    ) -> list[Request]:
        return self._list("/v1/requests", state, requester, overdue)

    def _list(
        self, path: str, state: str | None, requester: str | None, overdue: bool
    ) -> list[Request]:
        params: dict[str, Any] = {"overdue": "true" if overdue else "false"}
        if state is not None:
            params["state"] = state
        if requester is not None:
            params["requester"] = requester
        body = self._call("GET", path, params=params)
        return [request_from_wire(r) for r in body["requests"]]

    def trail(self, request_id: str | None = None) -> list[dict[str, Any]]:
        """The audit events, all or those of one request, oldest first (read page by page)."""
        events: list[dict[str, Any]] = []
        params: dict[str, Any] = {"after": 0, "limit": 1000}
        if request_id is not None:
            params["request_id"] = request_id
        while True:
            page = self._call("GET", "/v1/audit", params=params)
            events += [audit_event_from_wire(e) for e in page["events"]]
            if page["next_after"] is None:
                return events
            params["after"] = page["next_after"]

    # -- access -----------------------------------------------------------------------

    def check(self, subject: str, resource: str, action: str, location: str) -> Decision:
        body = {"subject": subject, "resource": resource, "action": action, "location": location}
        return decision_from_wire(self._call("POST", "/v1/access/check", json=body))

    # -- grants in data systems (engine/connectors) -----------------------------------

    def credentials(self, grant_id: str, location: str, rotate: bool = False) -> dict[str, Any]:
        params = {"location": location, "rotate": "true" if rotate else "false"}
        return self._call("GET", _on("grants", grant_id, "credentials"), params=params)

    def activity(self, grant_id: str, after: int = 0) -> dict[str, Any]:
        """{provisioning: where each system stands, activity: statements run}."""
        return self._call("GET", _on("grants", grant_id, "activity"), params={"after": after})

    def supervise(self, grant_id: str, location: str) -> dict[str, Any]:
        """Join a supervised grant, or renew the lease (a heartbeat)."""
        body = self._call("POST", _on("grants", grant_id, "supervision"), {"location": location})
        return {**body, "held_until": parse_rfc3339(body["held_until"])}

    def unsupervise(self, grant_id: str) -> Request:
        """Leave a grant you supervise."""
        return self._request("DELETE", _on("grants", grant_id, "supervision"))

    def end_session(self, grant_id: str, session: str) -> dict[str, Any]:
        verb = f"sessions/{quote(session, safe='')}/end"
        return self._call("POST", _on("grants", grant_id, verb), {})

    def abandon_removal(self, grant_id: str, reason: str) -> list[str]:
        body = self._call("POST", _on("grants", grant_id, "abandon-removal"), {"reason": reason})
        return body["abandoned"]

    # -- plumbing ---------------------------------------------------------------------

    def _request(self, method: str, path: str, json: Any = None) -> Request:
        body = self._call(method, path, json=json)
        record = request_from_wire(body)
        if body.get("pending_sinks"):  # 202: recorded, not yet in force everywhere
            raise NotYetEnforced(record, body["pending_sinks"])
        return record

    def fleet(self) -> dict[str, Any]:
        """The OPAs of the fleet, as GET /v1/fleet answers (an auditor or admin token)."""
        return self._call("GET", "/v1/fleet")

    def _call(self, method: str, path: str, json: Any = None, params: Any = None) -> Any:
        try:
            response = self.session.request(
                method, self.url + path, json=json, params=params, timeout=self.timeout
            )
        except requests.RequestException as e:
            raise DataVisaError(f"cannot reach the DataVisa server at {self.url}: {e}") from e
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.ok and body is not None:
            return body
        raise _error(response.status_code, body, self.url)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RemoteTransfers:
    """The transfer verbs of a `RemoteEngine` (`remote.transfers`), as the engine's
    `Transfers` has them, done by the server."""

    def __init__(self, remote: RemoteEngine) -> None:
        self._remote = remote

    def request(
        self,
        requester: str,
        resource: str,
        target_region: str,
        duration_s: int,
        reason: str = "",
        importer: str | None = None,
        retention_s: int | None = None,
        evidence: list[str] | None = None,
        start_at: float | None = None,
        requester_kind: str | None = None,
        individuals: int | None = None,
        sensitive_individuals: int | None = None,
    ) -> Request:
        self._remote._as(requester)
        body: dict[str, Any] = {
            "resource": resource,
            "target_region": target_region,
            "window": duration_s,
            "reason": reason,
            "keep": "forever" if retention_s is None else retention_s,
            "evidence": evidence or [],
        }
        if importer:
            body["importer"] = importer
        if start_at is not None:
            body["start_at"] = rfc3339(start_at)
        if requester_kind:
            body["requester_kind"] = requester_kind
        for name, count in (
            ("individuals", individuals),
            ("sensitive_individuals", sensitive_individuals),
        ):
            if count is not None:
                body[name] = count
        return self._remote._request("POST", "/v1/transfers", body)

    def check(
        self,
        transfer_id: str | None = None,
        resource: str | None = None,
        target_region: str | None = None,
        importer: str | None = None,
        caller: str | None = None,
    ) -> Decision:
        self._remote._as(caller)
        asked = {
            "transfer_id": transfer_id,
            "resource": resource,
            "target_region": target_region,
            "importer": importer,
        }
        body = {k: v for k, v in asked.items() if v is not None}
        return decision_from_wire(self._remote._call("POST", "/v1/transfers/check", json=body))

    def deleted(self, transfer_id: str, actor: str) -> Request:
        self._remote._as(actor)
        return self._remote._request("POST", _on("transfers", transfer_id, "deleted"), {})

    def list(
        self, state: str | None = None, requester: str | None = None, overdue: bool = False
    ) -> list[Request]:
        return self._remote._list("/v1/transfers", state, requester, overdue)

    def counts(self) -> list[dict[str, Any]]:
        found = self._remote._call("GET", "/v1/transfers/counts")["counts"]
        return [c | {"updated_at": parse_rfc3339(c["updated_at"])} for c in found]


class RemoteFilings:
    """The filing verbs of a `RemoteEngine` (`remote.filings`), as `Filings` has them."""

    _TIMES = ("first_transfer_at", "due_at", "filed_at")

    def __init__(self, remote: RemoteEngine) -> None:
        self._remote = remote

    def record(
        self, filing: str, exporter: str, actor: str, actor_role: str | None = None
    ) -> dict[str, Any]:
        self._remote._as(actor)
        body = {"filing": filing, "exporter": exporter}
        return self._local(self._remote._call("POST", "/v1/filings", json=body))

    def list(self, overdue: bool = False) -> list[dict[str, Any]]:
        params = {"overdue": "true" if overdue else "false"}
        found = self._remote._call("GET", "/v1/filings", params=params)["filings"]
        return [self._local(d) for d in found]

    def _local(self, deadline: dict[str, Any]) -> dict[str, Any]:
        return {
            k: parse_rfc3339(v) if k in self._TIMES and v is not None else v
            for k, v in deadline.items()
        }


def connect(url: str | None, token: str | None, timeout: float = TIMEOUT_S) -> RemoteEngine:
    """A RemoteEngine for `url` with `token`, checked by asking the server who it is."""
    if not url:
        raise DataVisaError(f"no server: pass --server URL or set {SERVER_ENV}")
    if not token:
        raise DataVisaError(
            f"no token for {url}: sign in (datavisa login), or pass --token or set "
            f"{TOKEN_ENV} (an admin issues one with: datavisa token issue SUBJECT)"
        )
    engine = RemoteEngine(url, token, timeout)
    try:
        engine.subject  # noqa: B018 - fail here, with a clear message, on a bad token
    except Exception:
        engine.close()
        raise
    return engine


def _on(collection: str, record_id: str, verb: str | None = None) -> str:
    path = f"/v1/{collection}/{quote(record_id, safe='')}"
    return f"{path}/{verb}" if verb else path


def _error(status: int, body: Any, url: str) -> DataVisaError:
    """The engine's error class for an HTTP error answer."""
    detail = body.get("error", {}) if isinstance(body, dict) else {}
    message = detail.get("message") or f"the server at {url} answered HTTP {status}"
    if status == 401:
        return DataVisaError(f"the server at {url} refused the token: {message}")
    if status == 404:
        return NotFound(message)
    if status == 409:
        return Conflict(message)
    if status == 403 and "reasons" in detail:
        decision = Decision(False, detail["reasons"], decision_id=detail.get("decision_id"))
        error = Denied("", decision)
        error.args = (message,)  # the server's words, which name what was refused
        return error
    return DataVisaError(message)
