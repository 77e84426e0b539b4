# METADATA
# title: Break-glass decision
# description: |
#   May this person activate an emergency grant at once, without approval? Only people
#   holding an eligible role (oncall), for data of their own team, in a tier that allows
#   break-glass, from a place on a basis break-glass accepts (inside the data's
#   jurisdiction), for no longer than the break-glass cap, with a reason, and only while
#   none of their earlier break-glass grants is overdue for review; never for a covered
#   person into bulk US data (28 CFR 202, datavisa.us_bulk_data). A review is due within
#   review_deadline_s of activation.
#
#   Input: {subject, resource, actions: [string], duration_s, location, reason,
#   overdue_reviews (count of this person's break-glass grants past their review deadline),
#   authentication (the person's sign-in at the identity provider: datavisa.step_up),
#   origin (where the location comes from: datavisa.origin; optional)}
#   Output: decision = {allow, reasons: [{code, message}], max_duration_s,
#   review_deadline_s, countries (the grant will permit), transfer: {cross_border, basis},
#   supervision (datavisa.supervision.requirement: the tier's break-glass may need a supervisor)}
package datavisa.breakglass

import data.datavisa.directory
import data.datavisa.origin
import data.datavisa.residency
import data.datavisa.step_up
import data.datavisa.supervision
import data.datavisa.us_bulk_data

_rules := data.datavisa.breakglass_rules

_subject := directory.subject(input.subject)

_resource := data.datavisa.resources[input.resource]

_tier := data.datavisa.tiers[_resource.tier]

_ctx := residency.context(_resource, input.subject, input.location, [])

_basis := residency.basis(_ctx)

# METADATA
# title: Allow
# description: True when no rule denies the break-glass activation.
default allow := false

allow if count(deny) == 0

# METADATA
# title: Denial reasons
# description: Each reason break-glass is refused, as {code, message}.
deny contains reason if {
	_resource
	some reason in origin.denials(_tier, "break_glass")
}

deny contains reason if {
	some reason in step_up.denials(_tier, "break_glass", object.get(input, "authentication", null))
}

deny contains {"code": "unknown_subject", "message": msg} if {
	not _subject
	msg := sprintf("%q is not in the directory", [input.subject])
}

deny contains {"code": "unknown_resource", "message": msg} if {
	not _resource
	msg := sprintf("no resource named %q", [input.resource])
}

deny contains {"code": "breakglass_not_permitted", "message": msg} if {
	not _tier.breakglass
	msg := sprintf("%s data may not be reached by break-glass", [_resource.tier])
}

deny contains {"code": "breakglass_not_permitted", "message": msg} if {
	_subject
	count({role | some role in _subject.roles; role in _rules.eligible_roles}) == 0
	msg := sprintf("%s holds no break-glass role (%s)", [input.subject, concat(", ", _rules.eligible_roles)])
}

deny contains {"code": "breakglass_not_permitted", "message": msg} if {
	_rules.own_team_only
	_subject.team != _resource.team
	msg := sprintf("%s may break glass only into data of their own team (%s), not %s's", [input.subject, _subject.team, _resource.team])
}

deny contains {"code": "review_overdue", "message": msg} if {
	object.get(input, "overdue_reviews", 0) > 0
	msg := sprintf("%s has %d break-glass review(s) overdue; break-glass is suspended until they are done", [input.subject, input.overdue_reviews])
}

deny contains {"code": "duration_invalid", "message": "duration must be positive"} if {
	input.duration_s <= 0
}

deny contains {"code": "duration_exceeds_breakglass_max", "message": msg} if {
	_tier
	input.duration_s > max_duration_s
	msg := sprintf("%ds asked, break-glass allows at most %ds", [input.duration_s, max_duration_s])
}

deny contains {"code": "justification_required", "message": "break-glass needs a reason"} if {
	_rules.justification_required
	trim_space(object.get(input, "reason", "")) == ""
}

deny contains {"code": "action_not_permitted", "message": msg} if {
	some action in input.actions
	not action in _resource.actions
	msg := sprintf("%q does not support action %q", [input.resource, action])
}

deny contains {"code": "location_not_permitted", "message": msg} if {
	_resource
	not _basis in _rules.bases
	msg := sprintf("break-glass into data held in %s is allowed from inside it only, not from %s", [_ctx.jurisdiction, input.location])
}

deny contains reason if {
	some reason in residency.sectoral_denials(_resource, input.subject, input.location)
}

# A covered person gets no emergency access to bulk US data: break-glass carries no evidence.
deny contains reason if {
	some reason in us_bulk_data.access_denials(_resource, input.subject, set())
}

# METADATA
# title: Maximum duration
# description: The longest break-glass grant, in seconds; never longer than the tier allows.
default max_duration_s := 0

max_duration_s := min({_rules.max_duration_s, _tier.max_duration_s})

# METADATA
# title: Review deadline
# description: Seconds after activation by which the break-glass grant must be reviewed.
review_deadline_s := _rules.review_deadline_s

default _basis_or_none := "none"

_basis_or_none := _basis

# METADATA
# title: Decision
# description: The whole answer for the engine.
decision := {
	"allow": allow,
	"reasons": deny,
	"max_duration_s": max_duration_s,
	"review_deadline_s": review_deadline_s,
	"countries": [input.location],
	"transfer": {"cross_border": _basis_or_none != "in_jurisdiction", "basis": _basis_or_none},
	"supervision": supervision.requirement(input.resource, object.get(input, "actions", []), true),
}
