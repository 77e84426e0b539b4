# METADATA
# title: Supervision decision
# description: |
#   Supervised grants: which requests need a supervisor present for their grant to work
#   (`requirement`, which the request and break-glass decisions answer with), and whether
#   a person may supervise a grant now (`decision`). A supervised grant works only while
#   an eligible supervisor's lease is alive; the engine only compares the lease's expiry
#   with its clock, the access decision denies while none is (datavisa.access), and the
#   numbers (lease, heartbeat, grace) are policy's (data.datavisa.supervised).
#
#   Input of `decision`: {supervisor, supervisor_location (ISO 3166 alpha-2 or
#   "unknown"; absent = "unknown"), grant: {id, requester, resource, actions, location,
#   evidence, kind, supervised}, origin (optional, datavisa.origin)}
#   Output: decision = {allow, reasons: [{code, message}], grant_id (the grant's, so
#   `datavisa log --grant` lists its supervisors' decisions), groups (the supervisor groups
#   the person is in), lease_s, heartbeat_s, grace_s}
#
#   Nobody supervises their own grant; only members of a supervisor group (in its scope
#   for the resource, as for approvers: datavisa.quorum) may; where the tier wants
#   approvers employed and located in the data's jurisdiction, supervisors must be too
#   (the same rule: datavisa.approval.personnel_denials).
package datavisa.supervision

import data.datavisa.approval
import data.datavisa.directory
import data.datavisa.quorum
import data.datavisa.residency

default _settings := {}

_settings := data.datavisa.supervised

_required := object.get(_settings, "required", {})

# METADATA
# title: Lease
# description: How long a join or a heartbeat keeps a supervisor present, in seconds.
default lease_s := 15

lease_s := _settings.lease_s

# METADATA
# title: Heartbeat
# description: How often a supervisor's watch renews its lease, in seconds.
default heartbeat_s := 5

heartbeat_s := _settings.heartbeat_s

# METADATA
# title: Grace
# description: How long a supervised grant's open sessions run on with no supervisor, in seconds.
default grace_s := 30

grace_s := _settings.grace_s

# METADATA
# title: Requirement
# description: |
#   Whether a grant on `resource` for `actions` (break-glass or not) needs a supervisor
#   present, with the numbers a supervised grant keeps: {supervised, lease_s,
#   heartbeat_s, grace_s}. The request and break-glass decisions answer with it, and the
#   grant carries it.
requirement(resource_id, actions, breakglass) := {
	"supervised": _supervised(resource_id, actions, breakglass),
	"lease_s": lease_s,
	"heartbeat_s": heartbeat_s,
	"grace_s": grace_s,
}

default _supervised(_, _, _) := false

_supervised(resource_id, actions, _) if {
	some action in actions
	action in object.get(object.get(_required, "resources", {}), resource_id, [])
}

_supervised(resource_id, actions, _) if {
	tier := data.datavisa.resources[resource_id].tier
	some action in actions
	action in object.get(object.get(_required, "tiers", {}), tier, [])
}

_supervised(resource_id, _, true) if {
	data.datavisa.resources[resource_id].tier in object.get(_required, "breakglass", [])
}

_grant := input.grant

_resource := data.datavisa.resources[_grant.resource]

_tier := data.datavisa.tiers[_resource.tier]

_location := object.get(input, "supervisor_location", "unknown")

_ctx := residency.context(_resource, _grant.requester, _grant.location, object.get(_grant, "evidence", []))

# METADATA
# title: Allow
# description: True when no rule denies the supervisor.
default allow := false

allow if count(deny) == 0

# METADATA
# title: Denial reasons
# description: Each reason this person may not supervise this grant now, as {code, message}.
deny contains {"code": "not_supervised", "message": msg} if {
	not _grant.supervised
	msg := sprintf("grant %s needs no supervisor: policy did not make it supervised", [_grant.id])
}

deny contains {"code": "self_supervision", "message": "nobody may supervise their own grant"} if {
	input.supervisor == _grant.requester
}

deny contains {"code": "unknown_supervisor", "message": msg} if {
	not directory.subject(input.supervisor)
	msg := sprintf("%q is not in the directory", [input.supervisor])
}

deny contains {"code": "unknown_resource", "message": msg} if {
	not _resource
	msg := sprintf("no resource named %q", [_grant.resource])
}

deny contains {"code": "supervisor_not_eligible", "message": msg} if {
	directory.subject(input.supervisor)
	_resource
	count(groups) == 0
	wanted := concat(", ", sort(object.get(_settings, "supervisors", [])))
	msg := sprintf("%s is in no group that may supervise %s (%s)", [input.supervisor, _grant.resource, wanted])
}

deny contains reason if {
	_resource
	some reason in approval.personnel_denials(_tier, _resource.tier, _ctx, input.supervisor, _location, "supervisor", "supervised")
}

# METADATA
# title: Supervisor groups
# description: The supervisor groups the person is in, for this grant's resource.
groups contains group if {
	some group in object.get(_settings, "supervisors", [])
	quorum.member(input.supervisor, group, _resource)
}

# METADATA
# title: Decision
# description: The whole answer for the engine.
decision := {
	"allow": allow,
	"reasons": deny,
	"grant_id": _grant.id,
	"groups": groups,
	"lease_s": lease_s,
	"heartbeat_s": heartbeat_s,
	"grace_s": grace_s,
}
