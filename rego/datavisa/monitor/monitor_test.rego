package datavisa.monitor_test

import data.datavisa.monitor

_friday_9_brussels := "2027-01-15T08:00:00Z" # 09:00 in Brussels, a Friday

_t0 := 1800000000000000000 # the same instant, in ns

_s := 1000000000

_access := {
	"decision_id": "d-access",
	"path": "datavisa/access/decision",
	"timestamp": _friday_9_brussels,
	"input": {"subject": "alice", "resource": "eu-customer-analytics", "action": "read", "location": "DE"},
	"result": {"allow": true, "reasons": []},
}

_request := {
	"decision_id": "d-request",
	"path": "datavisa/request/decision",
	"timestamp": _friday_9_brussels,
	"input": {"subject": "alice", "resource": "eu-customer-analytics", "actions": ["read"], "location": "DE", "duration_s": 1200},
	"result": {"allow": true, "reasons": []},
}

_denied(event, codes) := object.union(event, {"result": {"allow": false, "reasons": [{"code": c, "message": c} | some c in codes]}})

_with_input(event, patch) := object.union(event, {"input": object.union(event.input, patch)})

_raised(event, history) := {a.rule: a | some a in monitor.alerts with input as {"event": event, "history": history}}

_fired(got, rule) if got[rule]

else := false

test_a_plain_allowed_access_from_a_known_country_raises_nothing if {
	count(monitor.alerts) == 0 with input as {"event": _access, "history": {"countries_seen": ["DE"]}}
}

test_new_country_needs_history_and_a_country_not_seen_before if {
	cases := [
		{"event": _access, "seen": [], "raised": false},
		{"event": _access, "seen": ["DE"], "raised": false},
		{"event": _access, "seen": ["FR"], "raised": true},
		{"event": _with_input(_access, {"location": "US"}), "seen": ["DE", "FR"], "raised": true},
		{"event": _denied(_with_input(_access, {"location": "US"}), ["location_not_permitted"]), "seen": ["DE"], "raised": true},
		{"event": _with_input(_request, {"location": "US"}), "seen": ["DE"], "raised": true},
	]
	every c in cases {
		got := _raised(c.event, {"countries_seen": c.seen})
		_fired(got, "new_country") == c.raised
	}
}

test_new_country_names_subject_severity_and_the_decision if {
	got := _raised(_with_input(_access, {"location": "US"}), {"countries_seen": ["DE"]}).new_country
	got.subject == "alice"
	got.severity == "medium"
	got.evidence == ["d-access"]
	contains(got.message, "from US")
}

test_min_history_is_data if {
	got := _raised(_access, {"countries_seen": ["FR"]}) with data.datavisa.monitoring.rules.new_country.min_history as 2
	not got.new_country
}

test_no_grant_on_restricted_data if {
	ledger := _with_input(_access, {"resource": "eu-payments-ledger"})
	cases := [
		{"event": _denied(ledger, ["no_active_grant"]), "raised": true},
		{"event": _denied(ledger, ["grant_expired", "location_not_permitted"]), "raised": true},
		{"event": _denied(ledger, ["location_not_permitted"]), "raised": false},
		{"event": ledger, "raised": false},
		{"event": _denied(_access, ["no_active_grant"]), "raised": false},
		{"event": _denied(_with_input(_access, {"resource": "nope"}), ["unknown_resource"]), "raised": false},
	]
	every c in cases {
		got := _raised(c.event, {"countries_seen": ["DE"]})
		_fired(got, "no_grant_on_restricted") == c.raised
	}
}

test_no_grant_on_restricted_is_high_and_says_why if {
	event := _denied(_with_input(_access, {"resource": "eu-payments-ledger"}), ["no_active_grant"])
	got := _raised(event, {"countries_seen": ["DE"]}).no_grant_on_restricted
	got.severity == "high"
	contains(got.message, "restricted data eu-payments-ledger")
	contains(got.message, "no_active_grant")
}

