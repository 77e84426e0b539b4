# METADATA
# title: Monitor
# description: |
#   Alert rules, evaluated on each decision as it is recorded: what in the decision log is
#   worth a person's attention now. Thresholds and working hours are data
#   (data.datavisa.monitoring, bundles/default/monitoring.yaml); the engine only gathers
#   the facts the rules need, by counting and looking up in its database.
#
#   Input: {event: the decision-log event just recorded (OPA's format: decision_id, path,
#   input, result, timestamp; nothing else of it, and each of the result's reasons as
#   {code} alone); absent for the periodic check, history: {
#     countries_seen: [countries the subject was seen in before, within
#       lookback.countries_s],
#     last_grant_end: {grant_id, state (expired | revoked | relinquished), ended_ns,
#       decision_id} of the subject's grant on the resource that ended last, before the event,
#     approvals: {total, mine, recent: [decision ids]} the approvals allowed within
#       lookback.approvals_s up to and including the event: how many, how many of them the
#       event's approver gave, and the decision ids of that approver's newest few,
#     breakglass_reviews: [{grant_id, subject, resource, review_due_ns, decision_id}]
#       break-glass grants not reviewed yet (periodic check),
#     unapplied_removals: [{sink, subject, grant_id, ended_ns}] (periodic check),
#     abandoned_removals: [{sink, grant_id, detail, at_ns}] removals an admin gave up,
#     sink_drifts: [{sink, grants: {grant id: how}, at_ns}] drift reconcile put right,
#     statements: [{grant_id, subject, statement}] what provisioned roles ran,
#     grant_residues: [{sink, grant_id, detail, at_ns}] ended grants whose account is
#       kept because something of it could not be removed (detail names where and what),
#     public_connect: [{sink, connection, grant_id, databases}] grants a connection set to
#       refuse would not provision, because PUBLIC holds CONNECT on those other databases,
#     (a transfer request a foreign public authority made, requester_kind
#       foreign_public_authority, of data under datavisa.foreign_authority's rules raises
#       foreign_authority_request, allowed or refused: the customer is told),
#     filing_deadlines: [{filing, exporter, first_transfer_id, first_transfer_ns, due_ns,
#       decision_id}] filings due after an exporter's first transfer, not yet recorded
#       (datavisa.filing; periodic check),
#     transfer_deletions: [{transfer_id, subject, resource, target_region, delete_by_ns,
#       decision_id}] copies kept for a limited time not yet reported deleted (periodic
#       check)}}
#   Output: alerts = set of {rule, severity, subject, message, evidence: [decision ids],
#   dedup_key, window_s}. A repeat is the same rule, subject, severity and dedup_key raised
#   again within window_s (the rule's dedup_s) of the open alert's first raise: the engine
#   counts it on that alert instead of storing another. dedup_key says what else tells two
#   raises apart (the country, the resource, the grant); window_s 0 stores every raise.
package datavisa.monitor

import data.datavisa.foreign_authority
import data.datavisa.monitoring
import data.datavisa.residency

# The rules read the record through plain references (input.event..., input.history...,
# monitoring.rules...), not through helper rules: under `with input as` each record
# evaluates every helper rule it touches anew, and a helper costs OPA several times the
# allocations of the reference it stands for (a batch of 200 records: 44,138 allocations
# with helpers, 21,230 without). Each reference is undefined where the helper's
# object.get default made the rule fail, so the answers are the same.

_kind := split(input.event.path, "/")[1]

_codes := {r.code | some r in input.event.result.reasons}

_at_ns := time.parse_rfc3339_ns(input.event.timestamp)

_ns(seconds) := seconds * 1000000000

_alert(rule, severity, subject, dedup_key, message, evidence) := {
	"rule": rule,
	"severity": severity,
	"subject": subject,
	"message": message,
	"evidence": sort({id | some id in evidence; is_string(id)}),
	"dedup_key": dedup_key,
	"window_s": monitoring.rules[rule].dedup_s,
}

