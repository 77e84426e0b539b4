"""The console's step-up (engine/stepup): enrol a security key or passkey, assert it, or,
where policy allows it as a fallback, enrol and give a TOTP code; and the /step-up page
that does it in the browser and returns to the console.

Each call needs a signed-in browser session (its cookie, its CSRF token, the server's
own origin: api/browser.py): a step-up is recorded on that session, and only a person in
front of a browser steps up. The WebAuthn relying party is the console's public origin
(the configured public URL's, as CSRF checks it) and its host as RP ID. A refusal is a
4xx JSON error naming the field at fault; every success and refusal is an audit event.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ...identity.web_session import WebSession
from ...model.durations import rfc3339
from ...stepup import RelyingParty, StepUpRefused, StepUps
from ..browser import check_csrf, origin, session_of
from ..deps import V1, Allowed, Served
from ..errors import ApiError, JsonRoute
from ..service import Service
from ..tokens import Principal
from .auth import NO_STORE, RETURN_TO
from .dashboard import DASHBOARD, DASHBOARD_HEADERS

router = APIRouter(route_class=JsonRoute)
PAGE = "/step-up"
USE = "step_up.use"


class Answer(BaseModel):
    """An authenticator's answer as the browser's PublicKeyCredential.toJSON() gives it."""

    model_config = ConfigDict(extra="forbid")
    credential: dict[str, Any] = Field(
        description="The PublicKeyCredential as JSON (id, rawId, type, response, ...)"
    )


class Code(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=16, description="The 6 digits the app shows")


async def _session(service: Service, request: Request) -> tuple[WebSession, StepUps]:
    """The browser session this call comes from (CSRF rules held), and the step-ups."""
    if service.sessions is None or service.stepups is None:
        raise ApiError(404, "not_found", "step-up needs the dashboard's sign-in (identity.sign_in)")
    session = await session_of(service, request)
    if session is None:
        raise ApiError(
            401, "unauthenticated",
            "a step-up is done in a signed-in browser: sign in at /auth/login",
            field="cookie",
        )  # fmt: skip
    check_csrf(request, service.sessions.config, session)
    return session, service.stepups


def _party(service: Service, request: Request) -> RelyingParty:
    assert service.sessions is not None
    return RelyingParty(origin(request, service.sessions.config))


async def _run(call: Any, *args: Any) -> Any:
    try:
        return await run_in_threadpool(call, *args)
    except StepUpRefused as e:
        raise ApiError(e.status, e.code, str(e), field=e.field, reasons=e.reasons) from None


@router.get("/v1/step-up", tags=["step-up"], **V1)
async def status(
    service: Served, request: Request, actor: Annotated[Principal, Allowed(USE)]
) -> Any:
    """What this person holds (security keys, a TOTP secret), whether policy lets them
    use TOTP, and the step-up this session holds (method, at)."""
    session, stepups = await _session(service, request)
    person = session.identity
    held = await run_in_threadpool(stepups.credentials, person.subject)
    accepted = await run_in_threadpool(stepups.accepted, session)
    keys = [
        {"credential_id": c["credential_id"], "transports": c["transports"],
         "created_at": rfc3339(c["created_at"]),
         "last_used_at": rfc3339(c["last_used_at"]) if c["last_used_at"] else None}
        for c in held
    ]  # fmt: skip
    return {
        "subject": person.subject,
        "credentials": keys,
        "totp": accepted,
        "step_up": None
        if person.step_up_at is None
        else {"method": person.step_up_method, "at": rfc3339(person.step_up_at)},
    }


@router.post("/v1/step-up/webauthn/register/options", tags=["step-up"], **V1)
async def register_options(
    service: Served, request: Request, actor: Annotated[Principal, Allowed(USE)]
) -> Any:
    """Options for navigator.credentials.create(): enrol a security key or passkey
    (policy: datavisa.enrolment); the challenge counts once, for this session."""
    session, stepups = await _session(service, request)
    return await _run(stepups.registration_options, session, _party(service, request))


@router.post("/v1/step-up/webauthn/register/verify", tags=["step-up"], **V1)
async def register_verify(
    service: Served, request: Request, body: Answer, actor: Annotated[Principal, Allowed(USE)]
) -> Any:
    """The new credential, verified against this session's challenge, the console's
    origin and RP ID, with user verification; stored for the person."""
    session, stepups = await _session(service, request)
    return await _run(stepups.register, session, _party(service, request), body.credential)


@router.delete("/v1/step-up/webauthn/credentials/{credential_id}", tags=["step-up"], **V1)
async def remove_credential(
    service: Served,
    request: Request,
    actor: Annotated[Principal, Allowed(USE)],
    credential_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{16,1366}$")],
) -> Any:
    """Remove one of the person's credentials (as enrolling, after a recent sign-in or
    step-up)."""
    session, stepups = await _session(service, request)
    await _run(stepups.remove, session, credential_id)
    return {"removed": credential_id}


@router.post("/v1/step-up/webauthn/assert/options", tags=["step-up"], **V1)
async def assert_options(
    service: Served, request: Request, actor: Annotated[Principal, Allowed(USE)]
) -> Any:
    """Options for navigator.credentials.get() over the person's credentials."""
    session, stepups = await _session(service, request)
    return await _run(stepups.assertion_options, session, _party(service, request))


@router.post("/v1/step-up/webauthn/assert/verify", tags=["step-up"], **V1)
async def assert_verify(
    service: Served, request: Request, body: Answer, actor: Annotated[Principal, Allowed(USE)]
) -> Any:
    """The assertion, verified (challenge once, origin, RP ID, user verification, the
    person's own credential, a sign counter that grew): this session is stepped up."""
    session, stepups = await _session(service, request)
    done = await _run(stepups.verify_assertion, session, _party(service, request), body.credential)
    return {"method": done["method"], "at": rfc3339(done["at"])}


@router.post("/v1/step-up/totp/enrol", tags=["step-up"], **V1)
async def totp_enrol(
    service: Served, request: Request, actor: Annotated[Principal, Allowed(USE)]
) -> Any:
    """A new TOTP secret (and its otpauth:// URI) where policy accepts TOTP; it counts
    once a code of it is verified."""
    session, stepups = await _session(service, request)
    answer = await _run(stepups.totp_enrol, session)
    return JSONResponse(answer, headers=NO_STORE)  # the secret: kept by no cache


@router.post("/v1/step-up/totp/verify", tags=["step-up"], **V1)
async def totp_verify(
    service: Served, request: Request, body: Code, actor: Annotated[Principal, Allowed(USE)]
) -> Any:
    """A TOTP code, where policy accepts TOTP, taken once: this session is stepped up."""
    session, stepups = await _session(service, request)
    done = await _run(stepups.totp_verify, session, body.code)
    return {"method": done["method"], "at": rfc3339(done["at"])}


@router.get(PAGE, include_in_schema=False)
def page(
    service: Served,
    return_to: Annotated[str, Query(pattern=RETURN_TO, description="A path of this server")] = "/",
) -> FileResponse:
    """The step-up page (stepup.js): enrol or assert, then back to `return_to`, which
    must be a path of this server (anything else is a 422 naming return_to)."""
    if service.sessions is None:
        raise ApiError(404, "not_found", "step-up needs the dashboard's sign-in (identity.sign_in)")
    return FileResponse(DASHBOARD / "step-up.html", headers={**DASHBOARD_HEADERS, **NO_STORE})
