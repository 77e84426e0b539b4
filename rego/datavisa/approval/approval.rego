# METADATA
# title: Approval decision
# description: |
#   May this approver approve this request now? Nobody approves their own request or
#   approves twice, and only members of a group the request needs count. For tiers with
#   approver residency (restricted data), the approver must be employed by an entity
#   established in the data's jurisdiction and be located there now.
#
#   Input: {approver, approver_location (ISO 3166 alpha-2 or "unknown"; absent =
#   "unknown"), request: {id, requester, resource, actions, duration_s, location,
#   evidence (optional), kind: access | extension | transfer (absent = access),
#   target_region, importer, individuals and sensitive_individuals (a transfer's)},
#   export_counts (a transfer's: the store's yearly counts, datavisa.pipl_route), approvals:
#   [approver ids already recorded], authentication (what the identity provider said of
#   the approver's sign-in, datavisa.step_up; absent for a caller no IdP signed in),
#   origin (where approver_location comes from: datavisa.origin; optional)}
#   Output: decision = {allow, reasons: [{code, message}], groups, quorum_met,
#   approvals_required, exports (a transfer's: what it adds to its exporter's yearly
#   counts when this approval meets the quorum, datavisa.pipl_route), supervision (an
#   access request's: whether its grant needs a supervisor, decided again now:
#   datavisa.supervision.requirement; {} for other kinds)}
#
#   An access request needs the tier's approvals, plus its cross-border approvals when
#   personal data would cross a border; an extension needs the tier's extension approvals;
#   a transfer what datavisa.transfer says its copy needs. A transfer on China's export
#   route is judged again on the counts of now (PIPL; Provisions on Promoting and
#   Regulating Cross-Border Data Flows, 2024; from 2026-01-01): approval is when it may
#   happen, so a copy others pushed into a route whose evidence it lacks is refused.
package datavisa.approval

import data.datavisa.directory
import data.datavisa.origin
import data.datavisa.quorum
import data.datavisa.residency
import data.datavisa.step_up
import data.datavisa.supervision
import data.datavisa.transfer

_request := input.request

_resource := data.datavisa.resources[_request.resource]

_tier := data.datavisa.tiers[_resource.tier]

_kind := object.get(_request, "kind", "access")

_approver_location := object.get(input, "approver_location", "unknown")

_ctx := residency.context(_resource, _request.requester, _request.location, object.get(_request, "evidence", []))

default _requirements := []

_requirements := array.concat(_tier.approvals, _cross_border_approvals) if _kind == "access"

_requirements := _tier.extension.approvals if _kind == "extension"

_requirements := needed if {
	_kind == "transfer"
	needed := transfer.approvals_required with input as _copy
}

# The copy a transfer asks for, as datavisa.transfer reads it, with the counts of now.
_copy := {k: v |
	some k, v in {
		"resource": _request.resource,
		"target_region": _request.target_region,
		"importer": object.get(_request, "importer", ""),
		"evidence": object.get(_request, "evidence", []),
		"individuals": object.get(_request, "individuals", null),
		"sensitive_individuals": object.get(_request, "sensitive_individuals", null),
		"export_counts": object.get(input, "export_counts", []),
	}
	v != null
}

default _exports := set()

_exports := exports if {
	_kind == "transfer"
	exports := transfer.exports with input as _copy
}

default _cross_border_approvals := []

_cross_border_approvals := _tier.cross_border_approvals if {
	"pd" in _resource.tags
	residency.from_abroad(_ctx)
}

_approved := {a | some a in input.approvals}

# METADATA
# title: Allow
# description: True when no rule denies the approval.
default allow := false

allow if count(deny) == 0

# METADATA
# title: Denial reasons
# description: Each reason this approval is refused, as {code, message}.
deny contains reason if {
	_resource
	some reason in origin.denials(_tier, "approve")
}

deny contains reason if {
	some reason in step_up.denials(_tier, _step_up_step, object.get(input, "authentication", null))
}

# A transfer's approval asks what the tier's step_up says of approve_transfer, and what
# it says of approve when it names no such step (never less than an access approval).
default _step_up_step := "approve"

_step_up_step := "approve_transfer" if {
	_kind == "transfer"
	_tier.step_up.approve_transfer
}

deny contains reason if {
	_kind == "transfer"
	some reason in transfer.route_denials with input as _copy
}

deny contains {"code": "self_approval", "message": "nobody may approve their own request"} if {
	input.approver == _request.requester
}

deny contains {"code": "already_approved", "message": msg} if {
	input.approver in _approved
	msg := sprintf("%s has already approved this request", [input.approver])
}

deny contains {"code": "unknown_resource", "message": msg} if {
	not _resource
	msg := sprintf("no resource named %q", [_request.resource])
}

deny contains {"code": "unknown_kind", "message": msg} if {
	not _kind in {"access", "extension", "transfer"}
	msg := sprintf("%q is not a kind of request (access, extension or transfer)", [_kind])
}

deny contains {"code": "unknown_approver", "message": msg} if {
	not directory.subject(input.approver)
	msg := sprintf("%q is not in the directory", [input.approver])
}

deny contains {"code": "approver_not_eligible", "message": msg} if {
	directory.subject(input.approver)
	_resource
	count(groups) == 0
	wanted := concat(", ", {r.group | some r in _requirements})
	msg := sprintf("%s is in no approver group this request needs (%s)", [input.approver, wanted])
}

deny contains reason if {
	_resource
	some reason in personnel_denials(_tier, _resource.tier, _ctx, input.approver, _approver_location, "approver", "approved")
}

# METADATA
# title: Personnel residency
# description: |
#   Where the tier wants it (approver_residency), the person who acts on a grant of data
#   held in a jurisdiction (an approver; a supervisor, datavisa.supervision) must be
#   employed by an entity established there and be located there now: the reasons they
#   are not, coded <role>_outside_jurisdiction.
personnel_denials(tier, tier_name, ctx, person_id, location, role, verb) := _employed_denials(tier_name, ctx, person_id, role, verb) | _located_denials(tier_name, ctx, location, role, verb) if {
	tier.approver_residency
} else := set()

_employed_denials(tier_name, ctx, person_id, role, verb) := {{"code": sprintf("%s_outside_jurisdiction", [role]), "message": msg} |
	person := directory.subject(person_id)
	not residency.employed_in(ctx.jurisdiction, person)
	msg := sprintf("%s data held in %s is %s only by people employed there; %s is employed by %s", [tier_name, ctx.jurisdiction, verb, person_id, person.entity])
}

_located_denials(tier_name, ctx, location, role, verb) := {{"code": sprintf("%s_outside_jurisdiction", [role]), "message": msg} |
	not residency.inside(ctx.jurisdiction, residency.place(location))
	msg := sprintf("%s data held in %s is %s only from inside it, not from %s", [tier_name, ctx.jurisdiction, verb, location])
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
	"exports": _exports,
	"supervision": _supervision,
}

# Whether the grant needs a supervisor is decided again at approval, on the policy of now
# (the request's decision said so at filing): the engine keeps this answer when the
# approval activates an access grant. Extensions and transfers keep their own.
default _supervision := {}

_supervision := supervision.requirement(_request.resource, _request.actions, false) if {
	_kind == "access"
	_resource
}