# METADATA
# title: Lookback
# description: |
#   How far back, in seconds, the engine gathers each kind of history: the countries a
#   subject was seen in, and the approvals that concentration is judged on.
lookback := {
	"countries_s": monitoring.rules.new_country.lookback_s,
	"approvals_s": monitoring.rules.approver_concentration.window_s,
}

# METADATA
# title: Alerts, many records at once
# description: |
#   alerts for each {event, history} in the batch, in order: the engine judges the
#   records that arrived together in one query. Input: {batch: [input, ...]}, or
#   {batch_json: that list as JSON text}, which the engine sends: OPA's API authorization
#   turns a request's whole body into a Rego value before the query runs, and the
#   handler once more; one string is cheap to turn twice, a list of records is not
#   (about a quarter of OPA's CPU for the batch).
batch_alerts := [found | some judged in _batch; found := alerts with input as judged]

_batch := json.unmarshal(input.batch_json) if is_string(input.batch_json)

else := input.batch

# METADATA
# title: Alerts
# description: Each alert the event (or the periodic check) raises.
alerts contains _alert("new_country", cfg.severity, input.event.input.subject, input.event.input.location, msg, [input.event.decision_id]) if {
	seen_before := object.get(input, ["history", "countries_seen"], [])
	not input.event.input.location in seen_before
	_kind in {"access", "request", "breakglass"}
	cfg := monitoring.rules.new_country
	seen := {c | some c in seen_before}
	count(seen) >= cfg.min_history
	msg := sprintf("%s: %s on %s from %s, a country not seen for %s before (seen: %s)", [_kind, input.event.input.subject, input.event.input.resource, input.event.input.location, input.event.input.subject, concat(", ", sort(seen))])
}

alerts contains _alert("no_grant_on_restricted", cfg.severity, input.event.input.subject, input.event.input.resource, msg, [input.event.decision_id]) if {
	input.event.result.allow == false
	cfg := monitoring.rules.no_grant_on_restricted
	resource := data.datavisa.resources[input.event.input.resource]
	resource.tier in cfg.tiers
	_kind == "access"
	missing := _codes & {r | some r in cfg.reasons}
	count(missing) > 0
	msg := sprintf("%s tried %s on %s data %s from %s without a live grant (%s)", [input.event.input.subject, input.event.input.action, resource.tier, input.event.input.resource, input.event.input.location, concat(", ", sort(missing))])
}

alerts contains _alert("location_mismatch", cfg.severity, subject, input.event.input.origin.declared, msg, [input.event.decision_id]) if {
	"location_mismatch" in _codes
	cfg := monitoring.rules.location_mismatch
	subject := object.get(input.event.input, "subject", object.get(input.event.input, "approver", ""))
	observed := concat(", ", sort([c | some kind in ["attested", "derived"]; c := input.event.input.origin[kind]; is_string(c)]))
	msg := sprintf("%s: %s declared %s but the network places them in %s (address %s)", [_kind, subject, input.event.input.origin.declared, observed, object.get(input.event.input.origin, "address", "unknown")])
}

alerts contains _alert("break_glass_used", cfg.severity, input.event.input.subject, input.event.input.resource, msg, [input.event.decision_id]) if {
	_kind == "breakglass"
	input.event.result.allow == true
	cfg := monitoring.rules.break_glass_used
	msg := sprintf("%s broke glass into %s from %s for %ds: %s", [input.event.input.subject, input.event.input.resource, input.event.input.location, input.event.input.duration_s, object.get(input.event.input, "reason", "")])
}

alerts contains _alert("review_overdue", cfg.severity, review.subject, review.grant_id, msg, [review.decision_id]) if {
	input.history.breakglass_reviews # OPA's rule index skips the rule where this is undefined
	some review in input.history.breakglass_reviews
	cfg := monitoring.rules.review_overdue
	time.now_ns() >= review.review_due_ns + _ns(cfg.grace_s)
	due := time.format([review.review_due_ns, "UTC", "2006-01-02T15:04:05Z07:00"])
	msg := sprintf("break-glass grant %s of %s on %s was due for review at %s and is not reviewed; their break-glass is suspended", [review.grant_id, review.subject, review.resource, due])
}

