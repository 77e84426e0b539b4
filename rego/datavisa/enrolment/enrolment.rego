# METADATA
# title: Step-up enrolment
# description: |
#   Whether a person may enrol a step-up method in the console, and which methods count
#   anywhere. A security key or passkey (webauthn) any person of the directory may enrol;
#   an authenticator app (totp) is a weaker fallback, enrolled only where some tier's
#   step lists it in `methods` (datavisa.step_up), and verified only there. Services
#   enrol nothing: a machine does not step up. Enrolling wants a recent sign-in at the
#   identity provider, or a recent console step-up (data.datavisa.step_up_enrolment
#   max_age_s): a session someone took over later cannot add a key of their own.
#   Input: {subject, method, action (enrol, else use), authentication (as for
#   datavisa.step_up)}. Output: {allow, reasons, methods}.
package datavisa.enrolment

import data.datavisa.directory

# METADATA
# title: Enrolment decision
# description: May `subject` enrol (or use) `method`, and which methods some tier accepts.
decision := {"allow": count(_denied) == 0, "reasons": _denied, "methods": methods}

# METADATA
# title: Accepted methods
# description: The console step-up methods some tier's step accepts.
methods contains method if {
	some tier in data.datavisa.tiers
	some need in object.get(tier, "step_up", {})
	some method in object.get(need, "methods", [])
}

_known := {"webauthn", "totp"}

_denied contains reason if {
	not input.method in _known
	reason := {"code": "unknown_method", "message": sprintf("%q is no step-up method (webauthn, totp)", [input.method])}
}

_denied contains reason if {
	not _person
	reason := {"code": "not_a_person", "message": sprintf("%q is no person of the directory: only people step up", [input.subject])}
}

_denied contains reason if {
	input.method == "totp"
	not "totp" in methods
	reason := {"code": "method_not_allowed", "message": "no tier accepts an authenticator app's code as step-up: enrol a security key or passkey"}
}

_person if directory.subject(input.subject).kind == "person"

_denied contains reason if {
	object.get(input, "action", "enrol") == "enrol"
	not _recent(object.get(input, "authentication", null))
	reason := {
		"code": "step_up_required",
		"message": sprintf("enrolling a step-up method needs a sign-in at the identity provider (or a step-up here) within the last %ds: sign in again", [_enrol_max_age_s]),
		"step_up": {"max_age_s": _enrol_max_age_s, "amr": []},
	}
}

# Missing data fails closed: no sign-in is recent enough.
default _enrol_max_age_s := 0

_enrol_max_age_s := data.datavisa.step_up_enrolment.max_age_s

_recent(authentication) if {
	is_number(authentication.age_s)
	authentication.age_s <= _enrol_max_age_s
}

_recent(authentication) if {
	is_number(authentication.step_up.age_s)
	authentication.step_up.age_s <= _enrol_max_age_s
}
