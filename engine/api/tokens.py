"""Bearer tokens for the HTTP API: issued to a subject, kept only as hashes.

A token reads `dvt_<id>_<secret>`: the id finds its row, the secret (32 random bytes)
is what proves it. The store holds the SHA-256 of the whole token, never the token, and
compares hashes in constant time. The acting subject of every API call is the token's;
its role says which API operations it may call at all (rego/datavisa/api decides).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from ..ledger import audit
from ..model.errors import DataVisaError, NotFound
from ..model.records import SYSTEM
from ..store.sqlite import BUSY_TIMEOUT_S

USER, SERVICE, AUDITOR, ADMIN = "user", "service", "auditor", "admin"
# user: its own lifecycle; service: access checks about anyone, decision-log uploads;
# auditor: reads everything, changes nothing; admin: sweeps, forced revokes, alerts.
ROLES = (USER, SERVICE, AUDITOR, ADMIN)
PREFIX = "dvt_"
_ID_BYTES = 6
_TOKEN = re.compile(rf"^{PREFIX}([0-9a-f]{{{2 * _ID_BYTES}}})_([A-Za-z0-9_-]{{43}})$")
SUBJECT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
_SUBJECT = re.compile(SUBJECT_PATTERN)
# Hashed when the id is unknown, so a miss costs what a hit costs.
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the subject a verified token was issued to, and its role."""

    subject: str
    role: str
    token_id: str

    @property
    def is_service(self) -> bool:
        return self.role == SERVICE


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
    """The `tokens` table of a SQLite file (by default the engine's own)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        # One connection shared by the server's threads; the lock keeps their use apart.
        self._lock = threading.Lock()
        with self._lock:
            audit.create_table(self.db)
            self.db["tokens"].create(
                {
                    "id": str,
                    "subject": str,
                    "role": str,
                    "hash": str,
                    "created_at": float,
                    "revoked_at": float,
                },
                pk="id",
                not_null={"subject", "role", "hash", "created_at"},
                if_not_exists=True,
            )

    @contextmanager
    def _writing(self) -> Iterator[sqlite_utils.Database]:
        """One immediate transaction on this file: the change and its audit event."""
        with self._lock:
            self.db.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.conn.rollback()
                raise
            self.db.conn.commit()

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
        with self._lock:
            row = self.db.execute(
                "SELECT subject, role, hash, revoked_at FROM tokens WHERE id = ?", [token_id]
            ).fetchone()
        stored = row[2] if row else _DUMMY_HASH
        if not hmac.compare_digest(stored, _hash(token)) or not row or row[3] is not None:
            return None
        return Principal(subject=row[0], role=row[1], token_id=token_id)

    def list(self) -> list[TokenRecord]:
        with self._lock:
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
        return TokenRecord(*row)

    @staticmethod
    def _audit(
        db: sqlite_utils.Database, event: str, record: TokenRecord, actor: str, at: float
    ) -> None:
        detail = {"token_id": record.id, "subject": record.subject, "role": record.role}
        audit.append(db, at=at, actor=actor, event=event, request_id=None, detail=detail)

    def close(self) -> None:
        with self._lock:
            self.db.close()
