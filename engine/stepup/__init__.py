"""Step-up in the console: a person proves, again and strongly, that it is them before a
step policy wants that for (datavisa.step_up), with a WebAuthn credential (a security key
or passkey) or, where policy allows it as a fallback, a TOTP code.

`StepUps` enrols credentials (registration options, then the authenticator's answer
verified and stored per person), asks for and verifies assertions (the one-time challenge
this web session was handed, the console's public origin, the RP ID, user verification,
a sign counter that grows), enrols and verifies TOTP secrets (a code is taken once), and
records the method and the time on the web session, whence the decision input's
`authentication.step_up` comes. Who may enrol what is policy (datavisa.enrolment). Every
success and refusal is an audit event, written with the change it records.
"""

from .stepups import RelyingParty, StepUpRefused, StepUps

__all__ = ["RelyingParty", "StepUpRefused", "StepUps"]
