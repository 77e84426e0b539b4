package datavisa.console_test

import data.datavisa.console

_request := {
	"id": "r1",
	"requester": "alice",
	"resource": "eu-customer-analytics",
	"actions": ["read"],
	"duration_s": 1200,
	"location": "DE",
}

_ids(q) := [e.id | some e in q.entries]

test_catalogue_names_jurisdiction_tier_and_what_a_request_needs if {
	entry := console.catalogue["eu-customer-analytics"]
	entry.jurisdiction == "EU"
	entry.tier == "confidential"
	entry.max_duration_s == 14400
	entry.approvals == [{"group": "data_owner", "count": 1}]
	entry.cross_border_approvals == [{"group": "dpo", "count": 1}]
	"scc" in entry.evidence
	entry.safeguards == ["bcr", "scc"]
	entry.justification_required
}

test_catalogue_adds_no_cross_border_approval_for_data_without_pd if {
	console.catalogue["eu-service-metrics"].cross_border_approvals == []
}

test_presets_stop_at_the_maximum_and_offer_it if {
	console.presets(3600) == [900, 1800, 3600]
	console.presets(14400) == [900, 1800, 3600, 7200, 14400]
	console.presets(5000) == [900, 1800, 3600, 5000]
}

test_queue_holds_what_the_approver_may_approve if {
	other := object.union(_request, {"id": "r2", "requester": "bob"})
	q := console.queue with input as {"approver": "bob", "approver_location": "DE", "pending": [
		{"request": _request, "approvals": []},
		{"request": other, "approvals": []},
	]}
	_ids(q) == ["r1"] # bob's own request is not his to approve
	q.entries[0].allow
	q.entries[0].still_needed == [{"group": "data_owner", "count": 1, "approved_by": []}]
	q.entries[0].residency.basis == "in_jurisdiction"
	not q.entries[0].residency.cross_border
}

test_queue_leaves_out_requests_the_approver_is_not_eligible_for if {
	q := console.queue with input as {"approver": "carol", "approver_location": "US", "pending": [{"request": _request, "approvals": []}]}
	q.entries == []
	q.total == 0
}

test_queue_offers_a_step_up_approval_with_its_reason if {
	tiers := object.union(data.datavisa.tiers, {"confidential": object.union(
		data.datavisa.tiers.confidential,
		{"step_up": {"approve": {"max_age_s": 900, "amr": ["mfa"]}}},
	)})
	q := console.queue with data.datavisa.tiers as tiers
		with input as {"approver": "bob", "approver_location": "DE", "authentication": {"age_s": 5000, "amr": ["pwd"]}, "pending": [{"request": _request, "approvals": []}]}
	q.entries[0].step_up
	not q.entries[0].allow
	{r.code | some r in q.entries[0].reasons} == {"step_up_required"}
}

test_queue_says_who_else_must_approve_and_explains_a_transfer if {
	abroad := object.union(_request, {"location": "US", "requester": "carol"})
	q := console.queue with input as {"approver": "petra", "approver_location": "DE", "pending": [{"request": abroad, "approvals": []}]}
	_ids(q) == ["r1"]
	q.entries[0].groups == {"dpo"}
	{n.group | some n in q.entries[0].still_needed} == {"data_owner", "dpo"}
	q.entries[0].residency.cross_border
	q.entries[0].residency.basis == "adequacy"
	q.entries[0].residency.scope == "eu_us_dpf"
	contains(q.entries[0].residency.explanation, "adequacy finding (scope: eu_us_dpf)")
}

test_explanation_words_every_basis if {
	ctx := {"jurisdiction": "EU"}
	every basis in ["in_jurisdiction", "same_entity_travel", "not_restricted", "none", "scc"] {
		startswith(console.explain(ctx, "FR", basis), "data held in EU (European Union and EEA (GDPR)), reached from FR: ")
	}
}

test_queue_asks_only_about_resources_the_approver_has_a_group_for if {
	console._candidates == {"cn-customer-profiles", "eu-customer-analytics", "ru-customer-register", "vn-customer-profiles"} with input as {"approver": "bob"}
	q := console.queue with input as {"approver": "bob", "approver_location": "DE", "pending": [
		{"request": object.union(_request, {"resource": "eu-payments-ledger"}), "approvals": []},
		{"request": _request, "approvals": []},
	]}
	_ids(q) == ["r1"]
}

# The candidates only save asking: wherever the approver is no candidate, approval itself
# refuses them as not eligible (for every resource, approver and kind of request).
test_no_candidate_means_approval_refuses_as_not_eligible if {
	every approver in ["bob", "carol", "petra", "dave", "erin", "sam"] {
		every id, _ in data.datavisa.resources {
			_refused_unless_candidate(approver, id)
		}
	}
}

_refused_unless_candidate(approver, id) if id in console._candidates with input as {"approver": approver}

_refused_unless_candidate(approver, id) if {
	not id in console._candidates with input as {"approver": approver}
	every kind in ["access", "extension"] {
		every location in ["DE", "US"] {
			asked := {"approver": approver, "approver_location": "DE", "approvals": [], "request": object.union(
				_request,
				{"resource": id, "kind": kind, "location": location, "requester": "kenji"},
			)}
			"approver_not_eligible" in {r.code | some r in data.datavisa.approval.deny with input as asked}
		}
	}
}

test_a_page_shows_from_its_start_at_most_its_limit_and_counts_them_all if {
	pending := [
		{"request": _request, "approvals": []},
		{"request": object.union(_request, {"id": "r2", "requester": "bob"}), "approvals": []},
		{"request": object.union(_request, {"id": "r3", "requester": "kenji"}), "approvals": []},
		{"request": object.union(_request, {"id": "r4", "requester": "carol", "location": "US"}), "approvals": []},
	]
	asked := {"approver": "bob", "approver_location": "DE", "pending": pending}
	first := console.queue with input as object.union(asked, {"page": {"start": 0, "limit": 2}})
	[first.total, _ids(first), first.more] == [3, ["r1", "r3"], true]

	# A page starts where the last one ended (at a position of pending, not of the queue):
	# bob's own r2 is never shown.
	next := console.queue with input as object.union(asked, {"page": {"start": 3, "limit": 2}})
	[next.total, _ids(next), next.more] == [3, ["r4"], false]
	everything := console.queue with input as asked
	_ids(everything) == ["r1", "r3", "r4"]
}

# The queue judges each request with datavisa.approval's own functions: what it shows is
# what the approval decision says for that request.
test_each_entry_is_the_approval_decision if {
	pending := [
		{"request": _request, "approvals": []},
		{"request": object.union(_request, {"id": "r2", "requester": "carol", "location": "US"}), "approvals": ["bob"], "idp_groups": {"bob": []}},
	]
	asked := {"approver": "petra", "approver_location": "DE", "pending": pending}
	q := console.queue with input as asked
	every entry in q.entries {
		[item] := [p | some p in pending; p.request.id == entry.id]
		d := data.datavisa.approval.decision with input as object.union(asked, {"request": item.request, "approvals": item.approvals})
		[entry.allow, entry.reasons, entry.groups, entry.quorum_met] == [d.allow, d.reasons, d.groups, d.quorum_met]
	}
	_ids(q) == ["r2"]
	q.entries[0].quorum_met
}
