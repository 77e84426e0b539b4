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
#
#   The rules are functions of what they judge (judge(case, approver): the case is the
#   request, the approvals so far and the earlier approvers' IdP groups; the approver's
#   facts are approver_facts of the input), so the console's queue judges a thousand
#   pending requests in one evaluation without `with input as` per request (which would
#   set aside everything OPA computed once for the approver). Where the approver is
#   (input.origin, datavisa.origin) is read from the input, as every decision reads it.
package datavisa.approval

import data.datavisa.directory
import data.datavisa.origin
import data.datavisa.quorum
import data.datavisa.residency
import data.datavisa.step_up
import data.datavisa.supervision
import data.datavisa.transfer

# METADATA
# title: Decision
# description: The whole answer for the engine.
decision := object.union(judge(input, approver_facts(input)), {"supervision": _supervision})

# Whether the grant needs a supervisor is decided again at approval, on the policy of now
# (the request's decision said so at filing): the engine keeps this answer when the
# approval activates an access grant. Extensions and transfers keep their own.
default _supervision := {}

_supervision := supervision.requirement(input.request.resource, input.request.actions, false) if {
	object.get(input.request, "kind", "access") == "access"
	data.datavisa.resources[input.request.resource]
}

# METADATA
# title: Allow
# description: True when no rule denies the approval.
default allow := false

allow := decision.allow

# METADATA
# title: Denial reasons
# description: Each reason this approval is refused, as {code, message}.
deny := decision.reasons

# METADATA
# title: Approver groups
# description: The required groups the approver belongs to for this resource.
groups := decision.groups

# METADATA
# title: Quorum met
# description: True when this approval, with those before it, completes the quorum.
default quorum_met := false

quorum_met := decision.quorum_met

# METADATA
# title: Approver facts
# description: |
#   What the approval judges of the approver, whatever the request: {id, record (their
#   directory entry, {} for someone it does not know), location, authentication}, from an
#   input of the decision's shape. Worked out once for a whole queue.
approver_facts(asked) := {
	"id": id,
	"record": directory.entry(id),
	"location": object.get(asked, "approver_location", "unknown"),
	"authentication": object.get(asked, "authentication", null),
} if {
	id := object.get(asked, "approver", null)
}

# METADATA
# title: Judge
# description: |
#   The decision for `approver` (approver_facts) on `case`: {request, approvals (approver
#   ids already recorded), idp_groups (optional: the earlier approvers', by approver),
#   export_counts (a transfer's)}, the decision input's own fields.
judge(case, approver) := {
	"allow": count(reasons) == 0,
	"reasons": reasons,
	"groups": found,
	"quorum_met": _quorum_met(reasons, needed, case, approver),
	"approvals_required": needed,
	"exports": _exports(request, object.get(case, "export_counts", [])),
} if {
	request := object.get(case, "request", {})
	needed := requirements(case)
	found := approver_groups(approver, needed, request)
	reasons := denials(case, approver)
}

# METADATA
# title: Denials
# description: |
#   judge(case, approver).reasons alone: what a queue asks of every pending request to
#   know whether it is the approver's to act on, without the quorum or the exports.
denials(case, approver) := case_denials(case, approver, standing(object.get(request, "resource", null), kind(request), approver)) if {
	request := object.get(case, "request", {})
}

# METADATA
# title: Standing
# description: |
#   What the approval says of `approver` on data of a resource for a kind of request,
#   whatever the request: {reasons: what refuses them (where they are and how that is
#   known, datavisa.origin; their sign-in, datavisa.step_up; for tiers with approver
#   residency, their employer and location), groups: the tier's own approver groups
#   for the kind that they belong to}. The same for every request of a queue on one
#   resource and kind, so a queue asks it once for each.
standing(resource_id, request_kind, approver) := {
	"reasons": ((origin.denials(tier, "approve") | step_up.denials(tier, _step(request_kind, tier), approver.authentication)) | personnel_denials(tier, resource.tier, {"jurisdiction": residency.jurisdiction(resource)}, approver.id, approver.location, "approver", "approved")),
	"groups": {r.group |
		some r in _base_requirements(tier, request_kind)
		quorum.holds(approver.record, r.group, resource)
	},
} if {
	resource := data.datavisa.resources[resource_id]
	tier := data.datavisa.tiers[resource.tier]
} else := {
	"reasons": {{"code": "unknown_resource", "message": sprintf("no resource named %q", [resource_id])}},
	"groups": set(),
}

# The groups every request of the kind on data of the tier needs, whatever else it
# needs (a cross-border access's, a transfer's own).
default _base_requirements(_, _) := []

_base_requirements(tier, "access") := tier.approvals

_base_requirements(tier, "extension") := tier.extension.approvals

# A transfer's approval asks what the tier's step_up says of approve_transfer, and what
# it says of approve when it names no such step (never less than an access approval).
_step(request_kind, tier) := "approve_transfer" if {
	request_kind == "transfer"
	tier.step_up.approve_transfer
} else := "approve"