alerts contains _alert("deletion_overdue", cfg.severity, copy.subject, copy.transfer_id, msg, [copy.decision_id]) if {
	input.history.transfer_deletions # OPA's rule index skips the rule where this is undefined
	some copy in input.history.transfer_deletions
	cfg := monitoring.rules.deletion_overdue
	time.now_ns() >= copy.delete_by_ns + _ns(cfg.grace_s)
	due := time.format([copy.delete_by_ns, "UTC", "2006-01-02T15:04:05Z07:00"])
	msg := sprintf("the copy of %s in %s made under transfer %s of %s was due for deletion at %s and is not reported deleted; their transfers of data under the same localisation are blocked", [copy.resource, copy.target_region, copy.transfer_id, copy.subject, due])
}

alerts contains _alert("filing_overdue", cfg.severity, due.exporter, concat(":", [due.filing, due.exporter]), msg, [due.decision_id]) if {
	input.history.filing_deadlines # OPA's rule index skips the rule where this is undefined
	some due in input.history.filing_deadlines
	cfg := monitoring.rules.filing_overdue
	time.now_ns() >= due.due_ns + _ns(cfg.grace_s)
	deadline := data.datavisa.filing_deadlines[due.filing]
	at := time.format([due.due_ns, "UTC", "2006-01-02T15:04:05Z07:00"])
	msg := sprintf("%s has not filed its %s, due %s after its first transfer (%s); its transfers of that data are blocked until the filing is recorded: %s", [due.exporter, deadline.evidence, at, due.first_transfer_id, deadline.law])
}

alerts contains _alert("foreign_authority_request", cfg.severity, input.event.input.subject, input.event.decision_id, msg, [input.event.decision_id]) if {
	_kind == "transfer_request"
	input.event.input.requester_kind == "foreign_public_authority"
	cfg := monitoring.rules.foreign_authority_request
	resource := data.datavisa.resources[input.event.input.resource]
	found := foreign_authority.rule({"jurisdiction": residency.jurisdiction(resource), "tags": {tag | some tag in resource.tags}})
	verdict := {true: "allowed", false: "refused"}[input.event.result.allow]
	msg := sprintf("a foreign public authority asked for %s (held in %s) to be copied to %s, through %s's transfer request, %s; the customer is told of it: %s", [input.event.input.resource, resource.region, input.event.input.target_region, input.event.input.subject, verdict, found.law])
}

alerts contains _alert("removal_not_enforced", cfg.severity, removal.subject, removal.grant_id, msg, [removal.grant_id]) if {
	input.history.unapplied_removals # OPA's rule index skips the rule where this is undefined
	some removal in input.history.unapplied_removals
	cfg := monitoring.rules.removal_not_enforced
	time.now_ns() >= removal.ended_ns + _ns(cfg.after_s)
	msg := sprintf("grant %s of %s ended but %s still holds it: the engine retries, and denies it on its own check endpoint meanwhile", [removal.grant_id, removal.subject, removal.sink])
}

alerts contains _alert("removal_abandoned", cfg.severity, removal.sink, removal.grant_id, msg, [removal.grant_id]) if {
	input.history.abandoned_removals # OPA's rule index skips the rule where this is undefined
	some removal in input.history.abandoned_removals
	cfg := monitoring.rules.removal_abandoned
	msg := sprintf("the removal of grant %s from %s was abandoned (%s): it may still hold there", [removal.grant_id, removal.sink, removal.detail])
}

alerts contains _alert("sink_drift", cfg.severity, drift.sink, drift.sink, msg, ids) if {
	input.history.sink_drifts # OPA's rule index skips the rule where this is undefined
	some drift in input.history.sink_drifts
	cfg := monitoring.rules.sink_drift
	ids := [id | some id, _ in drift.grants]
	how := concat(", ", sort([sprintf("%s %s", [id, kind]) | some id, kind in drift.grants]))
	msg := sprintf("%s held grants other than the store's (%s): put right", [drift.sink, how])
}

