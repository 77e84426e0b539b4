"""Enrolling and verifying console step-ups (see the package doc)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pyotp
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ..identity.web_session import WebSession
from ..ledger import audit
from ..ledger.decision_log import DecisionLog
from ..model.errors import DataVisaError
from ..policy.decide import ENROLMENT, decide
from ..policy.opa import OpaClient
from ..store import Store
from . import challenges
from .challenges import ASSERT, REGISTER

WEBAUTHN, TOTP = "webauthn", "totp"
ENROL, USE = "enrol", "use"  # what datavisa.enrolment is asked about a method
TOTP_STEP_S = 30  # RFC 6238's time step; a code of the step before or after is taken too
MAX_CREDENTIALS = 10  # per person: a key, a spare, a passkey or two


class StepUpRefused(DataVisaError):
    """A step-up that did not happen: the API's code, the field at fault, the status, and
    policy's reasons where policy refused it."""

    def __init__(
        self,
        code: str,
        message: str,
        field: str | None = None,
        status: int = 400,
        reasons: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.field, self.status, self.reasons = code, field, status, reasons


@dataclasses.dataclass(frozen=True)
class RelyingParty:
    """The console as WebAuthn's relying party: its origin (where browsers reach it, the
    configured public URL's) and its RP ID, that origin's host."""

    origin: str
    name: str = "DataVisa"

    @property
    def rp_id(self) -> str:
        return urlsplit(self.origin).hostname or ""


def _user_handle(person: str) -> bytes:
    """The WebAuthn user handle of `person`: stable, and naming no one by itself."""
    return hashlib.sha256(b"datavisa-user:" + person.encode()).digest()[:32]


class StepUps:
    """Step-ups of the people with sessions on `store`, judged by policy on `opa`."""

    def __init__(
        self,
        store: Store,
        opa: OpaClient | None,
        log: DecisionLog | None = None,
        revision: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.opa, self.log, self.revision, self.clock = store, opa, log, revision, clock

    # -- policy -------------------------------------------------------------------------

    def allowed(self, session: WebSession, method: str, action: str = ENROL) -> dict[str, Any]:
        """Policy's decision on the session's person enrolling (or using) `method`
        (datavisa.enrolment); StepUpRefused (403) with its reasons when it refuses."""
        person = session.identity.subject
        asked = {"subject": person, "method": method, "action": action,
                 "authentication": session.identity.signed_in(self.clock())}  # fmt: skip
        decision = decide(
            self.opa, ENROLMENT, asked, log=self.log, caller=person, revision=self.revision
        )
        if not decision.allow:
            self._refused(person, method, "method", decision.explain())
            raise StepUpRefused(
                decision.reasons[0]["code"] if decision.reasons else "forbidden",
                decision.explain(),
                "method",
                503 if "policy_unavailable" in decision.codes else 403,
                decision.reasons,
            )
        return decision.result

    def accepted(self, session: WebSession) -> dict[str, bool]:
        """Whether policy lets the session's person use TOTP, and whether they hold a
        confirmed secret."""
        person = session.identity.subject
        asked = {"subject": person, "method": TOTP, "action": USE}
        decision = decide(
            self.opa, ENROLMENT, asked, log=self.log, caller=person, revision=self.revision
        )
        held = self.store.db.execute(
            "SELECT confirmed_at FROM totp_secrets WHERE person = ?", [person]
        ).fetchone()
        return {"allowed": decision.allow, "enrolled": held is not None and held[0] is not None}

    # -- WebAuthn: enrolling --------------------------------------------------------------

    def registration_options(self, session: WebSession, rp: RelyingParty) -> dict[str, Any]:
        """The options for navigator.credentials.create() (as JSON), its challenge kept
        for this session."""
        person = session.identity.subject
        self.allowed(session, WEBAUTHN)
        held = self.credentials(person)
        if len(held) >= MAX_CREDENTIALS:
            raise self._refusing(
                person, WEBAUTHN,
                StepUpRefused(
                    "too_many_credentials",
                    f"{person} holds {len(held)} credentials already: remove one first",
                    "credential", 409,
                ),
            )  # fmt: skip
        with self.store.transaction() as db:
            challenge = challenges.issue(db, session.id_hash, REGISTER, self.clock())
        options = generate_registration_options(
            rp_id=rp.rp_id,
            rp_name=rp.name,
            user_name=person,
            user_id=_user_handle(person),
            user_display_name=person,
            challenge=base64url_to_bytes(challenge),
            timeout=int(challenges.CHALLENGE_S * 1000),
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[_descriptor(c) for c in held],
        )
        return json.loads(options_to_json(options))

    def register(
        self, session: WebSession, rp: RelyingParty, credential: dict[str, Any]
    ) -> dict[str, Any]:
        """The authenticator's answer to this session's registration challenge, verified
        (challenge, origin, RP ID, user verification) and stored for the person."""
        person, now = session.identity.subject, self.clock()
        with self.store.transaction() as db:
            challenge = challenges.take(db, session.id_hash, REGISTER, now)
            try:
                if challenge is None:
                    raise _no_challenge()
                verified = verify_registration_response(
                    credential=credential,
                    expected_challenge=base64url_to_bytes(challenge),
                    expected_rp_id=rp.rp_id,
                    expected_origin=rp.origin,
                    require_user_verification=True,
                )
            except (StepUpRefused, WebAuthnException, ValueError, KeyError, TypeError) as e:
                refused = _refusal(e)
                self._refused(person, WEBAUTHN, refused.field, str(refused), db=db)
                failed: StepUpRefused | None = refused
            else:
                failed = None
                credential_id = bytes_to_base64url(verified.credential_id)
                taken = db.execute(
                    "SELECT person FROM webauthn_credentials WHERE credential_id = ?",
                    [credential_id],
                ).fetchone()
                if taken is not None:
                    failed = StepUpRefused(
                        "credential_exists", "this credential is enrolled already",
                        "credential", 409,
                    )  # fmt: skip
                    self._refused(person, WEBAUTHN, failed.field, str(failed), db=db)
                else:
                    transports = _transports(credential)
                    db["webauthn_credentials"].insert(
                        {
                            "credential_id": credential_id,
                            "person": person,
                            "public_key": verified.credential_public_key,
                            "sign_count": verified.sign_count,
                            "transports": json.dumps(transports),
                            "created_at": now,
                            "last_used_at": None,
                        }
                    )
                    audit.append(
                        db, at=now, actor=person, event="step_up_enrolled", request_id=None,
                        detail={"method": WEBAUTHN, "credential": credential_id[:16],
                                "session": session.id_hash[:16], "transports": transports},
                    )  # fmt: skip
        if failed is not None:
            raise failed
        return {"credential_id": credential_id, "method": WEBAUTHN, "enrolled_at": now}

    def remove(self, session: WebSession, credential_id: str) -> None:
        """Remove one of the person's credentials (a key lost or retired); policy's rule
        for enrolling holds (a recent sign-in or step-up), so a session taken over later
        cannot take the person's keys away either."""
        person = session.identity.subject
        self.allowed(session, WEBAUTHN)
        with self.store.transaction() as db:
            gone = db.execute(
                "DELETE FROM webauthn_credentials WHERE credential_id = ? AND person = ?",
                [credential_id, person],
            ).rowcount
            if gone:
                audit.append(
                    db, at=self.clock(), actor=person, event="step_up_removed",
                    request_id=None,
                    detail={"method": WEBAUTHN, "credential": credential_id[:16],
                            "session": session.id_hash[:16]},
                )  # fmt: skip
        if not gone:
            raise self._refusing(
                person, WEBAUTHN,
                StepUpRefused("not_found", f"{person} has no such credential",
                              "credential_id", 404),
            )  # fmt: skip

    def credentials(self, person: str) -> list[dict[str, Any]]:
        """`person`'s WebAuthn credentials: id, transports, sign count, when made and used."""
        rows = self.store.db.execute(
            "SELECT credential_id, transports, sign_count, created_at, last_used_at "
            "FROM webauthn_credentials WHERE person = ? ORDER BY created_at",
            [person],
        ).fetchall()
        names = ("credential_id", "transports", "sign_count", "created_at", "last_used_at")
        held = [dict(zip(names, row, strict=True)) for row in rows]
        for c in held:
            c["transports"] = json.loads(c["transports"] or "[]")
        return held

    # -- WebAuthn: stepping up ------------------------------------------------------------

    def assertion_options(self, session: WebSession, rp: RelyingParty) -> dict[str, Any]:
        """The options for navigator.credentials.get() (as JSON) over the person's
        credentials, its challenge kept for this session."""
        person = session.identity.subject
        held = self.credentials(person)
        if not held:
            raise self._refusing(
                person, WEBAUTHN,
                StepUpRefused(
                    "not_enrolled",
                    f"{person} has no security key or passkey enrolled: enrol one first",
                    "credential", 409,
                ),
            )  # fmt: skip
        with self.store.transaction() as db:
            challenge = challenges.issue(db, session.id_hash, ASSERT, self.clock())
        options = generate_authentication_options(
            rp_id=rp.rp_id,
            challenge=base64url_to_bytes(challenge),
            timeout=int(challenges.CHALLENGE_S * 1000),
            allow_credentials=[_descriptor(c) for c in held],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return json.loads(options_to_json(options))

    def verify_assertion(
        self, session: WebSession, rp: RelyingParty, credential: dict[str, Any]
    ) -> dict[str, Any]:
        """The authenticator's answer to this session's assertion challenge, verified
        (challenge, origin, RP ID, user verification, signature by the person's own
        credential, a sign counter that grew unless both are 0); the session then holds
        a webauthn step-up of now."""
        person, now = session.identity.subject, self.clock()
        with self.store.transaction() as db:
            challenge = challenges.take(db, session.id_hash, ASSERT, now)
            try:
                if challenge is None:
                    raise _no_challenge()
                credential_id = credential.get("id") if isinstance(credential, dict) else None
                if not isinstance(credential_id, str):
                    raise StepUpRefused("bad_request", "the answer names no credential", "id")
                found = db.execute(
                    "SELECT public_key, sign_count FROM webauthn_credentials "
                    "WHERE credential_id = ? AND person = ?",
                    [credential_id, person],
                ).fetchone()
                if found is None:
                    raise StepUpRefused(
                        "unknown_credential",
                        f"this credential is not one {person} enrolled",
                        "id",
                        403,
                    )
                public_key, count = bytes(found[0]), int(found[1])
                verified = verify_authentication_response(
                    credential=credential,
                    expected_challenge=base64url_to_bytes(challenge),
                    expected_rp_id=rp.rp_id,
                    expected_origin=rp.origin,
                    credential_public_key=public_key,
                    credential_current_sign_count=count,
                    require_user_verification=True,
                )
            except (StepUpRefused, WebAuthnException, ValueError, KeyError, TypeError) as e:
                refused = _refusal(e)
                self._refused(person, WEBAUTHN, refused.field, str(refused), db=db)
                failed: StepUpRefused | None = refused
            else:
                failed = None
                db.execute(
                    "UPDATE webauthn_credentials SET sign_count = ?, last_used_at = ? "
                    "WHERE credential_id = ?",
                    [verified.new_sign_count, now, credential_id],
                )
                self._stepped_up(db, session, WEBAUTHN, now, {"credential": credential_id[:16]})
        if failed is not None:
            raise failed
        return {"method": WEBAUTHN, "at": now}

    # -- TOTP -----------------------------------------------------------------------------

    def totp_enrol(self, session: WebSession, issuer: str = "DataVisa") -> dict[str, Any]:
        """A new TOTP secret for the person, where policy allows TOTP at all; it counts
        once a code of it was verified. Refused while a confirmed one is held."""
        person, now = session.identity.subject, self.clock()
        self.allowed(session, TOTP)
        secret = pyotp.random_base32()
        with self.store.transaction() as db:
            held = db.execute(
                "SELECT confirmed_at FROM totp_secrets WHERE person = ?", [person]
            ).fetchone()
            if held is not None and held[0] is not None:
                refused = StepUpRefused(
                    "totp_enrolled", f"{person} holds a TOTP secret already", "method", 409
                )
                self._refused(person, TOTP, refused.field, str(refused), db=db)
            else:
                refused = None
                db.execute("DELETE FROM totp_secrets WHERE person = ?", [person])
                db["totp_secrets"].insert(
                    {"person": person, "secret": secret, "created_at": now,
                     "confirmed_at": None, "last_counter": None}
                )  # fmt: skip
                audit.append(
                    db, at=now, actor=person, event="step_up_enrolled", request_id=None,
                    detail={"method": TOTP, "confirmed": False, "session": session.id_hash[:16]},
                )  # fmt: skip
        if refused is not None:
            raise refused
        uri = pyotp.TOTP(secret).provisioning_uri(name=person, issuer_name=issuer)
        return {"secret": secret, "uri": uri, "period_s": TOTP_STEP_S}

    def totp_verify(self, session: WebSession, code: str) -> dict[str, Any]:
        """A code of the person's TOTP secret, where policy allows TOTP: taken once (a
        code of a time step already taken, or an earlier one, is refused); the session
        then holds a totp step-up of now."""
        person, now = session.identity.subject, self.clock()
        self.allowed(session, TOTP, USE)
        if not isinstance(code, str) or len(code) != 6 or not code.isdigit():
            raise self._refusing(
                person, TOTP, StepUpRefused("bad_request", "a TOTP code is 6 digits", "code")
            )
        with self.store.transaction() as db:
            held = db.execute(
                "SELECT secret, last_counter FROM totp_secrets WHERE person = ?", [person]
            ).fetchone()
            counter = None if held is None else _totp_counter(held[0], code, now)
            if held is None:
                failed: StepUpRefused | None = StepUpRefused(
                    "not_enrolled", f"{person} has no TOTP secret enrolled", "code", 409
                )
            elif counter is None:
                failed = StepUpRefused("step_up_failed", "the code is not right now", "code", 403)
            elif held[1] is not None and counter <= held[1]:
                failed = StepUpRefused(
                    "code_reused", "this code (or a later one) was taken already", "code", 403
                )
            else:
                failed = None
            if failed is not None:
                self._refused(person, TOTP, failed.field, str(failed), db=db)
            else:
                db.execute(
                    "UPDATE totp_secrets SET last_counter = ?, "
                    "confirmed_at = coalesce(confirmed_at, ?) WHERE person = ?",
                    [counter, now, person],
                )
                self._stepped_up(db, session, TOTP, now, {})
        if failed is not None:
            raise failed
        return {"method": TOTP, "at": now}

    # -- records --------------------------------------------------------------------------

    def _stepped_up(
        self, db: Any, session: WebSession, method: str, now: float, detail: dict[str, Any]
    ) -> None:
        db.execute(
            "UPDATE web_sessions SET step_up_method = ?, step_up_at = ? WHERE id_hash = ?",
            [method, now, session.id_hash],
        )
        audit.append(
            db, at=now, actor=session.identity.subject, event="stepped_up", request_id=None,
            detail={"method": method, "session": session.id_hash[:16], **detail},
        )  # fmt: skip

    def _refusing(self, person: str, method: str, refused: StepUpRefused) -> StepUpRefused:
        """`refused`, audited (in a transaction of its own), for the caller to raise."""
        self._refused(person, method, refused.field, str(refused))
        return refused

    def _refused(
        self, person: str, method: str, field: str | None, why: str, db: Any = None
    ) -> None:
        """A step-up refused, in the audit trail: in `db`'s transaction (the one that
        took the challenge), else in one of its own."""
        if db is None:
            with self.store.transaction() as own:
                return self._refused(person, method, field, why, own)
        detail = {"method": method, "field": field, "why": why[:300]}
        audit.append(db, at=self.clock(), actor=person, event="step_up_refused",
                     request_id=None, detail=detail)  # fmt: skip


def _descriptor(held: dict[str, Any]) -> PublicKeyCredentialDescriptor:
    known = {t.value for t in AuthenticatorTransport}
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(held["credential_id"]),
        transports=[AuthenticatorTransport(t) for t in held["transports"] if t in known],
    )


def _transports(credential: dict[str, Any]) -> list[str]:
    response = credential.get("response") if isinstance(credential, dict) else None
    found = response.get("transports") if isinstance(response, dict) else None
    if not isinstance(found, list):
        return []
    return [t for t in found if isinstance(t, str) and len(t) <= 32][:8]


def _no_challenge() -> StepUpRefused:
    return StepUpRefused(
        "challenge_unknown",
        "no step-up challenge waits for this session (it was answered already, or it "
        "lapsed): start again",
        "challenge",
        403,
    )


def _refusal(e: Exception) -> StepUpRefused:
    """What a failed verification says to the caller: the field it concerns."""
    if isinstance(e, StepUpRefused):
        return e
    why = str(e)[:300] or type(e).__name__
    lowered = why.lower()
    field = "credential"
    for words, named in (
        (("origin",), "response.clientDataJSON.origin"),
        (("challenge",), "response.clientDataJSON.challenge"),
        (("sign count",), "response.authenticatorData.signCount"),
        (("rp id",), "response.authenticatorData.rpIdHash"),
        (("user was not verified", "user verification"), "response.authenticatorData.flags"),
        (("signature",), "response.signature"),
    ):
        if any(w in lowered for w in words):
            field = named
            break
    return StepUpRefused("step_up_failed", f"the authenticator's answer was refused: {why}",
                         field, 403)  # fmt: skip


def _totp_counter(secret: str, code: str, now: float) -> int | None:
    """The time step `code` is the code of, within one step of now; None when none."""
    totp = pyotp.TOTP(secret, interval=TOTP_STEP_S)
    for offset in (0, -1, 1):
        at = datetime.fromtimestamp(now + offset * TOTP_STEP_S, UTC)
        if hmac.compare_digest(totp.at(at), code):
            return totp.timecode(at)
    return None
