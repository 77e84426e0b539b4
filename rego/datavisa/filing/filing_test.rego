package datavisa.filing_test

import data.datavisa.filing
import data.datavisa.request
import data.datavisa.transfer_request

_day := 86400000000000

_applies := time.parse_ns("2006-01-02", "2026-01-01")

_before := _applies - 1

_access := {
	"subject": "alice", "resource": "vn-customer-profiles", "actions": ["read"],
	"duration_s": 1800, "location": "DE", "reason": "INC-7",
}

_copy := {
	"subject": "alice", "resource": "vn-customer-profiles", "target_region": "onprem:frankfurt-1",
	"duration_s": 3600, "reason": "CHG-7",
}

# The exporter's deadline, first transfer at `first`, due 60 days later.
_open(first) := [{
	"filing": "vn_tia_dossier", "exporter": "acme-vietnam", "first_transfer_id": "g1",
	"first_transfer_ns": first, "due_ns": first + (60 * _day),
}]

_request(ask, at) := d if {
	d := request.decision with input as ask with time.now_ns as at
}

_transfer(ask, at) := d if {
	d := transfer_request.decision with input as ask with time.now_ns as at
}

_codes(d) := {r.code | some r in d.reasons}

test_access_from_abroad_to_vietnamese_data_starts_the_dossier_deadline if {
	d := _request(_access, _applies)
	d.allow
	d.transfer.basis == "tia"
	d.filings == {{"filing": "vn_tia_dossier", "exporter": "acme-vietnam", "within_s": 5184000}}

	# from inside Vietnam nothing crosses a border: no deadline
	count(_request(object.union(_access, {"location": "VN"}), _applies).filings) == 0

	# the day before the law applies there is no basis at all, and no deadline
	before := _request(_access, _before)
	_codes(before) == {"location_not_permitted"}
	count(before.filings) == 0
}

test_an_overdue_dossier_blocks_the_next_transfer_until_it_is_filed if {
	first := _applies
	due := first + (60 * _day)
	cases := [
		{"at": due - 1, "open": _open(first), "codes": set()},
		{"at": due, "open": _open(first), "codes": {"tia_dossier_overdue"}},
		{"at": due, "open": [], "codes": set()}, # recorded: no longer open
	]
	every c in cases {
		_codes(_request(object.union(_access, {"filing_deadlines": c.open}), c.at)) == c.codes
		_codes(_transfer(object.union(_copy, {"filing_deadlines": c.open}), c.at)) == c.codes
	}

	# another exporter's overdue dossier blocks nothing here
	others := [object.union(_open(first)[0], {"exporter": "acme-gmbh"})]
	_request(object.union(_access, {"filing_deadlines": others}), due).allow
}

test_the_overdue_denial_cites_the_law_and_the_first_transfer if {
	d := _request(object.union(_access, {"filing_deadlines": _open(_applies)}), _applies + (61 * _day))
	some reason in d.reasons
	reason.code == "tia_dossier_overdue"
	contains(reason.message, "acme-vietnam has not filed its tia_dossier, due 2026-03-02T00:00:00Z")
	contains(reason.message, "g1, at 2026-01-01T00:00:00Z")
	contains(reason.message, "PDP Law 91/2025/QH15 and Decree 356/2025")
}

test_a_transfer_of_data_naming_no_controller_is_refused if {
	d := _request(_access, _applies) with data.datavisa.resources["vn-customer-profiles"].controller as ""
	_codes(d) == {"exporter_unknown"}
}

test_who_may_record_a_filing if {
	ask := {"action": "record", "filing": "vn_tia_dossier", "exporter": "acme-vietnam"}
	filing.allow with input as object.union(ask, {"actor": "petra"})
	filing.allow with input as object.union(ask, {"actor": "ops", "actor_role": "admin"})
	cases := [
		{"patch": {"actor": "alice"}, "codes": {"actor_not_eligible"}},
		{"patch": {"actor": "petra", "filing": "nope"}, "codes": {"unknown_filing"}},
		{"patch": {"actor": "petra", "exporter": "acme-mars"}, "codes": {"unknown_exporter"}},
		{"patch": {"actor": "petra", "action": "delete"}, "codes": {"unknown_action"}},
	]
	every c in cases {
		{r.code | some r in filing.deny} == c.codes with input as object.union(ask, c.patch)
	}
}
