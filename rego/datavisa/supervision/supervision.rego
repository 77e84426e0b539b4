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
#   evidence, kind, supervised}, origin (optional, datavisa.origin), authentication
#   (optional, as for approve: datavisa.step_up), renewal (true when a heartbeat of a
#   lease still alive is decided again; absent for a join)}
#   Output: decision = {allow, reasons: [{code, message}], grant_id (the grant's, so
#   `datavisa log --grant` lists its supervisors' decisions), groups (the supervisor groups
#   the person is in), lease_s, heartbeat_s, grace_s, redecide_every}
#
#   Nobody supervises their own grant; only members of a supervisor group (in its scope
#   for the resource, as for approvers: datavisa.quorum) may; where the tier wants
#   approvers employed and located in the data's jurisdiction, supervisors must be too
#   (the same rule: datavisa.approval.personnel_denials). Supervisors are held to what
#   approvers are: the tier's location sources judge where they say they are (its
#   `location_sources.supervise`, else what it asks of approvers, `approve`), and a join
#   asks the tier's step-up for `supervise` (datavisa.step_up), as approve asks its own.
#   A heartbeat renews a live lease without a decision (the engine's cheap renewal) until
#   `redecide_every` heartbeats have passed or the policy revision changed; then it is
#   decided again, as a renewal: everything but the step-up is judged again (a sign-in
#   ages while the supervisor watches; the join was the step that wanted it fresh).
package datavisa.supervision

import data.datavisa.approval
import data.datavisa.directory
import data.datavisa.origin
import data.datavisa.quorum
import data.datavisa.residency
import data.datavisa.step_up

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
# title: Re-decide every
# description: |
#   How many heartbeats renew a supervisor's lease without a new decision before one is
#   asked again (the engine asks sooner when the policy revision changed or the
#   supervisor's location did); 1 decides every heartbeat.
default redecide_every := 12

redecide_every := _settings.redecide_every

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
	some reason in origin.denials(_tier, _location_step)
}

# Where the tier says nothing of supervisors' locations, they are judged as its approvers'.
default _location_step := "approve"

_location_step := "supervise" if _tier.location_sources.supervise

deny contains reason if {
	_resource
	not input.renewal
	some reason in step_up.denials(_tier, "supervise", object.get(input, "authentication", null))
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
	"redecide_every": redecide_every,
}
