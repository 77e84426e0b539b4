"""The directory the identity provider keeps by SCIM: its Users and Groups in the store,
every change audited, and what policy reads of it pushed to OPA.

`Directory` creates, reads, replaces, patches and deletes SCIM Users and Groups (the
resource shapes and PATCH are scim.py's). Each change is one transaction holding the
change and its audit event; a change that leaves a person deprovisioned (`active: false`,
or deleted) cancels their pending requests and revokes their grants in that same
transaction (`Engine.end_access_of`: state, audit and grant outbox rows together), and the
outbox is applied once it commits, as every revoke's is.

What policy reads (`data.directory.people`, one document per subject: the User's
userName) is pushed to the engine's OPA after each commit, before the change is answered,
and in full by `sync` whenever OPA answers again; rego/datavisa/directory says how it
combines with the bundle's subjects. A push that fails leaves the directory `behind`
(the server is unready) until the next change or sync puts it right in full.

A deleted User's row is kept (deleted_at) so the person stays deprovisioned, even where
the bundle's directory names them, until a User with their userName is created again.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..ledger import audit
from ..lifecycle.engine import Engine
from ..policy.opa import OpaUnavailable
from ..store.base import DIRECTORY
from . import scim
from .scim import ENTERPRISE, GROUPS, USERS, Filter, ScimError

log = logging.getLogger("datavisa.directory")

DATA_PATH = "directory"  # data.directory: outside the bundle's roots, the engine writes it
DEPROVISIONED = "deprovisioned by directory sync (SCIM)"


@dataclass(frozen=True)
class Stored:
    """A User or Group as the directory holds it: its attributes as scim.clean gives
    them (a Group's members, a User's groups included) and its bookkeeping."""

    id: str
    attributes: dict[str, Any]
    created_at: float
    updated_at: float
    version: int


def _not_found(kind: str, id: str) -> ScimError:
    return ScimError(404, f"no {kind} with id {id[:80]!r}")


class Directory:
    """The SCIM directory of the engine's store (see the module doc)."""

    def __init__(
        self,
        engine: Engine,
        subject_pattern: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine, self.store, self.clock = engine, engine.store, clock
        self._subject = re.compile(subject_pattern)
        self._push_lock = threading.Lock()
        self.behind: str | None = None  # why the last push failed; None: OPA holds it all
        # Called after every change, here or (announced) by another engine on the store:
        # whoever remembers what policy said of people, or which tokens are live, forgets.
        self.changed: list[Callable[[], None]] = []
        # Called inside the transaction that deprovisions a person (db, subject, actor,
        # at): what else of theirs ends with them (their static tokens: api/tokens.py).
        self.gone: list[Callable[[Any, str, str, float], None]] = []

    # -- Users ----------------------------------------------------------------------------

    def create_user(self, body: Any, actor: str) -> Stored:
        attributes = self._user(scim.clean(USERS, body))
        now, user_id = self.clock(), str(uuid.uuid4())
        with self.store.transaction() as db:
            self._unique_user(attributes["userName"])
            # A user of that name deleted before is replaced: they are back.
            db.execute(
                "DELETE FROM directory_users WHERE user_key = ? AND deleted_at IS NOT NULL",
                [attributes["userName"].lower()],
            )
            db["directory_users"].insert(self._user_row(user_id, attributes, 1, now, now))
            detail = self._user_detail(user_id, attributes)
            self._audit(db, now, actor, "directory_user_created", detail)
            self._end_access_if_gone(attributes, actor)
        self._changed({attributes["userName"]})
        return self.user(user_id)

    def user(self, user_id: str) -> Stored:
        row = self._user_row_of(user_id)
        if row is None:
            raise _not_found("User", user_id)
        return self._stored_user(row)

    def users(self, where: Filter, start: int, count: int) -> tuple[list[Stored], int]:
        """The Users the filter matches, from `start` (1-based), `count` at most, and how
        many match in all."""
        narrow, params = _indexed(where, {"userName": "user_key", "externalId": "external_id"})
        rows = self._rows(
            f"SELECT * FROM directory_users WHERE deleted_at IS NULL{narrow} "
            "ORDER BY created_at, id",
            params,
        )
        found = [s for s in map(self._stored_user, rows) if where.matches(_filterable(s))]
        return found[start - 1 : start - 1 + count], len(found)

    def replace_user(self, user_id: str, body: Any, actor: str) -> Stored:
        return self._change_user(user_id, actor, lambda _: scim.clean(USERS, body))

    def patch_user(self, user_id: str, body: Any, actor: str) -> Stored:
        return self._change_user(user_id, actor, lambda held: scim.patch(USERS, held, body))

    def delete_user(self, user_id: str, actor: str) -> None:
        now = self.clock()
        with self.store.transaction() as db:
            row = self._user_row_of(user_id)
            if row is None:
                raise _not_found("User", user_id)
            held = self._stored_user(row).attributes
            groups = self._groups_of(user_id)
            db.execute("DELETE FROM directory_members WHERE user_id = ?", [user_id])
            db.execute(
                "UPDATE directory_users SET deleted_at = ?, active = 0, updated_at = ? "
                "WHERE id = ?",
                [now, now, user_id],
            )
            detail = self._user_detail(user_id, held) | {"groups": sorted(groups)}
            self._audit(db, now, actor, "directory_user_deleted", detail)
            self._end_access_if_gone(held | {"active": False}, actor)
        self._changed({held["userName"]})

    def _change_user(
        self, user_id: str, actor: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Stored:
        now = self.clock()
        with self.store.transaction() as db:
            row = self._user_row_of(user_id)
            if row is None:
                raise _not_found("User", user_id)
            before = self._stored_user(row)
            held = {k: v for k, v in before.attributes.items() if k != "groups"}
            attributes = self._user(change(held))
            if attributes["userName"].lower() != row["user_key"]:
                self._unique_user(attributes["userName"])
            db.execute(
                "UPDATE directory_users SET user_name = ?, user_key = ?, external_id = ?, "
                "active = ?, resource = ?, version = ?, updated_at = ? WHERE id = ?",
                [
                    attributes["userName"], attributes["userName"].lower(),
                    attributes.get("externalId"), int(attributes.get("active", True)),
                    json.dumps(attributes), before.version + 1, now, user_id,
                ],
            )  # fmt: skip
            changed = sorted(
                k for k in attributes.keys() | held.keys() if attributes.get(k) != held.get(k)
            )
            detail = self._user_detail(user_id, attributes) | {"changed": changed}
            if attributes["userName"] != held["userName"]:
                detail["was"] = held["userName"]
            self._audit(db, now, actor, "directory_user_changed", detail)
            self._end_access_if_gone(attributes, actor)
        self._changed({held["userName"], attributes["userName"]})
        return self.user(user_id)

    def _user(self, attributes: dict[str, Any]) -> dict[str, Any]:
        name = attributes["userName"]
        if not self._subject.fullmatch(name):
            raise scim.invalid(
                f"userName {name[:80]!r} cannot name a person here: letters, digits and "
                ". _ : @ -, starting with a letter or digit, at most 128 characters"
            )
        return attributes

    def _unique_user(self, name: str) -> None:
        taken = self.store.db.execute(
            "SELECT id FROM directory_users WHERE user_key = ? AND deleted_at IS NULL",
            [name.lower()],
        ).fetchone()
        if taken is not None:
            raise ScimError(409, f"a User with userName {name[:80]!r} exists", "uniqueness")

    def _end_access_if_gone(self, attributes: dict[str, Any], actor: str) -> None:
        if attributes.get("active", True) is False:
            subject = attributes["userName"]
            self.engine.end_access_of(subject, actor, DEPROVISIONED)
            for end in self.gone:
                end(self.store.db, subject, actor, self.clock())

    def _user_row(
        self, user_id: str, attributes: dict[str, Any], version: int, created: float, now: float
    ) -> dict[str, Any]:
        return {
            "id": user_id, "user_name": attributes["userName"],
            "user_key": attributes["userName"].lower(), "external_id": attributes.get("externalId"),
            "active": int(attributes.get("active", True)), "resource": json.dumps(attributes),
            "version": version, "created_at": created, "updated_at": now, "deleted_at": None,
        }  # fmt: skip

    def _user_row_of(self, user_id: str) -> dict[str, Any] | None:
        rows = self._rows(
            "SELECT * FROM directory_users WHERE id = ? AND deleted_at IS NULL", [user_id]
        )
        return rows[0] if rows else None

    def _stored_user(self, row: dict[str, Any]) -> Stored:
        attributes = json.loads(row["resource"])
        groups = [
            {"value": g["id"], "display": g["display_name"], "type": "direct"}
            for g in self._rows(
                "SELECT g.id, g.display_name FROM directory_members m JOIN directory_groups g "
                "ON g.id = m.group_id WHERE m.user_id = ? ORDER BY g.display_name",
                [row["id"]],
            )
        ]
        if groups:
            attributes["groups"] = groups
        return Stored(row["id"], attributes, row["created_at"], row["updated_at"], row["version"])

    @staticmethod
    def _user_detail(user_id: str, attributes: dict[str, Any]) -> dict[str, Any]:
        return {
            "user_id": user_id,
            "userName": attributes["userName"],
            "active": attributes.get("active", True),
        }

    # -- Groups ---------------------------------------------------------------------------

    def create_group(self, body: Any, actor: str) -> Stored:
        attributes = scim.clean(GROUPS, body)
        now, group_id = self.clock(), str(uuid.uuid4())
        with self.store.transaction() as db:
            self._unique_group(attributes["displayName"])
            members = self._member_ids(attributes.get("members", []))
            db["directory_groups"].insert(self._group_row(group_id, attributes, 1, now, now))
            for user_id in sorted(members):
                db["directory_members"].insert({"group_id": group_id, "user_id": user_id})
            detail = self._group_detail(group_id, attributes, set(), members)
            self._audit(db, now, actor, "directory_group_created", detail)
            touched = self._names_of(members)
        self._changed(touched)
        return self.group(group_id)

    def group(self, group_id: str, members: bool = True) -> Stored:
        rows = self._rows("SELECT * FROM directory_groups WHERE id = ?", [group_id])
        if not rows:
            raise _not_found("Group", group_id)
        return self._stored_group(rows[0], members)

    def groups(
        self, where: Filter, start: int, count: int, members: bool = True
    ) -> tuple[list[Stored], int]:
        narrow, params = _indexed(
            where, {"displayName": "display_key", "externalId": "external_id"}
        )
        rows = self._rows(
            f"SELECT * FROM directory_groups WHERE 1 = 1{narrow} ORDER BY created_at, id", params
        )
        found = [
            s for s in (self._stored_group(r, False) for r in rows) if where.matches(_filterable(s))
        ]
        page = found[start - 1 : start - 1 + count]
        if members:
            page = [self.group(s.id) for s in page]
        return page, len(found)

    def replace_group(self, group_id: str, body: Any, actor: str) -> Stored:
        return self._change_group(group_id, actor, lambda _: scim.clean(GROUPS, body))

    def patch_group(self, group_id: str, body: Any, actor: str) -> Stored:
        return self._change_group(group_id, actor, lambda held: scim.patch(GROUPS, held, body))

    def delete_group(self, group_id: str, actor: str) -> None:
        now = self.clock()
        with self.store.transaction() as db:
            before = self.group(group_id)
            members = {m["value"] for m in before.attributes.get("members", [])}
            db.execute("DELETE FROM directory_members WHERE group_id = ?", [group_id])
            db.execute("DELETE FROM directory_groups WHERE id = ?", [group_id])
            detail = self._group_detail(group_id, before.attributes, members, set())
            self._audit(db, now, actor, "directory_group_deleted", detail)
            touched = self._names_of(members)
        self._changed(touched)

    def _change_group(
        self, group_id: str, actor: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Stored:
        now = self.clock()
        with self.store.transaction() as db:
            before = self.group(group_id)
            held = before.attributes
            attributes = change(held)
            if attributes["displayName"].lower() != held["displayName"].lower():
                self._unique_group(attributes["displayName"])
            was = {m["value"] for m in held.get("members", [])}
            now_in = self._member_ids(attributes.get("members", []))
            db.execute(
                "UPDATE directory_groups SET display_name = ?, display_key = ?, external_id = ?, "
                "version = ?, updated_at = ? WHERE id = ?",
                [
                    attributes["displayName"], attributes["displayName"].lower(),
                    attributes.get("externalId"), before.version + 1, now, group_id,
                ],
            )  # fmt: skip
            for user_id in sorted(was - now_in):
                db.execute(
                    "DELETE FROM directory_members WHERE group_id = ? AND user_id = ?",
                    [group_id, user_id],
                )
            for user_id in sorted(now_in - was):
                db["directory_members"].insert({"group_id": group_id, "user_id": user_id})
            detail = self._group_detail(group_id, attributes, was, now_in)
            if attributes["displayName"] != held["displayName"]:
                detail["was"] = held["displayName"]
            self._audit(db, now, actor, "directory_group_changed", detail)
            renamed = (attributes["displayName"], attributes.get("externalId")) != (
                held["displayName"], held.get("externalId"),
            )  # fmt: skip
            touched = self._names_of(was ^ now_in if not renamed else was | now_in)
        self._changed(touched)
        return self.group(group_id)

    def _unique_group(self, name: str) -> None:
        taken = self.store.db.execute(
            "SELECT id FROM directory_groups WHERE display_key = ?", [name.lower()]
        ).fetchone()
        if taken is not None:
            raise ScimError(409, f"a Group with displayName {name[:80]!r} exists", "uniqueness")

    def _member_ids(self, members: list[dict[str, Any]]) -> set[str]:
        """The User ids `members` names, each a User of this directory."""
        ids = set()
        for i, member in enumerate(members):
            value = member.get("value")
            if not isinstance(value, str):
                raise scim.invalid(f"members[{i}].value must name a User by its id")
            if member.get("type", "User") not in ("User", "user"):
                raise scim.invalid(f"members[{i}]: only Users may be members (no nested groups)")
            if self._user_row_of(value) is None:
                raise scim.invalid(f"members[{i}].value: no User with id {value[:80]!r}")
            ids.add(value)
        return ids

    def _group_row(
        self, group_id: str, attributes: dict[str, Any], version: int, created: float, now: float
    ) -> dict[str, Any]:
        return {
            "id": group_id, "display_name": attributes["displayName"],
            "display_key": attributes["displayName"].lower(),
            "external_id": attributes.get("externalId"), "version": version,
            "created_at": created, "updated_at": now,
        }  # fmt: skip

    def _stored_group(self, row: dict[str, Any], members: bool = True) -> Stored:
        attributes: dict[str, Any] = {"displayName": row["display_name"]}
        if row["external_id"] is not None:
            attributes["externalId"] = row["external_id"]
        if members:
            attributes["members"] = [
                {"value": m["id"], "display": m["user_name"], "type": "User"}
                for m in self._rows(
                    "SELECT u.id, u.user_name FROM directory_members m JOIN directory_users u "
                    "ON u.id = m.user_id WHERE m.group_id = ? ORDER BY u.user_name",
                    [row["id"]],
                )
            ]
        return Stored(row["id"], attributes, row["created_at"], row["updated_at"], row["version"])

    def _group_detail(
        self, group_id: str, attributes: dict[str, Any], was: set[str], now_in: set[str]
    ) -> dict[str, Any]:
        return {
            "group_id": group_id,
            "displayName": attributes["displayName"],
            "added": sorted(self._names_of(now_in - was)),
            "removed": sorted(self._names_of(was - now_in)),
        }

    def _names_of(self, user_ids: set[str]) -> set[str]:
        if not user_ids:
            return set()
        marks = ", ".join("?" * len(user_ids))
        rows = self._rows(
            f"SELECT user_name FROM directory_users WHERE id IN ({marks})", sorted(user_ids)
        )
        return {r["user_name"] for r in rows}

    def _groups_of(self, user_id: str) -> set[str]:
        rows = self._rows(
            "SELECT g.display_name FROM directory_members m JOIN directory_groups g "
            "ON g.id = m.group_id WHERE m.user_id = ?",
            [user_id],
        )
        return {r["display_name"] for r in rows}

    # -- what policy reads ----------------------------------------------------------------

    def person(self, subject: str) -> dict[str, Any]:
        """What policy reads of `subject` (data.directory.people[subject]): whether they
        are active, their name, department and organization, and the names and external
        ids of their groups; {} for someone the directory does not hold (renamed away)."""
        rows = self._rows(
            "SELECT * FROM directory_users WHERE user_name = ? ORDER BY updated_at DESC",
            [subject],
        )
        live = next((r for r in rows if r["deleted_at"] is None), None)
        if live is None:
            return {"active": False, "groups": []} if rows else {}
        attributes = json.loads(live["resource"])
        enterprise = attributes.get(ENTERPRISE, {})
        names = self._rows(
            "SELECT g.display_name, g.external_id FROM directory_members m "
            "JOIN directory_groups g ON g.id = m.group_id WHERE m.user_id = ?",
            [live["id"]],
        )
        groups = sorted({n for r in names for n in (r["display_name"], r["external_id"]) if n})
        doc = {
            "active": bool(live["active"]),
            "name": attributes.get("displayName") or attributes.get("name", {}).get("formatted"),
            "department": enterprise.get("department"),
            "organization": enterprise.get("organization"),
            "groups": groups,
        }
        return {k: v for k, v in doc.items() if v is not None}

    def people(self) -> dict[str, dict[str, Any]]:
        """data.directory.people in full."""
        rows = self._rows("SELECT DISTINCT user_name FROM directory_users")
        names = {r["user_name"] for r in rows}
        return {name: self.person(name) for name in sorted(names)}

    def sync(self) -> None:
        """Push what policy reads of the whole directory to OPA (at start, and whenever
        OPA answers again); OpaUnavailable when it cannot be."""
        opa = self.engine.opa
        if opa is None:
            raise OpaUnavailable("no OPA configured")
        with self._push_lock:
            try:
                opa.put_data(DATA_PATH, {"people": self.people()})
            except OpaUnavailable as e:
                self.behind = str(e)
                raise
            self.behind = None

    def followed(self) -> None:
        """Another engine on the store changed the directory (or this one has just begun
        to listen): push it all to this engine's OPA and tell whoever remembers people."""
        try:
            self.sync()
        except OpaUnavailable as e:
            log.warning("the directory is not yet in OPA: %s", e)
        for forget in self.changed:
            forget()

    def _changed(self, subjects: set[str]) -> None:
        """After a commit: what policy reads of `subjects` to OPA, the grant changes to
        every sink, and whoever remembers people told to forget."""
        opa = self.engine.opa
        try:
            if self.behind is not None or opa is None:
                self.sync()
            else:
                with self._push_lock:
                    for subject in sorted(subjects):
                        # Into the people sync pushed, never creating them: an OPA that
                        # restarted since refuses, and the next sync pushes them all.
                        opa.add_data(_pointer(subject), self.person(subject))
        except OpaUnavailable as e:
            self.behind = str(e)
            log.warning("the directory is not yet in OPA: %s", e)
        self.engine.grants.apply()
        for forget in self.changed:
            forget()

    # -- the store ------------------------------------------------------------------------

    def _rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.store.db.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _audit(self, db: Any, at: float, actor: str, event: str, detail: dict[str, Any]) -> None:
        """A directory change's audit event; the other engines on the store hear of it."""
        audit.append(db, at=at, actor=actor, event=event, request_id=None, detail=detail)
        self.store.announce(DIRECTORY)


def _indexed(where: Filter, columns: dict[str, str]) -> tuple[str, list[Any]]:
    """A condition narrowing the rows to those the filter's first term on an indexed
    column can match (the lookup Okta and Entra ID make before every create); the
    filter itself still decides. Keys (`*_key`) are kept lower-cased."""
    for name, value in where.terms:
        if name == "id" and isinstance(value, str):
            return " AND id = ?", [value]
        if name in columns and isinstance(value, str):
            column = columns[name]
            return f" AND {column} = ?", [value.lower() if column.endswith("_key") else value]
    return "", []


def _filterable(stored: Stored) -> dict[str, Any]:
    return stored.attributes | {"id": stored.id}


def _pointer(subject: str) -> str:
    """The JSON pointer of a person in OPA's data (RFC 6901 escapes)."""
    return f"/{DATA_PATH}/people/" + subject.replace("~", "~0").replace("/", "~1")
