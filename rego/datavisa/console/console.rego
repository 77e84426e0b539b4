# METADATA
# title: Console
# description: |
#   What the console shows requesters and approvers, as policy says it: the catalogue of
#   resources with what a request for each will need, and the queue of pending requests
#   this approver may approve, each with its approval decision (datavisa.approval, asked
#   per request in one evaluation), the residency explanation and who else must approve.
#   The console's JavaScript shows these and sends the /v1 calls; it decides nothing.
#
#   catalogue: no input. {resource id: {description, region, jurisdiction,
#   jurisdiction_name, tier, tags, team, actions, max_duration_s, duration_presets_s,
#   justification_required, approvals, cross_border_approvals, evidence, safeguards,
#   pending_lifetime_s, max_schedule_ahead_s, breakglass}}
#
#   queue: input {approver, approver_location, authentication (optional), idp_groups
#   (optional: the approver's, by approver), origin (optional), pending: [{request (as
#   datavisa.approval takes it), approvals: [approver ids], idp_groups (optional: the
#   earlier approvers', by approver)}] oldest first, page (optional): {start (the
#   position in pending the page starts from; 0), limit (how many it shows at most;
#   all)}}. Output: {total (how many of pending the approver may act on), more (whether
#   more follow this page), entries: [{id, allow, reasons, groups, step_up, quorum_met,
#   still_needed: [{group, count, approved_by}], residency: {jurisdiction,
#   jurisdiction_name, location, cross_border, basis, scope, explanation}}]} for the
#   requests the approver may approve now, or once signed in again (step_up: true, the
#   step-up denials as reasons). Each is judged by datavisa.approval's own functions,
#   never with `with input as` per request: all of them for the total, in full only
#   those the page shows.
package datavisa.console

import data.datavisa.approval
import data.datavisa.directory
import data.datavisa.quorum
import data.datavisa.residency
import data.datavisa.schedule
import data.datavisa.us_bulk_data

# Durations the request form offers, each at most the tier's maximum (which is offered too).
_presets_s := [900, 1800, 3600, 7200, 14400, 28800, 86400]

# METADATA
# title: Catalogue
# description: Every resource, with its jurisdiction, tier and what a request for it needs.
catalogue[id] := _entry(resource, data.datavisa.tiers[resource.tier]) if {
	some id, resource in data.datavisa.resources
}

_entry(resource, tier) := {
	"description": object.get(resource, "description", ""),
	"region": resource.region,
	"jurisdiction": residency.jurisdiction(resource),
	"jurisdiction_name": data.datavisa.jurisdictions[residency.jurisdiction(resource)].name,
	"tier": resource.tier,
	"tags": sort(resource.tags),
	"team": object.get(resource, "team", ""),
	"actions": resource.actions,
	"max_duration_s": tier.max_duration_s,
	"duration_presets_s": presets(tier.max_duration_s),
	"justification_required": tier.justification_required,
	"approvals": tier.approvals,
	"cross_border_approvals": _cross_border_approvals(resource, tier),
	"evidence": sort(residency.known_evidence(_ctx) | us_bulk_data.evidence_kinds(resource)),
	"safeguards": sort({name | some name, _ in object.get(data.datavisa.jurisdictions[_ctx.jurisdiction], "safeguards", {})}),
	"pending_lifetime_s": tier.pending_lifetime_s,
	"max_schedule_ahead_s": schedule.max_ahead_s(tier),
	"breakglass": tier.breakglass,
} if {
	# The resource's own context, from no place: what its jurisdiction and tags bring in.
	_ctx := {
		"jurisdiction": residency.jurisdiction(resource),
		"tags": {tag | some tag in resource.tags},
		"place": {"country": "", "subdivision": ""},
		"entity": "",
		"person": true,
		"evidence": set(),
	}
}

# What access from abroad adds: the tier's cross-border approvals, for personal data.
default _cross_border_approvals(_, _) := []

_cross_border_approvals(resource, tier) := tier.cross_border_approvals if "pd" in resource.tags

# METADATA
# title: Duration presets
# description: The form's durations up to and including the maximum, shortest first.
presets(max_s) := sort({s | some s in _presets_s; s < max_s} | {max_s})

# METADATA
# title: Queue
# description: |
#   One page of the pending requests this approver may approve, each with its decision,
#   and how many there are in all: {total, more, entries}.
queue := {
	"total": count(_offered),
	"more": count(_later) > _limit,
	"entries": [_queued(item, approval.judge(item, _approver)) |
		some i in array.slice(_later, 0, _limit)
		item := input.pending[i]
	],
}

