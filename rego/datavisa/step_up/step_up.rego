# METADATA
# title: Step-up authentication
# description: |
#   Whether the person taking a sensitive step (approve, break_glass) signed in recently
#   and strongly enough for the data's tier. A tier's `step_up` names, per step, the
#   longest time since the person last authenticated at the identity provider
#   (`max_age_s`) and the methods that count (`amr`, RFC 8176: mfa, hwk, otp, ...; empty:
#   any). `authentication` is what the IdP said of the caller's sign-in: {age_s (seconds
#   since auth_time, or null), amr: [string], acr}; null for a caller no IdP signed in (a
#   static token, the local CLI), which a step that needs step-up refuses. The denial says
#   what would satisfy it, so the CLI and the dashboard can lead the person there.
package datavisa.step_up

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

_strong(_, wanted) if count(wanted) == 0

_strong(methods, wanted) if {
	some method in methods
	method in wanted
}

_required(step, need) := {
	"code": "step_up_required",
	"message": sprintf("%s needs a sign-in at the identity provider within the last %ds%s: sign in again (datavisa login)", [_steps[step], need.max_age_s, _with(object.get(need, "amr", []))]),
	"step_up": {"max_age_s": need.max_age_s, "amr": object.get(need, "amr", [])},
}

_steps := {"approve": "approving this", "break_glass": "break-glass access to this data"}

_with(methods) := "" if count(methods) == 0

_with(methods) := sprintf(" with %s", [concat(" or ", methods)]) if count(methods) > 0