test_break_glass_use_is_raised_when_it_was_allowed if {
	bg := {
		"decision_id": "d-bg",
		"path": "datavisa/breakglass/decision",
		"timestamp": _friday_9_brussels,
		"input": {"subject": "oscar", "resource": "eu-customer-analytics", "location": "DE", "duration_s": 600, "reason": "INC-9"},
		"result": {"allow": true, "reasons": []},
	}
	got := _raised(bg, {"countries_seen": ["DE"]}).break_glass_used
	got == {
		"rule": "break_glass_used", "severity": "high", "subject": "oscar", "evidence": ["d-bg"],
		"message": "oscar broke glass into eu-customer-analytics from DE for 600s: INC-9",
		"dedup_key": "eu-customer-analytics", "window_s": 0,
	}
	not _raised(_denied(bg, ["review_overdue"]), {"countries_seen": ["DE"]}).break_glass_used
}

test_review_overdue_follows_the_clock_and_the_grace if {
	review := {"grant_id": "g1", "subject": "oscar", "resource": "eu-customer-analytics", "review_due_ns": _t0, "decision_id": "d-bg"}
	cases := [
		{"now": _t0 - 1, "grace_s": 0, "raised": false},
		{"now": _t0, "grace_s": 0, "raised": true},
		{"now": _t0 + (60 * _s), "grace_s": 3600, "raised": false},
		{"now": _t0 + (3600 * _s), "grace_s": 3600, "raised": true},
	]
	every c in cases {
		got := {a.rule: a | some a in monitor.alerts} with input as {"history": {"breakglass_reviews": [review]}}
			with time.now_ns as c.now
			with data.datavisa.monitoring.rules.review_overdue.grace_s as c.grace_s
		_fired(got, "review_overdue") == c.raised
	}
}

test_an_unapplied_removal_alerts_once_it_is_after_s_old if {
	removal := {"sink": "opa", "subject": "alice", "grant_id": "g7", "ended_ns": _t0}
	cases := [
		{"now": _t0 + (4 * _s), "raised": false},
		{"now": _t0 + (5 * _s), "raised": true},
	]
	every c in cases {
		got := {a.rule: a | some a in monitor.alerts} with input as {"history": {"unapplied_removals": [removal]}}
			with time.now_ns as c.now
			with data.datavisa.monitoring.rules.removal_not_enforced.after_s as 5
		_fired(got, "removal_not_enforced") == c.raised
	}
}

test_review_overdue_names_the_grant_and_its_break_glass_decision if {
	review := {"grant_id": "g1", "subject": "oscar", "resource": "eu-customer-analytics", "review_due_ns": _t0, "decision_id": "d-bg"}
	alerts := monitor.alerts with input as {"history": {"breakglass_reviews": [review]}} with time.now_ns as _t0 + 1
	alerts == {{
		"rule": "review_overdue", "severity": "critical", "subject": "oscar", "evidence": ["d-bg"],
		"message": "break-glass grant g1 of oscar on eu-customer-analytics was due for review at 2027-01-15T08:00:00Z and is not reviewed; their break-glass is suspended",
		"dedup_key": "g1", "window_s": 86400,
	}}
}

_approval(approver) := {
	"decision_id": "d-approval",
	"path": "datavisa/approval/decision",
	"timestamp": _friday_9_brussels,
	"input": {"approver": approver, "approver_location": "DE", "request": {"requester": "alice", "resource": "eu-customer-analytics"}},
	"result": {"allow": true, "reasons": []},
}

# The approvals fact for `mine` of `total` approvals by the event's approver (bob).
_approvals(mine, total) := {"total": total, "mine": mine, "recent": [sprintf("bob-%d", [i]) | some i in numbers.range(1, min([mine, 20]))]}

test_approver_concentration_needs_both_a_count_and_a_share if {
	cases := [
		{"approvals": _approvals(5, 5), "raised": true},
		{"approvals": _approvals(6, 10), "raised": true},
		{"approvals": _approvals(4, 4), "raised": false},
		{"approvals": _approvals(5, 10), "raised": false},
		{"approvals": _approvals(0, 0), "raised": false},
	]
	every c in cases {
		got := _raised(_approval("bob"), {"approvals": c.approvals})
		_fired(got, "approver_concentration") == c.raised
	}
}

test_approver_concentration_names_the_approver_and_their_approvals if {
	got := _raised(_approval("bob"), {"approvals": _approvals(5, 6)}).approver_concentration
	got.subject == "bob"
	got.evidence == ["bob-1", "bob-2", "bob-3", "bob-4", "bob-5"]
	got.message == "bob gave 5 of the last 6 approvals within 86400s"
}

