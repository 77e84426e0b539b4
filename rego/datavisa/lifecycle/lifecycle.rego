# METADATA
# title: Lifecycle permissions
# description: |
#   Who may move a request or grant along its lifecycle: the requester cancels a pending
#   request, activates an approved grant and relinquishes an active one; an eligible
#   approver of the resource, or an admin, revokes a grant or denies a request; an
#   eligible approver other than the requester reviews a break-glass grant. A transfer's
#   copy is reported deleted by its requester, or by a service (a pipeline) of the data's
#   own team; a transfer's approvers are those its copy needs. A call made
#   with an admin API token (input.actor_role, see datavisa.api) may force a revoke of
#   anyone's grant; the token role grants nothing else here. Only an admin (by directory
#   role or token) may abandon the removal of an ended grant that a data system has not
#   confirmed (abandon_removal, `revoke --force`), and only with a reason. A supervisor
#   present on a supervised grant (input.supervising) may end one of its sessions
#   (end_session) or revoke it, as its approvers may.
#
#   Input: {actor, actor_role?: the API token's role, when the call came through the API,
#   action: cancel | activate | relinquish | revoke | deny | review | report_deletion |
#   abandon_removal | end_session, supervising?: whether the actor's supervisor lease on
#   the grant is alive now,
#   reason?: why (abandon_removal),
#   request: {id, requester, resource, kind}}
#   Output: decision = {allow, reasons: [{code, message}]}
package datavisa.lifecycle

import data.datavisa.directory
import data.datavisa.quorum

_request := input.request

_resource := data.datavisa.resources[_request.resource]

_requester_only := {"cancel", "activate", "relinquish"}

_approver_actions := {"revoke", "deny", "review", "end_session"}

# What a supervisor present on a supervised grant (input.supervising: their lease is
# alive, datavisa.supervision) may do from the watch: end one session, or the grant.
_supervisor_actions := {"revoke", "end_session"}

_admin_actions := {"abandon_removal"}

# METADATA
# title: Allow
# description: True when no rule denies the action.
default allow := false

allow if count(deny) == 0

# METADATA
# title: Denial reasons
# description: Each reason the actor may not take the action, as {code, message}.
deny contains {"code": "unknown_action", "message": msg} if {
	not input.action in (((_requester_only | _approver_actions) | _admin_actions) | {"report_deletion"})
	msg := sprintf("%q is not a lifecycle action", [input.action])
}

deny contains {"code": "not_requester", "message": msg} if {
	input.action in _requester_only
	input.actor != _request.requester
	msg := sprintf("only the requester, %s, may %s this", [_request.requester, input.action])
}

deny contains {"code": "self_review", "message": "nobody may review their own break-glass access"} if {
	input.action == "review"
	input.actor == _request.requester
}

deny contains {"code": "actor_not_eligible", "message": msg} if {
	input.action in _approver_actions
	not _is_admin
	not _forces_revoke
	not _approves_resource
	not _supervises
	msg := sprintf("%s may not %s access to %s: not an approver of it, nor an admin", [input.actor, input.action, _request.resource])
}

deny contains {"code": "not_requester", "message": msg} if {
	input.action == "report_deletion"
	input.actor != _request.requester
	not _teams_pipeline
	msg := sprintf("only the requester, %s, or a service of the %s team may report this copy deleted", [_request.requester, _resource.team])
}

_teams_pipeline if {
	actor := directory.subject(input.actor)
	actor.kind == "service"
	actor.team == _resource.team
}

deny contains {"code": "admin_only", "message": msg} if {
	input.action in _admin_actions
	not _is_admin
	not _admin_token
	msg := sprintf("only an admin may %s; %s is not one", [input.action, input.actor])
}

deny contains {"code": "reason_required", "message": msg} if {
	input.action in _admin_actions
	trim_space(object.get(input, "reason", "")) == ""
	msg := sprintf("%s needs a reason, for the audit trail and the alert", [input.action])
}

_is_admin if "admin" in directory.subject(input.actor).roles

_supervises if {
	input.action in _supervisor_actions
	input.supervising == true
	input.actor != _request.requester
}

_admin_token if input.actor_role == "admin"

_forces_revoke if {
	input.action == "revoke"
	input.actor_role == "admin"
}

_approves_resource if {
	some tier_rule in data.datavisa.tiers[_resource.tier].approvals
	quorum.member(input.actor, tier_rule.group, _resource)
}

_approves_resource if {
	_request.kind == "transfer"
	tier := data.datavisa.tiers[_resource.tier]
	some tier_rule in array.concat(tier.transfer_approvals, tier.cross_border_approvals)
	quorum.member(input.actor, tier_rule.group, _resource)
}

# METADATA
# title: Decision
# description: The whole answer for the engine.
decision := {"allow": allow, "reasons": deny}
