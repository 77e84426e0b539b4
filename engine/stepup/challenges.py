"""One-time challenges handed to a web session for one purpose (`step_up_challenges`):
a new one replaces the session's earlier one for the same purpose, and taking it deletes
it, so an answer to it counts once (a replayed assertion finds nothing to answer)."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

CHALLENGE_S = 300.0  # how long a person may take at their authenticator
REGISTER, ASSERT, TOTP_ENROL = "register", "assert", "totp_enrol"


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def issue(db: Any, session_hash: str, purpose: str, now: float) -> str:
    """A fresh challenge (base64url, 32 random bytes) for `session_hash`'s `purpose`;
    call inside a transaction."""
    challenge = secrets.token_urlsafe(32)
    db.execute("DELETE FROM step_up_challenges WHERE expires_at < ?", [now])
    db.execute(
        "DELETE FROM step_up_challenges WHERE session_hash = ? AND purpose = ?",
        [session_hash, purpose],
    )
    db["step_up_challenges"].insert(
        {
            "challenge_hash": _hash(challenge),
            "session_hash": session_hash,
            "purpose": purpose,
            "challenge": challenge,
            "created_at": now,
            "expires_at": now + CHALLENGE_S,
        }
    )
    return challenge


def take(db: Any, session_hash: str, purpose: str, now: float) -> str | None:
    """The challenge waiting for `session_hash`'s `purpose`, taken out of the store as it
    is read; None when none waits (used already, never asked) or it lapsed. Call inside
    the transaction that records what the answer did."""
    row = db.execute(
        "SELECT challenge, expires_at FROM step_up_challenges "
        "WHERE session_hash = ? AND purpose = ?",
        [session_hash, purpose],
    ).fetchone()
    if row is None:
        return None
    db.execute(
        "DELETE FROM step_up_challenges WHERE session_hash = ? AND purpose = ?",
        [session_hash, purpose],
    )
    return row[0] if now < row[1] else None
