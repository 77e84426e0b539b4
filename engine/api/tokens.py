"""Bearer tokens for the HTTP API: issued to a subject, kept only as hashes.

A token reads `dvt_<id>_<secret>`: the id finds its row, the secret (32 random bytes)
is what proves it. The store holds the SHA-256 of the whole token, never the token, and
compares hashes in constant time. The acting subject of every API call is the token's;
its role says which API operations it may call at all (rego/datavisa/api decides).

`TokenStore.verify_recent` is `verify` for the access check's fast lane: a token verified
within the last VERIFIED_FOR_S is trusted again without a query (keyed by the token's
hash, at most RECENT_MAX of them). A revoke through the same TokenStore (serve's own, the
engine's) forgets it at once; a revoke by another process on the same store (`datavisa
token revoke`, another engine) reaches the fast lane within VERIFIED_FOR_S, every other
route at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..identity.oidc import Identity
from ..ledger import audit
from ..model.errors import DataVisaError, NotFound
from ..model.records import SYSTEM
from ..store import Store, open_store

USER, SERVICE, AUDITOR, ADMIN, OPA = "user", "service", "auditor", "admin", "opa"
SCIM = "scim"
# user: its own lifecycle; service: access checks about anyone, decision-log uploads;
# auditor: reads everything, changes nothing; admin: sweeps, forced revokes, alerts;
# opa: a sidecar OPA's (the bundles, its status reports, its decision logs); scim: an
# identity provider's directory sync (/scim/v2, and nothing else).
ROLES = (USER, SERVICE, AUDITOR, ADMIN, OPA, SCIM)
MACHINES = (SERVICE, OPA, SCIM)  # roles whose subject is a program, not a person
PREFIX = "dvt_"
_ID_BYTES = 6
_TOKEN = re.compile(rf"^{PREFIX}([0-9a-f]{{{2 * _ID_BYTES}}})_([A-Za-z0-9_-]{{43}})$")
SUBJECT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
_SUBJECT = re.compile(SUBJECT_PATTERN)
# Hashed when the id is unknown, so a miss costs what a hit costs.
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()
VERIFIED_FOR_S = 1.0  # how long verify_recent trusts a token it verified, without a query
RECENT_MAX = 1024  # tokens verify_recent remembers at most (the oldest verified go first)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the subject a verified token was issued to, and its role."""

    subject: str
    role: str
    token_id: str
    identity: Identity | None = None  # how the identity provider signed them in, if it did

    @property
    def is_service(self) -> bool:
        return self.role == SERVICE

    @classmethod
    def person(cls, identity: Identity, role: str = USER) -> Principal:
        """A person the identity provider signed in, with the API role policy gave their
        groups (datavisa.idp; the role of a person unless it says otherwise)."""
        return cls(identity.subject, role, identity.token_id, identity)


