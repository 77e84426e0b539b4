"""Who a Slack user is here, and the reverse: matched by email, the one the directory the
identity provider syncs by SCIM holds for a person and the one on the Slack profile.

Both ways are asked of Slack (users.info for a user's email, users.lookupByEmail for a
person's Slack id) and kept in `chat_people` for a few minutes, so a burst of clicks or a
message naming ten approvers asks Slack once each. Only an active, undeleted directory
User counts: someone directory sync deprovisioned is no one here either.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from ..store import Store
from .slack import SlackApi

KEEP_S = 300.0  # how long a lookup is believed before Slack is asked again


def directory_email(store: Store, person: str) -> str | None:
    """The email the directory holds for `person` (the primary one, else the first)."""
    row = store.db.execute(
        "SELECT resource FROM directory_users WHERE user_name = ? AND deleted_at IS NULL "
        "AND active = 1 ORDER BY updated_at DESC LIMIT 1",
        [person],
    ).fetchone()
    if row is None:
        return None
    emails = _emails(json.loads(row[0]))
    return emails[0] if emails else None


def directory_person(store: Store, email: str) -> str | None:
    """The active directory person whose email is `email` (case-insensitive); None when
    nobody's is, or when more than one person's is (an email names one person or none)."""
    wanted = email.strip().lower()
    rows = store.db.execute(
        "SELECT user_name, resource FROM directory_users WHERE deleted_at IS NULL "
        "AND active = 1 AND lower(resource) LIKE ?",
        [f"%{wanted}%"],
    ).fetchall()
    found = {name for name, resource in rows if wanted in _emails(json.loads(resource))}
    return found.pop() if len(found) == 1 else None


def _emails(resource: dict) -> list[str]:
    listed = [e for e in resource.get("emails") or [] if isinstance(e, dict)]
    listed.sort(key=lambda e: not e.get("primary"))
    return [str(e["value"]).strip().lower() for e in listed if isinstance(e.get("value"), str)]


class People:
    """Slack user ↔ directory person, through their emails (see the module doc)."""

    def __init__(self, store: Store, api: SlackApi, clock: Callable[[], float] = time.time):
        self.store, self.api, self.clock = store, api, clock

    def person_of(self, slack_user: str) -> tuple[str | None, str | None]:
        """(the directory person, the email Slack holds) of a Slack user; SlackFailed
        when Slack cannot be asked."""
        row = self.store.db.execute(
            "SELECT person, email FROM chat_people WHERE slack_user = ? AND at > ?",
            [slack_user, self.clock() - KEEP_S],
        ).fetchone()
        if row is not None:
            return row[0], row[1]
        email = self.api.email_of(slack_user)
        person = directory_person(self.store, email) if email else None
        self._keep(slack_user, person, email)
        return person, email

    def slack_user_of(self, person: str) -> str | None:
        """The Slack user of a directory person, None when the directory holds no email
        for them or Slack knows none; SlackFailed when Slack cannot be asked."""
        row = self.store.db.execute(
            "SELECT slack_user FROM chat_people WHERE person = ? AND at > ? "
            "ORDER BY at DESC LIMIT 1",
            [person, self.clock() - KEEP_S],
        ).fetchone()
        if row is not None:
            return str(row[0])
        email = directory_email(self.store, person)
        if email is None:
            return None
        user = self.api.user_by_email(email)
        if user is not None:
            self._keep(user, directory_person(self.store, email), email)
        return user

    def _keep(self, slack_user: str, person: str | None, email: str | None) -> None:
        with self.store.transaction(durable=False) as db:
            db.execute(
                "INSERT INTO chat_people (slack_user, person, email, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (slack_user) DO UPDATE SET person = excluded.person, "
                "email = excluded.email, at = excluded.at",
                [slack_user, person, email, self.clock()],
            )
