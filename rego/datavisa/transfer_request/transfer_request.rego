# METADATA
# title: Transfer request decision
# description: |
#   May this subject ask for a copy job: the data of a resource copied to a target region
#   within a window of duration_s seconds (its clock starts when it is approved), the copy
#   kept for retention_s seconds (absent: for ever)? The copy itself is judged by
#   datavisa.transfer (localised data that may never leave is refused at once, naming the
#   law); on top of it a request needs a known subject, a window within the rules'
#   max_window_s and no longer than the copy may be kept, a reason where the rules want
#   one, and no overdue deletion of this subject's earlier copies of data under the same
#   localisation (until they are reported deleted, such transfers are blocked).
#
#   Input: {subject, resource, target_region, importer (optional), evidence: [string],
#   retention_s (optional), duration_s, reason, overdue_deletions: [{id, resource,
#   target_region, delete_by_ns}] (this subject's copies past their deletion deadline and
#   not reported deleted), start_in_s (optional: a scheduled start, seconds from now),
#   filing_deadlines: [{filing, exporter, first_transfer_id, first_transfer_ns, due_ns}]
#   (optional: the store's deadlines not filed; an overdue one of the data's exporter
#   blocks the transfer, datavisa.filing), individuals and sensitive_individuals
#   (optional: how many individuals' personal information the copy carries, and of those
#   with sensitive personal information), export_counts (optional: the store's yearly
#   counts; China's export route is picked from them plus this copy, datavisa.pipl_route)}
#   Output: decision = {allow, reasons: [{code, message, field?}], approvals_required:
#   [{group, count}], quorum_met, pending_lifetime_s, activation_deadline_s,
#   max_duration_s (the longest window), max_retention_s (the longest the copy may be
#   kept, or null), countries (the target's), transfer: {cross_border, basis, scope},
#   filings (the filing deadlines the transfer starts when its window opens), exports
#   (what the copy adds to its exporter's yearly counts when approved, datavisa.pipl_route)}
package datavisa.transfer_request

import data.datavisa.directory
import data.datavisa.filing
import data.datavisa.quorum
import data.datavisa.residency
import data.datavisa.schedule
import data.datavisa.transfer

_resource := data.datavisa.resources[input.resource]

_tier := data.datavisa.tiers[_resource.tier]

_target := data.datavisa.regions[input.target_region]

default _rules := {}

_rules := data.datavisa.transfer_rules

_retention_s := object.get(input, "retention_s", null)

# The localisations (jurisdiction and tag) whose rules hold a resource's data.
_localisations(resource) := {[jurisdiction, tag] |
	jurisdiction := residency.jurisdiction(resource)
	some tag in resource.tags
	data.datavisa.localisation[jurisdiction][tag]
}

# METADATA
# title: Allow
# description: True when no rule denies the transfer request.
default allow := false

allow if count(deny) == 0

# METADATA
# title: Denial reasons
# description: Each reason the transfer may not be asked, as {code, message, field?}.
deny contains reason if {
	some reason in transfer.deny
}

deny contains {"code": "unknown_subject", "message": msg} if {
	not directory.subject(input.subject)
	msg := sprintf("%q is not in the directory", [input.subject])
}

deny contains {"code": "duration_invalid", "field": "window", "message": "the window must be positive"} if {
	input.duration_s <= 0
}

deny contains {"code": "duration_exceeds_transfer_max", "field": "window", "message": msg} if {
	input.duration_s > max_duration_s
	msg := sprintf("a %ds window asked; a copy job's window may be at most %ds", [input.duration_s, max_duration_s])
}

deny contains {"code": "window_exceeds_retention", "field": "window", "message": msg} if {
	_retention_s != null
	input.duration_s > _retention_s
	msg := sprintf("the window (%ds) outlasts the copy's retention (%ds): a copy made late in it would be kept too long", [input.duration_s, _retention_s])
}

deny contains reason if {
	some reason in schedule.denials(object.get(input, "start_in_s", null), _tier_or_empty)
}

deny contains {"code": "justification_required", "field": "reason", "message": "a transfer needs a reason (a ticket, a change)"} if {
	object.get(_rules, "justification_required", true)
	trim_space(object.get(input, "reason", "")) == ""
}

deny contains {"code": "deletion_overdue", "message": msg} if {
	some overdue in object.get(input, "overdue_deletions", [])
	shared := _localisations(data.datavisa.resources[overdue.resource]) & _localisations(_resource)
	count(shared) > 0
	laws := {data.datavisa.localisation[l[0]][l[1]].law | some l in shared}
	due := time.format([overdue.delete_by_ns, "UTC", "2006-01-02T15:04:05Z07:00"])
	msg := sprintf("%s has not reported the copy of transfer %s (%s in %s) deleted, due %s; transfers of data under %s are blocked until it is", [input.subject, overdue.id, overdue.resource, overdue.target_region, due, concat("; ", sort(laws))])
}

deny contains reason if {
	_resource
	_target
	some reason in filing.denials(_resource, _filing_ctx, object.get(input, "filing_deadlines", []))
}

_filing_ctx := {
	"jurisdiction": residency.jurisdiction(_resource),
	"tags": {tag | some tag in _resource.tags},
	"place": residency.region_place(_target),
	"entity": object.get(input, "importer", ""),
	"person": false,
	"evidence": {e | some e in object.get(input, "evidence", [])},
}

# METADATA
# title: Filings
# description: The filing deadlines the transfer starts when its window opens (datavisa.filing).
default filings := set()

filings := filing.started(_resource, _filing_ctx)

# METADATA
# title: Maximum window
# description: The longest a copy job's window may stay open, in seconds.
max_duration_s := object.get(_rules, "max_window_s", 86400)

# METADATA
# title: Quorum met without approvers
# description: True when the transfer needs no approval, so its window opens at once.
default quorum_met := false

quorum_met := allow if quorum.met(transfer.approvals_required, set(), _resource)

default _tier_or_empty := {}

_tier_or_empty := _tier

default _countries := []

_countries := [_target.country]

# METADATA
# title: Decision
# description: The whole answer for the engine.
decision := {
	"allow": allow,
	"reasons": deny,
	"approvals_required": transfer.approvals_required,
	"quorum_met": quorum_met,
	"pending_lifetime_s": object.get(_tier_or_empty, "pending_lifetime_s", 0),
	"activation_deadline_s": object.get(_tier_or_empty, "activation_deadline_s", 0),
	"max_duration_s": max_duration_s,
	"max_retention_s": transfer.max_retention_s,
	"countries": _countries,
	"transfer": {
		"cross_border": transfer.cross_border,
		"basis": transfer.decision.basis,
		"scope": transfer.decision.scope,
	},
	"filings": filings,
	"exports": transfer.exports,
}