test_approver_concentration_thresholds_are_data if {
	got := _raised(_approval("bob"), {"approvals": _approvals(2, 2)}) with data.datavisa.monitoring.rules.approver_concentration.min_approvals as 2
	got.approver_concentration
	not _raised(_denied(_approval("bob"), ["self_approval"]), {"approvals": _approvals(9, 9)}).approver_concentration
}

_ended(state, ago_s) := {"grant_id": "g1", "state": state, "ended_ns": _t0 - (ago_s * _s), "decision_id": "d-grant"}

test_access_after_grant_end if {
	denied := _denied(_access, ["no_active_grant"])
	cases := [
		{"event": denied, "ended": _ended("revoked", 60), "severity": "high"},
		{"event": denied, "ended": _ended("relinquished", 900), "severity": "medium"},
		{"event": denied, "ended": _ended("expired", 0), "severity": "low"},
		{"event": denied, "ended": _ended("expired", 901), "severity": null},
		{"event": denied, "ended": _ended("revoked", -5), "severity": null},
		{"event": _access, "ended": _ended("revoked", 60), "severity": null},
		{"event": _denied(_request, ["duplicate"]), "ended": _ended("revoked", 60), "severity": null},
	]
	every c in cases {
		got := _raised(c.event, {"countries_seen": ["DE"], "last_grant_end": c.ended})
		object.get(got, ["access_after_grant_end", "severity"], null) == c.severity
	}
}

test_access_after_grant_end_cites_the_access_and_the_grant if {
	ended := {"grant_id": "g1", "state": "revoked", "ended_ns": _t0 - (60 * _s), "decision_id": "d-grant"}
	got := _raised(_denied(_access, ["no_active_grant"]), {"last_grant_end": ended}).access_after_grant_end
	got.evidence == ["d-access", "d-grant"]
	got.message == "alice tried read on eu-customer-analytics from DE 60s after their grant g1 was revoked"
}

test_access_after_grant_end_says_whole_seconds_of_a_gap_under_one if {
	ended := {"grant_id": "g1", "state": "revoked", "ended_ns": _t0 - (_s / 2), "decision_id": "d-grant"}
	got := _raised(_denied(_access, ["no_active_grant"]), {"last_grant_end": ended}).access_after_grant_end
	got.message == "alice tried read on eu-customer-analytics from DE 0s after their grant g1 was revoked"
}

test_requests_outside_the_working_hours_of_the_datas_jurisdiction if {
	cases := [
		{"at": "2027-01-15T08:00:00Z", "resource": "eu-customer-analytics", "raised": false},
		{"at": "2027-01-15T05:59:59Z", "resource": "eu-customer-analytics", "raised": true},
		{"at": "2027-01-15T18:59:59Z", "resource": "eu-customer-analytics", "raised": false},
		{"at": "2027-01-15T19:00:00Z", "resource": "eu-customer-analytics", "raised": true},
		{"at": "2027-01-16T10:00:00Z", "resource": "eu-customer-analytics", "raised": true},
		{"at": "2027-01-17T07:00:00Z", "resource": "sa-patient-records", "raised": false},
		{"at": "2027-01-15T08:00:00Z", "resource": "sa-patient-records", "raised": true},
		{"at": "2027-01-15T08:00:00Z", "resource": "us-crm-contacts", "raised": true},
		{"at": "2027-01-15T14:00:00Z", "resource": "us-crm-contacts", "raised": false},
	]
	every c in cases {
		event := object.union(_with_input(_request, {"resource": c.resource}), {"timestamp": c.at})
		got := _raised(event, {"countries_seen": ["DE"]})
		_fired(got, "outside_working_hours") == c.raised
	}
}

test_outside_working_hours_says_the_local_time if {
	event := object.union(_request, {"timestamp": "2027-01-16T10:00:00Z"})
	got := _raised(event, {"countries_seen": ["DE"]}).outside_working_hours
	got.severity == "low"
	got.message == "alice asked for read on eu-customer-analytics at Saturday 11:00 Europe/Brussels, outside working hours in EU (Mon Tue Wed Thu Fri 07:00-20:00)"
}

test_jurisdictions_without_hours_use_the_default if {
	event := object.union(_request, {"timestamp": "2027-01-15T06:30:00Z"})
	_raised(event, {}).outside_working_hours with data.datavisa.monitoring as object.remove(data.datavisa.monitoring, ["working_hours"])
	not _raised(event, {}).outside_working_hours
}

