# METADATA
# title: Notifications
# description: |
#   Who is told what, and when, about requests and grants (engine/chat): the people a
#   request's notification names (those the approval decision would let approve it, from
#   the directory and their IdP groups), whether chat may approve it or must send the
#   approver to the console, when a reminder goes out before a request lapses, who is
#   told when nobody decided for a while (escalation), and when a grant's holder is told
#   it is about to expire. The timings are data.datavisa.notifications: `defaults`, with
#   per-tier overrides under `tiers`. Time is OPA's clock.
#
#   recipients: input {kind (requested, reminder, escalation, expiring), level (an
#   escalation's step, from 0), request (as datavisa.approval takes it), approvals:
#   [approver ids already recorded], idp_groups (optional: the earlier approvers', by
#   approver)}. Output: {approvers: [person ids who may approve], notify: [person ids to
#   tell], chat_approve (whether a chat button may approve), console_reasons (why not:
#   the step-up denials, or chat approval turned off for the tier)}.
#
#   due: input {requests: [{id, resource, state (pending or active), created_at_s,
#   pending_until_s (pending), expires_at_s (active)}]}. Output: the set of
#   {key, kind (reminder, escalation, expiring), request_id, level} due now; `key` is what
#   a notification is de-duplicated by.
package datavisa.notification

import data.datavisa.approval
import data.datavisa.directory
import data.datavisa.quorum

_s := 1000000000

default _config := {}

_config := data.datavisa.notifications

_defaults := object.get(_config, "defaults", {})

# METADATA
# title: Settings
# description: The notification settings of a resource's tier (the defaults, the tier's over them).
settings(resource_id) := object.union(_defaults, object.get(object.get(_config, "tiers", {}), tier, {})) if {
	tier := data.datavisa.resources[resource_id].tier
} else := _defaults

_request := input.request

_people := {id | some id, subject in directory.subjects; subject.kind == "person"}

# Where a person is assumed to approve from: their employer's country (a notification
# goes out before anyone is anywhere; the approval itself judges where they are then).
_home(person) := data.datavisa.entities[directory.subject(person).entity].country

default _home(_) := "unknown"

_decided[person] := decided if {
	some person in _people
	person != _request.requester
	decided := approval.judge(_case, approval.approver_facts({"approver": person, "approver_location": _home(person)}))
}

# The request as datavisa.approval judges it, the same for every person asked about.
_case := {
	"request": _request,
	"approvals": object.get(input, "approvals", []),
	"idp_groups": object.get(input, "idp_groups", {}),
}

# Refused for no reason, or only for a sign-in too old or too weak, which signing in again mends.
_eligible contains person if {
	some person, decided in _decided
	every reason in decided.reasons {
		reason.code == "step_up_required"
	}
}

_step_up_reasons contains reason if {
	some person in _eligible
	some reason in _decided[person].reasons
	reason.code == "step_up_required"
}

_settings := settings(_request.resource)

_chat_off contains {"code": "chat_approval_off", "message": msg} if {
	_settings.chat_approval == false
	msg := sprintf("approvals of %s data are given in the console, not in chat", [data.datavisa.resources[_request.resource].tier])
}

_console_reasons := _step_up_reasons | _chat_off

_escalation_step := _settings.escalation[input.level]

# The people an escalation step names: members of its approver groups for the resource,
# and holders of its roles (the on-call rota is the `oncall` role); never the requester.
_escalated contains person if {
	some person in _people
	person != _request.requester
	some group in object.get(_escalation_step.notify, "groups", [])
	quorum.member(person, group, data.datavisa.resources[_request.resource])
}

_escalated contains person if {
	some person in _people
	person != _request.requester
	some role in object.get(_escalation_step.notify, "roles", [])
	role in directory.subject(person).roles
}

default _notify := set()

_notify := _eligible if input.kind in {"requested", "reminder"}

_notify := _escalated if input.kind == "escalation"

_notify := {_request.requester} if input.kind == "expiring"

# METADATA
# title: Recipients
# description: Who may approve, who is told, and whether chat may approve (see the package).
recipients := {
	"approvers": sort(_eligible),
	"notify": sort(_notify),
	"chat_approve": count(_console_reasons) == 0,
	"console_reasons": _console_reasons,
}

# METADATA
# title: Due
# description: The reminders, escalations and expiry warnings due now (see the package).
due contains {"key": sprintf("reminder:%s", [item.id]), "kind": "reminder", "request_id": item.id, "level": 0} if {
	some item in input.requests
	item.state == "pending"
	_now_s >= item.pending_until_s - settings(item.resource).remind_before_lapse_s
	_now_s < item.pending_until_s
}

due contains {"key": sprintf("escalation:%s:%d", [item.id, level]), "kind": "escalation", "request_id": item.id, "level": level} if {
	some item in input.requests
	item.state == "pending"
	some level, step in object.get(settings(item.resource), "escalation", [])
	_now_s >= item.created_at_s + step.after_s
	_now_s < item.pending_until_s
}

due contains {"key": sprintf("expiring:%s", [item.id]), "kind": "expiring", "request_id": item.id, "level": 0} if {
	some item in input.requests
	item.state == "active"
	_now_s >= item.expires_at_s - settings(item.resource).warn_before_expiry_s
	_now_s < item.expires_at_s
}

_now_s := time.now_ns() / _s