alerts contains _alert("grant_residue", cfg.severity, left.sink, left.grant_id, msg, [left.grant_id]) if {
	input.history.grant_residues # OPA's rule index skips the rule where this is undefined
	some left in input.history.grant_residues
	cfg := monitoring.rules.grant_residue
	msg := sprintf("grant %s ended, but %s could not remove all of it: %s; reconcile keeps trying", [left.grant_id, left.sink, left.detail])
}

alerts contains _alert("public_connect", cfg.severity, refused.connection, refused.connection, msg, [refused.grant_id]) if {
	input.history.public_connect # OPA's rule index skips the rule where this is undefined
	some refused in input.history.public_connect
	cfg := monitoring.rules.public_connect
	msg := sprintf("%s connection %s refused to provision grant %s: PUBLIC holds CONNECT on %s, so its role would reach more than the approved database (REVOKE CONNECT ON DATABASE ... FROM PUBLIC)", [refused.sink, refused.connection, refused.grant_id, concat(", ", sort(refused.databases))])
}

alerts contains _alert("bulk_export", cfg.severity, done.subject, done.grant_id, msg, [done.grant_id]) if {
	input.history.statements # OPA's rule index skips the rule where this is undefined
	some done in input.history.statements
	cfg := monitoring.rules.bulk_export
	some pattern in cfg.patterns
	regex.match(concat("", ["(?is)", pattern]), done.statement)
	msg := sprintf("%s ran a bulk export under grant %s: %s", [done.subject, done.grant_id, substring(done.statement, 0, 200)])
}

alerts contains _alert("approver_concentration", cfg.severity, approver, "", msg, approvals.recent) if {
	_kind == "approval"
	input.event.result.allow == true
	cfg := monitoring.rules.approver_concentration
	approver := input.event.input.approver
	approvals := input.history.approvals
	approvals.mine >= cfg.min_approvals
	approvals.mine * 100 >= cfg.min_share_pct * approvals.total
	msg := sprintf("%s gave %d of the last %d approvals within %ds", [approver, approvals.mine, approvals.total, cfg.window_s])
}

alerts contains _alert("access_after_grant_end", severity, input.event.input.subject, input.event.input.resource, msg, [input.event.decision_id, ended.decision_id]) if {
	_kind == "access"
	input.event.result.allow == false
	cfg := monitoring.rules.access_after_grant_end
	ended := input.history.last_grant_end
	severity := cfg.severity[ended.state]
	gap_ns := _at_ns - ended.ended_ns
	gap_ns >= 0
	gap_ns <= _ns(cfg.within_s)
	msg := sprintf("%s tried %s on %s from %s %ds after their grant %s was %s", [input.event.input.subject, input.event.input.action, input.event.input.resource, input.event.input.location, floor(gap_ns / 1000000000), ended.grant_id, ended.state])
}

alerts contains _alert("outside_working_hours", cfg.severity, input.event.input.subject, input.event.input.resource, msg, [input.event.decision_id]) if {
	_kind == "request"
	cfg := monitoring.rules.outside_working_hours
	jurisdiction := residency.jurisdiction(data.datavisa.resources[input.event.input.resource])
	hours := object.get(object.get(monitoring, "working_hours", {}), jurisdiction, monitoring.default_working_hours)
	not _within(hours, _at_ns)
	[h, m, _] := time.clock([_at_ns, hours.timezone])
	local := sprintf("%s %02d:%02d %s", [time.weekday([_at_ns, hours.timezone]), h, m, hours.timezone])
	days := concat(" ", [substring(d, 0, 3) | some d in hours.days])
	msg := sprintf("%s asked for %s on %s at %s, outside working hours in %s (%s %s-%s)", [input.event.input.subject, concat(", ", input.event.input.actions), input.event.input.resource, local, jurisdiction, days, hours.start, hours.end])
}

_within(hours, ns) if {
	time.weekday([ns, hours.timezone]) in hours.days
	[h, m, _] := time.clock([ns, hours.timezone])
	minute := (h * 60) + m
	minute >= _minute_of(hours.start)
	minute < _minute_of(hours.end)
}

_minute_of(hhmm) := (to_number(parts[0]) * 60) + to_number(parts[1]) if parts := split(hhmm, ":")