test_lookback_is_the_rules_windows if {
	monitor.lookback == {"countries_s": 7776000, "approvals_s": 86400}
}

test_batch_alerts_judge_each_record_in_order if {
	quiet := {"event": _access, "history": {"countries_seen": ["DE"]}}
	travelled := {"event": _access, "history": {"countries_seen": ["FR", "IT"]}}
	got := monitor.batch_alerts with input as {"batch": [quiet, travelled, quiet]}
	count(got) == 3
	got[0] == set()
	got[2] == set()
	{a.rule | some a in got[1]} == {"new_country"}
	got[1] == monitor.alerts with input as travelled
}

test_batch_alerts_take_the_batch_as_json_text_too if {
	quiet := {"event": _access, "history": {"countries_seen": ["DE"]}}
	travelled := {"event": _access, "history": {"countries_seen": ["FR", "IT"]}}
	batch := [quiet, travelled, quiet]
	got := monitor.batch_alerts with input as {"batch_json": json.marshal(batch)}
	got == monitor.batch_alerts with input as {"batch": batch}
	{a.rule | some a in got[1]} == {"new_country"}
}

test_each_alert_carries_its_rules_dedup_window_and_key if {
	event := _with_input(_access, {"location": "US"})
	got := _raised(event, {"countries_seen": ["DE"]}).new_country
	got.window_s == 86400
	got.dedup_key == "US"
	short := _raised(event, {"countries_seen": ["DE"]}).new_country with data.datavisa.monitoring.rules.new_country.dedup_s as 60
	short.window_s == 60
	denied := _denied(_with_input(_access, {"resource": "eu-payments-ledger"}), ["no_active_grant"])
	_raised(denied, {"countries_seen": ["DE"]}).no_grant_on_restricted.dedup_key == "eu-payments-ledger"
}

test_an_overdue_deletion_alerts_after_its_grace if {
	copy := {"transfer_id": "t1", "subject": "priya", "resource": "in-upi-transactions", "target_region": "aws:ap-southeast-1", "delete_by_ns": _t0, "decision_id": "d-t1"}
	cases := [
		{"now": _t0 - 1, "grace_s": 0, "raised": false},
		{"now": _t0, "grace_s": 0, "raised": true},
		{"now": _t0 + (60 * _s), "grace_s": 3600, "raised": false},
	]
	every c in cases {
		got := {a.rule: a | some a in monitor.alerts} with input as {"history": {"transfer_deletions": [copy]}}
			with time.now_ns as c.now
			with data.datavisa.monitoring.rules.deletion_overdue.grace_s as c.grace_s
		_fired(got, "deletion_overdue") == c.raised
	}
	alerts := monitor.alerts with input as {"history": {"transfer_deletions": [copy]}} with time.now_ns as _t0
	alerts == {{
		"rule": "deletion_overdue", "severity": "high", "subject": "priya", "evidence": ["d-t1"],
		"message": "the copy of in-upi-transactions in aws:ap-southeast-1 made under transfer t1 of priya was due for deletion at 2027-01-15T08:00:00Z and is not reported deleted; their transfers of data under the same localisation are blocked",
		"dedup_key": "t1", "window_s": 86400,
	}}
}

test_an_abandoned_removal_is_a_critical_alert if {
	removal := {"sink": "postgresql", "grant_id": "g1", "detail": "by ops: db gone", "at_ns": _t0}
	got := {a.rule: a | some a in monitor.alerts} with input as {"history": {"abandoned_removals": [removal]}}
	got.removal_abandoned.severity == "critical"
	got.removal_abandoned.dedup_key == "g1"
}

test_drift_names_each_grant_and_how if {
	drift := {"sink": "postgresql", "grants": {"g1": "not live", "g2": "differs"}, "at_ns": _t0}
	got := {a.rule: a | some a in monitor.alerts} with input as {"history": {"sink_drifts": [drift]}}
	got.sink_drift.message == "postgresql held grants other than the store's (g1 not live, g2 differs): put right"
	got.sink_drift.evidence == ["g1", "g2"]
}