@dataclass(frozen=True)
class TokenRecord:
    id: str
    subject: str
    role: str
    created_at: float
    revoked_at: float | None = None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """The `tokens` table of a store (by default the engine's own): an SQLite file's or a
    PostgreSQL database's, given as a location or as a store already open (not closed
    here then)."""

    def __init__(self, where: Path | str | Store) -> None:
        self._owned = not isinstance(where, Store)
        self.store = open_store(where) if not isinstance(where, Store) else where
        # verify_recent's memory: the token's hash -> (its principal, verified when).
        self._recent: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._recent_lock = threading.Lock()  # a verify racing a revoke remembers nothing

    @property
    def db(self) -> Any:
        return self.store.db

    def _writing(self) -> Any:
        """One write transaction: the change and its audit event."""
        return self.store.transaction()

    def issue(self, subject: str, role: str = USER, actor: str = SYSTEM) -> tuple[str, TokenRecord]:
        """A new token for `subject`, issued by `actor` (audited); the token itself is
        returned once and never stored."""
        if not _SUBJECT.fullmatch(subject):
            raise DataVisaError(
                f"{subject!r} is not a subject name: letters, digits and . _ : @ -, "
                "starting with a letter or digit, at most 128 characters"
            )
        if role not in ROLES:
            raise DataVisaError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        token_id = secrets.token_hex(_ID_BYTES)
        token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        record = TokenRecord(token_id, subject, role, time.time())
        with self._writing() as db:
            db["tokens"].insert({**record.__dict__, "hash": _hash(token)})
            self._audit(db, "token_issued", record, actor, record.created_at)
        return token, record

    def verify(self, token: str) -> Principal | None:
        """The principal a live token stands for, or None for anything else."""
        match = _TOKEN.fullmatch(token)
        token_id = match.group(1) if match else ""
        row = self.db.execute(
            "SELECT subject, role, hash, revoked_at FROM tokens WHERE id = ?", [token_id]
        ).fetchone()
        stored = row[2] if row else _DUMMY_HASH
        if not hmac.compare_digest(stored, _hash(token)) or not row or row[3] is not None:
            return None
        return Principal(subject=row[0], role=row[1], token_id=token_id)

    def verify_recent(self, token: str) -> Principal | None:
        """`verify`, trusting what it verified within VERIFIED_FOR_S (see the module doc):
        the hot path's token costs a hash, not a query. Only a live token is remembered."""
        key, now = _hash(token), time.monotonic()
        if (known := self._recent.get(key)) is not None and now - known[1] < VERIFIED_FOR_S:
            return known[0]
        with self._recent_lock:  # revoke forgets after its commit, under the same lock
            principal = self.verify(token)
            if principal is None:
                self._recent.pop(key, None)
                return None
            self._recent[key] = principal, now
            while len(self._recent) > RECENT_MAX:
                self._recent.popitem(last=False)
        return principal

    def _forget(self, token_id: str) -> None:
        with self._recent_lock:
            for key, (principal, _) in list(self._recent.items()):
                if principal.token_id == token_id:
                    del self._recent[key]

    def list(self) -> list[TokenRecord]:
        rows = list(
            self.db["tokens"].rows_where(
                select="id, subject, role, created_at, revoked_at", order_by="created_at"
            )
        )
        return [TokenRecord(**r) for r in rows]

    def revoke(self, token_id: str, actor: str = SYSTEM) -> TokenRecord:
        """Revoke a token by its id (audited, as done by `actor`); calls with it fail from
        now on. Revoking a revoked token changes nothing."""
        now = time.time()
        with self._writing() as db:
            changed = db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                [now, token_id],
            ).rowcount
            row = db.execute(
                "SELECT id, subject, role, created_at, revoked_at FROM tokens WHERE id = ?",
                [token_id],
            ).fetchone()
            if row is None:
                raise NotFound(f"no token with id {token_id!r}")
            if changed:
                self._audit(db, "token_revoked", TokenRecord(*row), actor, now)
        self._forget(token_id)  # after the commit: no verify can remember it from now on
        return TokenRecord(*row)

    def revoke_of(self, db: Any, subject: str, actor: str, at: float) -> None:
        """Inside the caller's transaction: revoke every live token of `subject` (each
        audited), a person the directory deprovisioned. `forget_all` after the commit."""
        live = db.execute(
            "SELECT id, subject, role, created_at FROM tokens "
            "WHERE subject = ? AND revoked_at IS NULL",
            [subject],
        ).fetchall()
        db.execute(
            "UPDATE tokens SET revoked_at = ? WHERE subject = ? AND revoked_at IS NULL",
            [at, subject],
        )
        for row in live:
            self._audit(db, "token_revoked", TokenRecord(*row, revoked_at=at), actor, at)

    def forget_all(self) -> None:
        """Verify every token again from now on (tokens were revoked in bulk)."""
        with self._recent_lock:
            self._recent.clear()

    @staticmethod
    def _audit(db: Any, event: str, record: TokenRecord, actor: str, at: float) -> None:
        detail = {"token_id": record.id, "subject": record.subject, "role": record.role}
        audit.append(db, at=at, actor=actor, event=event, request_id=None, detail=detail)

    def close(self) -> None:
        if self._owned:
            self.store.close()