# METADATA
# title: Denials of a case
# description: |
#   denials, given the request's standing: the standing reasons, and what refuses this
#   request itself (its own requester, a second approval, a kind or a transfer route
#   that does not do, an approver in no group it needs). The common case, an access or
#   extension request of someone else's that the approver has not approved yet and
#   belongs to one of the tier's groups for, is asked first: nothing of its own refuses
#   it (approval_test checks both ways agree).
case_denials(case, approver, standing) := standing.reasons if {
	kind(case.request) in {"access", "extension"}
	approver.id != case.request.requester
	not approver.id in object.get(case, "approvals", [])
	count(standing.groups) > 0
} else := _case_denials(case, object.get(case, "request", {}), approver, standing)

_case_denials(case, request, approver, standing) := {reason |
	some reasons in [
		standing.reasons,
		_transfer_denials(request, object.get(case, "export_counts", [])),
		_self_denials(request, approver),
		_repeat_denials(case, approver),
		_kind_denials(request),
		_approver_denials(case, request, approver, standing),
	]
	some reason in reasons
}

# METADATA
# title: Kind of request
# description: access, extension or transfer (absent = access).
kind(request) := object.get(request, "kind", "access")

# METADATA
# title: Requirements
# description: |
#   The groups and counts of approvers `case`'s request needs: an access request the
#   tier's approvals, plus its cross-border approvals when personal data would cross a
#   border; an extension the tier's extension approvals; a transfer what datavisa.transfer
#   says its copy needs. Empty for an unknown resource or kind.
requirements(case) := _requirements(request, kind(request), object.get(case, "export_counts", [])) if {
	request := object.get(case, "request", {})
}

default _requirements(_, _, _) := []

_requirements(request, "access", _) := array.concat(tier.approvals, _cross_border_approvals(request, resource, tier)) if {
	resource := data.datavisa.resources[request.resource]
	tier := data.datavisa.tiers[resource.tier]
}

_requirements(request, "extension", _) := data.datavisa.tiers[data.datavisa.resources[request.resource].tier].extension.approvals

_requirements(request, "transfer", counts) := needed if {
	needed := transfer.approvals_required with input as _copy(request, counts)
}

_cross_border_approvals(request, resource, tier) := tier.cross_border_approvals if {
	"pd" in resource.tags
	residency.from_abroad(_ctx(request, resource))
} else := []

_ctx(request, resource) := residency.context(resource, request.requester, request.location, object.get(request, "evidence", []))

# The copy a transfer asks for, as datavisa.transfer reads it, with the counts of now.
_copy(request, counts) := {k: v |
	some k, v in {
		"resource": request.resource,
		"target_region": request.target_region,
		"importer": object.get(request, "importer", ""),
		"evidence": object.get(request, "evidence", []),
		"individuals": object.get(request, "individuals", null),
		"sensitive_individuals": object.get(request, "sensitive_individuals", null),
		"export_counts": counts,
	}
	v != null
}

_exports(request, counts) := exports if {
	kind(request) == "transfer"
	exports := transfer.exports with input as _copy(request, counts)
} else := set()

# METADATA
# title: The approver's groups
# description: |
#   The required groups `approver` (approver_facts) belongs to for the request's resource.
approver_groups(approver, needed, request) := {r.group |
	some r in needed
	quorum.holds(approver.record, r.group, resource)
} if {
	resource := data.datavisa.resources[request.resource]
} else := set()

_quorum_met(reasons, needed, case, approver) if {
	count(reasons) == 0
	given := object.get(case, "idp_groups", {})
	earlier := {a: directory.given_entry(a, given) | some a in object.get(case, "approvals", [])}
	quorum.met_by(needed, object.union(earlier, {approver.id: approver.record}), data.datavisa.resources[case.request.resource])
} else := false

_transfer_denials(request, counts) := reasons if {
	kind(request) == "transfer"
	reasons := transfer.route_denials with input as _copy(request, counts)
} else := set()

_self_denials(request, approver) := {{"code": "self_approval", "message": "nobody may approve their own request"}} if {
	approver.id == request.requester
} else := set()

_repeat_denials(case, approver) := {{"code": "already_approved", "message": msg}} if {
	approver.id in object.get(case, "approvals", [])
	msg := sprintf("%s has already approved this request", [approver.id])
} else := set()

_kind_denials(request) := set() if {
	kind(request) in {"access", "extension", "transfer"}
} else := {{"code": "unknown_kind", "message": sprintf("%q is not a kind of request (access, extension or transfer)", [kind(request)])}}

_approver_denials(case, request, approver, standing) := {{"code": "unknown_approver", "message": msg}} if {
	approver.record == {}
	msg := sprintf("%q is not in the directory", [approver.id])
} else := {{"code": "approver_not_eligible", "message": msg}} if {
	data.datavisa.resources[request.resource]
	count(standing.groups) == 0
	count(approver_groups(approver, requirements(case), request)) == 0
	wanted := concat(", ", {r.group | some r in requirements(case)})
	msg := sprintf("%s is in no approver group this request needs (%s)", [approver.id, wanted])
} else := set()

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