test_a_kept_role_is_an_alert_naming_where_and_what_is_left if {
	left := {
		"sink": "postgresql", "grant_id": "g1", "at_ns": _t0,
		"detail": "in database analytics: table public.scratch (view public.v of bob depends on it)",
	}
	got := {a.rule: a | some a in monitor.alerts} with input as {"history": {"grant_residues": [left]}}
	got.grant_residue.severity == "high"
	got.grant_residue.dedup_key == "g1"
	got.grant_residue.evidence == ["g1"]
	contains(got.grant_residue.message, "in database analytics: table public.scratch")
}

test_a_refusal_for_public_connect_names_the_databases if {
	refused := {"sink": "postgresql", "connection": "analytics", "grant_id": "g1", "databases": ["template1", "postgres"]}
	got := {a.rule: a | some a in monitor.alerts} with input as {"history": {"public_connect": [refused]}}
	got.public_connect.subject == "analytics"
	contains(got.public_connect.message, "PUBLIC holds CONNECT on postgres, template1")
}

test_a_bulk_copy_to_is_an_alert_and_a_select_is_not if {
	copy := {"grant_id": "g1", "subject": "alice", "statement": "COPY customers TO STDOUT"}
	select := {"grant_id": "g1", "subject": "alice", "statement": "SELECT * FROM customers"}
	got := {a.rule | some a in monitor.alerts} with input as {"history": {"statements": [copy]}}
	"bulk_export" in got
	quiet := {a.rule | some a in monitor.alerts} with input as {"history": {"statements": [select]}}
	not "bulk_export" in quiet
}

test_a_mariadb_select_into_outfile_is_a_bulk_export if {
	outfile := {"grant_id": "g1", "subject": "alice", "statement": "SELECT * FROM tickets\nINTO OUTFILE '***'"}
	got := {a.rule | some a in monitor.alerts} with input as {"history": {"statements": [outfile]}}
	"bulk_export" in got
}

test_a_foreign_authoritys_request_tells_the_customer_allowed_or_refused if {
	event := {
		"decision_id": "d-fa",
		"path": "datavisa/transfer_request/decision",
		"timestamp": _friday_9_brussels,
		"input": {"subject": "carol", "resource": "eu-service-metrics", "target_region": "aws:us-east-1", "requester_kind": "foreign_public_authority"},
		"result": {"allow": false, "reasons": [{"code": "foreign_authority_request"}]},
	}
	got := _raised(event, {}).foreign_authority_request
	got.severity == "high"
	got.dedup_key == "d-fa"
	got.window_s == 0
	startswith(got.message, "a foreign public authority asked for eu-service-metrics (held in gcp:europe-west4) to be copied to aws:us-east-1, through carol's transfer request, refused; the customer is told of it: Data Act (EU) 2023/2854 Art. 32")
	allowed := object.union(event, {"result": {"allow": true, "reasons": []}})
	contains(_raised(allowed, {}).foreign_authority_request.message, "request, allowed;")

	# the organisation's own copy, and data no such rule covers, tell nobody
	not _raised(_with_input(event, {"requester_kind": ""}), {}).foreign_authority_request
	not _raised(_with_input(event, {"resource": "in-upi-transactions"}), {}).foreign_authority_request
}

test_an_overdue_filing_alerts_after_its_grace if {
	due := {"filing": "vn_tia_dossier", "exporter": "acme-vietnam", "first_transfer_id": "g1", "first_transfer_ns": _t0 - (5184000 * _s), "due_ns": _t0, "decision_id": "d-g1"}
	cases := [
		{"now": _t0 - 1, "grace_s": 0, "raised": false},
		{"now": _t0, "grace_s": 0, "raised": true},
		{"now": _t0 + (60 * _s), "grace_s": 3600, "raised": false},
	]
	every c in cases {
		got := {a.rule: a | some a in monitor.alerts} with input as {"history": {"filing_deadlines": [due]}}
			with time.now_ns as c.now
			with data.datavisa.monitoring.rules.filing_overdue.grace_s as c.grace_s
		_fired(got, "filing_overdue") == c.raised
	}
	[alert] := [a | some a in monitor.alerts] with input as {"history": {"filing_deadlines": [due]}} with time.now_ns as _t0
	alert.subject == "acme-vietnam"
	alert.dedup_key == "vn_tia_dossier:acme-vietnam"
	alert.evidence == ["d-g1"]
	startswith(alert.message, "acme-vietnam has not filed its tia_dossier, due 2027-01-15T08:00:00Z after its first transfer (g1)")
	contains(alert.message, "Decree 356/2025")
}