# What the approval judges of the approver, once for the whole queue.
_approver := approval.approver_facts(input)

# The positions in input.pending of the requests the approver may act on, oldest first:
# each asked only what refuses it (datavisa.approval's case_denials), no quorum, no residency
# explanation; those the page shows are judged in full.
_offered := [i |
	some i, item in input.pending
	item.request.resource in _candidates
	_offered_for(approval.case_denials(item, _approver, _standing[item.request.resource][approval.kind(item.request)]))
]

# What refuses the approver on each candidate resource for each kind of request pending
# (datavisa.approval's standing), asked once each, not once per request.
_standing[resource_id] := {kind: approval.standing(resource_id, kind, _approver) | some kind in _kinds} if {
	some resource_id in _candidates
}

_kinds contains approval.kind(item.request) if some item in input.pending

_later := [i | some i in _offered; i >= _start]

default _start := 0

_start := input.page.start

default _limit := 0

_limit := input.page.limit

_limit := count(input.pending) if not input.page.limit

# The resources this approver belongs to some approver group of, asked once for the
# whole queue. A request for any other is refused approver_not_eligible by
# datavisa.approval (no required group of the approver's), so it is not asked about.
_candidates contains id if {
	some id, resource in data.datavisa.resources
	some group_id, _ in data.datavisa.groups
	quorum.holds(_approver.record, group_id, resource)
}

# Offered: nothing refuses the approval, or only a sign-in too old or too weak, which
# signing in again mends.
_offered_for(reasons) if {
	every reason in reasons {
		reason.code == "step_up_required"
	}
}

_queued(item, decided) := {
	"id": item.request.id,
	"allow": decided.allow,
	"reasons": decided.reasons,
	"step_up": count(decided.reasons) > 0,
	"groups": decided.groups,
	"quorum_met": decided.quorum_met,
	"still_needed": _still_needed(item, decided.approvals_required),
	"residency": _residency(item.request),
}

# Each required group with the approvers already recorded who belong to it and how many
# places it still has open (an approver fills one place only, so one who belongs to two
# groups is listed under both).
_still_needed(item, requirements) := [{"group": r.group, "count": r.count - count(by), "approved_by": by} |
	some r in requirements
	resource := data.datavisa.resources[item.request.resource]
	given := object.get(item, "idp_groups", {})
	by := sort({a | some a in item.approvals; quorum.holds(directory.given_entry(a, given), r.group, resource)})
	count(by) < r.count
]

_residency(request) := {
	"jurisdiction": ctx.jurisdiction,
	"jurisdiction_name": data.datavisa.jurisdictions[ctx.jurisdiction].name,
	"location": request.location,
	"cross_border": _cross_border(ctx),
	"basis": basis,
	"scope": _scope(ctx, basis),
	"explanation": explain(ctx, request.location, basis),
} if {
	resource := data.datavisa.resources[request.resource]
	ctx := residency.context(resource, request.requester, request.location, object.get(request, "evidence", []))
	basis := residency.basis(ctx)
}

default _cross_border(_) := false

_cross_border(ctx) if residency.cross_border(ctx)

_scope(ctx, "adequacy") := residency.adequacy_scope(ctx)

default _scope(_, _) := null

# METADATA
# title: Residency explanation
# description: In words, on which basis the data would be reached from the location.
explain(ctx, location, basis) := sprintf("data held in %s (%s), reached from %s: %s", [
	ctx.jurisdiction,
	data.datavisa.jurisdictions[ctx.jurisdiction].name,
	location,
	_basis_words(ctx, basis),
])

_basis_words(_, "in_jurisdiction") := "inside the jurisdiction, no transfer"

_basis_words(_, "same_entity_travel") := "an employee of an entity established there, travelling: no transfer, with the approvals access from abroad needs"

_basis_words(ctx, "adequacy") := sprintf("a transfer on an adequacy finding%s", [_scoped(residency.adequacy_scope(ctx))])

_basis_words(_, "not_restricted") := "a transfer to a destination the jurisdiction does not restrict"

_basis_words(_, "none") := "a transfer with no lawful basis"

_basis_words(_, basis) := sprintf("a transfer under the safeguard %s (evidence on file)", [basis]) if {
	not basis in {"in_jurisdiction", "same_entity_travel", "adequacy", "not_restricted", "none"}
}

_scoped(null) := ""

_scoped(scope) := sprintf(" (scope: %s)", [scope]) if scope != null
