# METADATA
# title: Request decision
# description: |
#   May this subject ask for these actions on this resource, for this long, from this
#   location, with this justification? Answers the verdict, the reasons for a denial,
#   and the numbers policy sets for the request.
#
#   Input: {subject, resource, actions: [string], duration_s, location, reason}
#   Output: decision = {allow, reasons: [{code, message}], max_duration_s,
#   approvals_required: [{group, count}], quorum_met, pending_lifetime_s,
#   activation_deadline_s, countries, transfer: {cross_border, basis}}
package datavisa.request

import data.datavisa.quorum
import data.datavisa.residency

_resource := data.datavisa.resources[input.resource]

_tier := data.datavisa.tiers[_resource.tier]

_basis := residency.basis(_resource, input.location)

# METADATA
# title: Allow
# description: True when no rule denies the request.
default allow := false

allow if count(deny) == 0

# METADATA
# title: Denial reasons
# description: Each reason the request may not be filed, as {code, message}.
deny contains {"code": "unknown_subject", "message": msg} if {
	not data.datavisa.subjects[input.subject]
	msg := sprintf("%q is not in the directory", [input.subject])
}

deny contains {"code": "unknown_resource", "message": msg} if {
	not _resource
	msg := sprintf("no resource named %q", [input.resource])
}

deny contains {"code": "action_not_permitted", "message": msg} if {
	some action in input.actions
	not action in _resource.actions
	msg := sprintf("%q does not support action %q (it supports %s)", [input.resource, action, concat(", ", _resource.actions)])
}

deny contains {"code": "duration_invalid", "message": "duration must be positive"} if {
	input.duration_s <= 0
}

deny contains {"code": "duration_exceeds_tier_max", "message": msg} if {
	input.duration_s > _tier.max_duration_s
	msg := sprintf("%ds asked, %s data allows at most %ds", [input.duration_s, _resource.tier, _tier.max_duration_s])
}

deny contains {"code": "justification_required", "message": msg} if {
	_tier.justification_required
	trim_space(object.get(input, "reason", "")) == ""
	msg := sprintf("%s data needs a reason for access", [_resource.tier])
}

deny contains {"code": "location_not_permitted", "message": msg} if {
	_resource
	not _basis
	msg := sprintf("%s data held in %s may not be reached from %s", [_resource.tier, residency.jurisdiction(_resource), input.location])
}

# METADATA
# title: Maximum duration
# description: The longest grant the resource's tier allows, in seconds.
default max_duration_s := 0

max_duration_s := _tier.max_duration_s

# METADATA
# title: Approvals required
# description: The approver groups and counts the tier requires.
default approvals_required := []

approvals_required := _tier.approvals

# METADATA
# title: Quorum met without approvers
# description: True when the tier needs no approval, so the grant activates at once.
quorum_met := allow if quorum.met(approvals_required, set(), _resource)

default quorum_met := false

# METADATA
# title: Decision
# description: The whole answer for the engine.
decision := {
	"allow": allow,
	"reasons": deny,
	"max_duration_s": max_duration_s,
	"approvals_required": approvals_required,
	"quorum_met": quorum_met,
	"pending_lifetime_s": object.get(_tier_or_empty, "pending_lifetime_s", 0),
	"activation_deadline_s": object.get(_tier_or_empty, "activation_deadline_s", 0),
	"countries": [input.location],
	"transfer": {"cross_border": transfer_basis != "in_jurisdiction", "basis": transfer_basis},
}

# METADATA
# title: Transfer basis
# description: The basis on which the data may be reached from the location, or none.
default transfer_basis := "none"

transfer_basis := _basis

default _tier_or_empty := {}

_tier_or_empty := _tier
