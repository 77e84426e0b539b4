# METADATA
# title: Approval decision
# description: |
#   May this approver approve this request now? Nobody approves their own request or
#   approves twice, and only members of a group the tier requires count.
#
#   Input: {approver, request: {id, requester, resource, actions, duration_s, location},
#   approvals: [approver ids already recorded]}
#   Output: decision = {allow, reasons: [{code, message}], groups, quorum_met,
#   approvals_required}
package datavisa.approval

import data.datavisa.quorum

_resource := data.datavisa.resources[input.request.resource]

default _requirements := []

_requirements := data.datavisa.tiers[_resource.tier].approvals

_approved := {a | some a in input.approvals}

# METADATA
# title: Allow
# description: True when no rule denies the approval.
default allow := false

allow if count(deny) == 0

# METADATA
# title: Denial reasons
# description: Each reason this approval is refused, as {code, message}.
deny contains {"code": "self_approval", "message": "nobody may approve their own request"} if {
	input.approver == input.request.requester
}

deny contains {"code": "already_approved", "message": msg} if {
	input.approver in _approved
	msg := sprintf("%s has already approved this request", [input.approver])
}

deny contains {"code": "unknown_resource", "message": msg} if {
	not _resource
	msg := sprintf("no resource named %q", [input.request.resource])
}

deny contains {"code": "unknown_approver", "message": msg} if {
	not data.datavisa.subjects[input.approver]
	msg := sprintf("%q is not in the directory", [input.approver])
}

deny contains {"code": "approver_not_eligible", "message": msg} if {
	data.datavisa.subjects[input.approver]
	_resource
	count(groups) == 0
	wanted := concat(", ", {r.group | some r in _requirements})
	msg := sprintf("%s is in no approver group this request needs (%s)", [input.approver, wanted])
}

# METADATA
# title: Approver groups
# description: The required groups the approver belongs to for this resource.
groups contains r.group if {
	some r in _requirements
	quorum.member(input.approver, r.group, _resource)
}

# METADATA
# title: Quorum met
# description: True when this approval, with those before it, completes the quorum.
default quorum_met := false

quorum_met if {
	allow
	quorum.met(_requirements, _approved | {input.approver}, _resource)
}

# METADATA
# title: Decision
# description: The whole answer for the engine.
decision := {
	"allow": allow,
	"reasons": deny,
	"groups": groups,
	"quorum_met": quorum_met,
	"approvals_required": _requirements,
}
