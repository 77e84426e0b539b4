# METADATA
# title: Step-up authentication
# description: |
#   Whether the person taking a sensitive step (approve, approve_transfer, break_glass,
#   credentials, supervise) signed in recently and strongly enough for the data's tier. A tier's
#   `step_up` names, per step, the longest time since the person last authenticated at
#   the identity provider (`max_age_s`), the methods that count (`amr`, RFC 8176: mfa,
#   hwk, otp, ...; empty: any) and, optionally, the `acr_values` to ask the IdP for when
#   signing in again (OpenID Connect Core 3.1.2.1: what names a strong sign-in is the
#   IdP's own vocabulary, so policy states it). `authentication` is what the IdP said of the caller's sign-in: {age_s (seconds
#   since auth_time, or null), amr: [string], acr}; null for a caller no IdP signed in (a
#   static token, the local CLI), which a step that needs step-up refuses. The denial says
#   what would satisfy it, so the CLI and the dashboard can lead the person there.
#
#   A tier's step may also name `methods`: the step-ups done in the console itself that
#   count (webauthn: a security key or passkey; totp: an authenticator app's code, a
#   weaker fallback a tier lists only where it accepts it). What the console's step-up
#   did is `authentication.step_up`: {method, age_s}; it satisfies the step when its
#   method is one the tier names and it is at most max_age_s old. The IdP's signals
#   satisfy it as before, whatever `methods` says.
package datavisa.step_up

# METADATA
# title: Step-up decision
# description: |
#   For a step no other decision judges (credentials: the access check that precedes it
#   has allowed the grant): does the caller's sign-in do for `step` on `resource`?
#   Input: {resource, step, authentication (optional)}. Output: {allow, reasons}.
decision := {"allow": count(_denied) == 0, "reasons": _denied}

_denied := denials(data.datavisa.tiers[data.datavisa.resources[input.resource].tier], input.step, object.get(input, "authentication", null)) if {
	data.datavisa.resources[input.resource]
} else := {{"code": "unknown_resource", "message": sprintf("no resource named %q", [input.resource])}}

# METADATA
# title: Denial reasons
# description: Why `authentication` does not do for `step` on data of `tier`; empty when it does.
default denials(_, _, _) := set()

denials(tier, step, authentication) := {_required(step, need)} if {
	need := tier.step_up[step]
	not _satisfies(authentication, need)
}

_satisfies(authentication, need) if {
	is_object(authentication)
	is_number(authentication.age_s)
	authentication.age_s <= need.max_age_s
	_strong(object.get(authentication, "amr", []), object.get(need, "amr", []))
}

_satisfies(authentication, need) if {
	is_object(authentication)
	local := authentication.step_up
	is_number(local.age_s)
	local.age_s <= need.max_age_s
	local.method in object.get(need, "methods", [])
}

_strong(_, wanted) if count(wanted) == 0

_strong(methods, wanted) if {
	some method in methods
	method in wanted
}

_required(step, need) := {
	"code": "step_up_required",
	"message": sprintf("%s needs a sign-in at the identity provider within the last %ds%s: sign in again (%s)%s", [_steps[step], need.max_age_s, _with(object.get(need, "amr", [])), _login(need), _console(need)]),
	"step_up": object.union_n([
		{"max_age_s": need.max_age_s, "amr": object.get(need, "amr", [])},
		_acr_values(need),
		_methods(need),
	]),
}

_console(need) := "" if count(object.get(need, "methods", [])) == 0

_console(need) := sprintf(", or step up in the console (%s)", [concat(" or ", sort([_method_names[m] | some m in need.methods]))]) if {
	count(object.get(need, "methods", [])) > 0
}

_method_names := {"webauthn": "a security key or passkey", "totp": "an authenticator app's code"}

_methods(need) := {"methods": need.methods} if count(object.get(need, "methods", [])) > 0

_methods(need) := {} if count(object.get(need, "methods", [])) == 0

_login(need) := sprintf("datavisa login --max-age %d", [need.max_age_s]) if not need.acr_values

_login(need) := sprintf("datavisa login --max-age %d --acr-values '%s'", [need.max_age_s, concat(" ", need.acr_values)]) if need.acr_values

_acr_values(need) := {"acr_values": need.acr_values} if need.acr_values

_acr_values(need) := {} if not need.acr_values

_steps := {
	"approve": "approving this",
	"approve_transfer": "approving this transfer",
	"break_glass": "break-glass access to this data",
	"credentials": "credentials for this grant",
	"supervise": "supervising this grant",
}

_with(methods) := "" if count(methods) == 0

_with(methods) := sprintf(" with %s", [concat(" or ", methods)]) if count(methods) > 0
