# METADATA
# title: Request decision
# description: |
#   May this subject ask for these actions on this resource, for this long, from this
#   location, with this justification and evidence? Answers the verdict, the reasons for a
#   denial, and the numbers policy sets for the request.
#
#   Input: {subject, resource, actions: [string], duration_s, location (ISO 3166 alpha-2
#   or "unknown"), reason, evidence: [string] (optional: scc, bcr, pia, cac,
#   risk_assessment ...), start_in_s (optional: a scheduled start, seconds from now),
#   filing_deadlines: [{filing, exporter, first_transfer_id, first_transfer_ns, due_ns}]
#   (optional: the store's deadlines not filed, datavisa.filing),
#   origin (where the location comes from: datavisa.origin; optional)}
#   Output: decision = {allow, reasons: [{code, message}], max_duration_s,
#   approvals_required: [{group, count}], quorum_met, pending_lifetime_s,
#   activation_deadline_s, countries (the grant will permit), transfer: {cross_border,
#   basis (in_jurisdiction, same_entity_travel, adequacy, scc, bcr, pia, cac,
#   not_restricted or none), scope (of the adequacy finding, or null)}, filings: the
#   filing deadlines the grant starts when it becomes active ([{filing, exporter,
#   within_s}], datavisa.filing), supervision: whether the grant needs a supervisor
#   present, and its lease, heartbeat and grace (datavisa.supervision.requirement)}
#
#   Same-entity travel is no transfer (cross_border is false); a tier accepts it where its
#   `bases` say so (the shipped tiers wherever they accept a transfer basis), with the
#   approvals access from abroad needs. The grant permits the requested location only.
package datavisa.request

import data.datavisa.directory
import data.datavisa.filing
import data.datavisa.origin
import data.datavisa.quorum
import data.datavisa.residency
import data.datavisa.schedule
import data.datavisa.supervision
import data.datavisa.us_bulk_data

_resource := data.datavisa.resources[input.resource]

_tier := data.datavisa.tiers[_resource.tier]

_ctx := residency.context(_resource, input.subject, input.location, object.get(input, "evidence", []))

# METADATA
# title: Allow
# description: True when no rule denies the request.
default allow := false

allow if count(deny) == 0

# METADATA
# title: Denial reasons
# description: Each reason the request may not be filed, as {code, message}.
deny contains {"code": "unknown_subject", "message": msg} if {
	not directory.subject(input.subject)
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

deny contains reason if {
	_resource
	some reason in origin.denials(_tier, "request")
}

deny contains reason if {
	some reason in schedule.denials(object.get(input, "start_in_s", null), _tier_or_empty)
}

deny contains {"code": "justification_required", "message": msg} if {
	_tier.justification_required
	trim_space(object.get(input, "reason", "")) == ""
	msg := sprintf("%s data needs a reason for access", [_resource.tier])
}

deny contains {"code": "location_not_permitted", "message": msg} if {
	_tier.residency_checked
	not transfer_basis in _tier.bases
	msg := residency.unlawful_message(_ctx, _resource.tier, transfer_basis, input.location)
}

deny contains reason if {
	some reason in residency.sectoral_denials(_resource, input.subject, input.location)
}

deny contains reason if {
	some reason in us_bulk_data.access_denials(_resource, input.subject, {e | some e in object.get(input, "evidence", [])})
}

deny contains reason if {
	some reason in filing.denials(_resource, _ctx, object.get(input, "filing_deadlines", []))
}

deny contains {"code": "unknown_evidence", "message": msg} if {
	some kind in object.get(input, "evidence", [])
	not kind in _known_evidence
	msg := sprintf("%q is no evidence the law of %s knows (%s)", [kind, _ctx.jurisdiction, residency.known_or_none(_known_evidence)])
}

_known_evidence := residency.known_evidence(_ctx) | us_bulk_data.evidence_kinds(_resource)

# METADATA
# title: Maximum duration
# description: The longest grant the resource's tier allows, in seconds.
default max_duration_s := 0

max_duration_s := _tier.max_duration_s

# METADATA
# title: Approvals required
# description: |
#   The approver groups and counts the tier requires; when personal data would cross a
#   border, also the tier's cross-border approvals (the data protection officer).
default approvals_required := []

approvals_required := array.concat(_tier.approvals, _cross_border_approvals)

default _cross_border_approvals := []

_cross_border_approvals := _tier.cross_border_approvals if {
	"pd" in _resource.tags
	residency.from_abroad(_ctx)
}

# METADATA
# title: Quorum met without approvers
# description: True when the tier needs no approval, so the grant activates at once.
quorum_met := allow if quorum.met(approvals_required, set(), _resource)

default quorum_met := false

# METADATA
# title: Transfer basis
# description: The basis on which the data may be reached from the location, or none.
default transfer_basis := "none"

transfer_basis := residency.basis(_ctx)

# METADATA
# title: Transfer
# description: Whether the access is a cross-border transfer, and on which basis and scope.
transfer := {
	"cross_border": _cross_border,
	"basis": transfer_basis,
	"scope": _scope,
}

default _cross_border := true

_cross_border := false if {
	_ctx
	not residency.cross_border(_ctx)
}

default _scope := null

_scope := residency.adequacy_scope(_ctx) if transfer_basis == "adequacy"

default _tier_or_empty := {}

_tier_or_empty := _tier

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
	"transfer": transfer,
	"filings": filings,
	"supervision": supervision.requirement(input.resource, object.get(input, "actions", []), false),
}

# METADATA
# title: Filings
# description: The filing deadlines the grant starts when it becomes active (datavisa.filing).
default filings := set()

filings := filing.started(_resource, _ctx)
