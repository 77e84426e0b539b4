package datavisa.transfer_test

import data.datavisa.transfer

_mid_2026 := 1780272000000000000

_decide(ask) := d if {
	d := transfer.decision with input as ask
		with time.now_ns as _mid_2026
}

_codes(d) := {r.code | some r in d.reasons}

test_copies_between_regions if {
	cases := [
		# inside the EU: no transfer, but confidential copies need the data owner
		{
			"ask": {"resource": "eu-customer-analytics", "target_region": "azure:westeurope"},
			"codes": set(), "xb": false, "basis": "in_jurisdiction", "approvals": ["data_owner"],
		},
		# to a DPF-certified importer in the US: adequacy, and the DPO for personal data
		{
			"ask": {"resource": "eu-customer-analytics", "target_region": "aws:us-east-1", "importer": "acme-inc"},
			"codes": set(), "xb": true, "basis": "adequacy", "approvals": ["data_owner", "dpo"],
		},
		# the same without a certified importer, then with SCC on file
		{
			"ask": {"resource": "eu-customer-analytics", "target_region": "aws:us-east-1"},
			"codes": {"transfer_not_permitted"}, "xb": true, "basis": "none", "approvals": ["data_owner", "dpo"],
		},
		{
			"ask": {"resource": "eu-customer-analytics", "target_region": "aws:us-east-1", "evidence": ["scc"]},
			"codes": set(), "xb": true, "basis": "scc", "approvals": ["data_owner", "dpo"],
		},
		# restricted data stays in its jurisdiction
		{
			"ask": {"resource": "eu-payments-ledger", "target_region": "aws:eu-west-2"},
			"codes": {"transfer_not_permitted"}, "xb": true, "basis": "adequacy", "approvals": ["data_owner", "security_officer", "dpo"],
		},
		# Russia: no copy abroad at all
		{
			"ask": {"resource": "ru-customer-register", "target_region": "onprem:frankfurt-1", "evidence": ["scc"]},
			"codes": {"transfer_not_permitted", "copy_not_permitted", "unknown_evidence"}, "xb": true, "basis": "none", "approvals": ["data_owner", "dpo"],
		},
		{
			"ask": {"resource": "ru-customer-register", "target_region": "onprem:st-petersburg-1"},
			"codes": set(), "xb": false, "basis": "in_jurisdiction", "approvals": ["data_owner"],
		},
		# China (2026): the export route of the exporter's yearly count (datavisa.pipl_route)
		{
			"ask": {"resource": "cn-customer-profiles", "target_region": "aws:ap-northeast-1", "evidence": ["cac"]},
			"codes": {"individuals_required", "sensitive_individuals_required"}, "xb": true, "basis": "none", "approvals": ["data_owner", "dpo"],
		},
		{
			"ask": {"resource": "cn-customer-profiles", "target_region": "aws:ap-northeast-1", "individuals": 5000, "sensitive_individuals": 0},
			"codes": set(), "xb": true, "basis": "cac", "approvals": ["data_owner", "dpo"],
		},
		# India: payment data copies abroad are temporary
		{
			"ask": {"resource": "in-upi-transactions", "target_region": "aws:ap-southeast-1"},
			"codes": {"retention_exceeds_localisation_max"}, "xb": true, "basis": "not_restricted", "approvals": ["data_owner"],
		},
		{
			"ask": {"resource": "in-upi-transactions", "target_region": "aws:ap-southeast-1", "retention_s": 86400},
			"codes": set(), "xb": true, "basis": "not_restricted", "approvals": ["data_owner"],
		},
		# Australia: My Health Record data never leaves
		{
			"ask": {"resource": "au-my-health-records", "target_region": "aws:ap-southeast-1", "evidence": ["scc"]},
			"codes": {"transfer_not_permitted", "copy_not_permitted"}, "xb": true, "basis": "none", "approvals": ["data_owner", "dpo"],
		},
		{
			"ask": {"resource": "au-my-health-records", "target_region": "onprem:sydney-1"},
			"codes": set(), "xb": false, "basis": "in_jurisdiction", "approvals": ["data_owner"],
		},
		# Québec: a PIA even to another province
		{
			"ask": {"resource": "qc-member-directory", "target_region": "azure:canadacentral"},
			"codes": {"transfer_not_permitted"}, "xb": true, "basis": "none", "approvals": ["data_owner", "dpo"],
		},
		{
			"ask": {"resource": "qc-member-directory", "target_region": "azure:canadaeast"},
			"codes": set(), "xb": false, "basis": "in_jurisdiction", "approvals": ["data_owner"],
		},
		# ITAR: technical data stays in the US, even with restricted tier rules aside
		{
			"ask": {"source_region": "aws:us-gov-west-1", "tier": "internal", "tags": ["itar"], "target_region": "aws:eu-central-1"},
			"codes": {"transfer_not_permitted"}, "xb": true, "basis": "not_restricted", "approvals": [],
		},
		# described data, no resource: public data goes anywhere
		{
			"ask": {"source_region": "aws:eu-central-1", "tier": "public", "target_region": "aws:cn-north-1"},
			"codes": set(), "xb": true, "basis": "none", "approvals": [],
		},
		# unknowns
		{
			"ask": {"resource": "nope", "target_region": "aws:eu-west-1"},
			"codes": {"unknown_resource"}, "xb": false, "basis": "none", "approvals": [],
		},
		{
			"ask": {"source_region": "mars:olympus-1", "tier": "secret", "tags": [], "target_region": "aws:eu-west-1"},
			"codes": {"unknown_region", "unknown_tier"}, "xb": false, "basis": "none", "approvals": [],
		},
	]
	[c.ask | some c in cases; not _as_expected(c)] == []
}

_as_expected(c) if {
	d := _decide(c.ask)
	_codes(d) == c.codes
	allowed := count(c.codes) == 0
	d.allow == allowed
	d.cross_border == c.xb
	d.basis == c.basis
	[a.group | some a in d.approvals_required] == c.approvals
}

test_copy_retention_is_reported if {
	_decide({"resource": "in-upi-transactions", "target_region": "gcp:europe-west3"}).max_retention_s == 86400
	_decide({"resource": "in-upi-transactions", "target_region": "gcp:asia-south1"}).max_retention_s == null
	_decide({"resource": "eu-customer-analytics", "target_region": "aws:us-east-1", "importer": "acme-inc"}).scope == "eu_us_dpf"
}

test_bad_asks_name_their_field if {
	cases := [
		{"ask": {"resource": "eu-customer-analytics", "target_region": "aws:eu-central-1"}, "reasons": {["same_region", "target_region"]}},
		{"ask": {"resource": "eu-customer-analytics", "target_region": "azure:westeurope", "importer": "acme-mars"}, "reasons": {["unknown_importer", "importer"]}},
		{"ask": {"resource": "eu-customer-analytics", "target_region": "mars:olympus-1"}, "reasons": {["unknown_region", "target_region"]}},
		{"ask": {"resource": "nope", "target_region": "aws:eu-west-1"}, "reasons": {["unknown_resource", "resource"]}},
		{"ask": {"resource": "eu-customer-analytics", "target_region": "aws:us-east-1", "evidence": ["scc", "cac"]}, "reasons": {["unknown_evidence", "evidence"]}},
		{"ask": {"resource": "in-upi-transactions", "target_region": "aws:ap-southeast-1", "retention_s": 90000}, "reasons": {["retention_exceeds_localisation_max", "keep"]}},
		{"ask": {"resource": "in-upi-transactions", "target_region": "aws:ap-southeast-1", "retention_s": 0}, "reasons": {["retention_invalid", "keep"]}},
		{"ask": {"resource": "cn-customer-profiles", "target_region": "aws:ap-northeast-1", "individuals": 1, "sensitive_individuals": 0}, "reasons": set()},
		{"ask": {"resource": "cn-customer-profiles", "target_region": "aws:ap-northeast-1", "individuals": -1, "sensitive_individuals": 0.5}, "reasons": {["individuals_required", "individuals"], ["sensitive_individuals_required", "sensitive_individuals"]}},
		{"ask": {"resource": "cn-customer-profiles", "target_region": "aws:ap-northeast-1", "individuals": 1, "sensitive_individuals": 2}, "reasons": {["sensitive_exceeds_individuals", "sensitive_individuals"]}},
		{"ask": {"resource": "cn-customer-profiles", "target_region": "aws:ap-northeast-1", "individuals": 200000, "sensitive_individuals": 0}, "reasons": {["export_route_evidence_required", "evidence"]}},
	]
	[c.ask | some c in cases; {[r.code, r.field] | some r in _decide(c.ask).reasons} != c.reasons] == []
}

# Before China's export route (2026-01-01), the localisation's flat rule: a CAC
# assessment or filed standard contract (`cac`) for every copy, whatever its size.
test_before_the_export_route_every_chinese_copy_needs_cac_evidence if {
	late_2025 := time.parse_rfc3339_ns("2025-12-31T15:59:59Z") # 23:59:59 in Shanghai
	small := {"resource": "cn-customer-profiles", "target_region": "aws:ap-northeast-1", "individuals": 10, "sensitive_individuals": 0}
	refused := transfer.decision with input as small with time.now_ns as late_2025
	_codes(refused) == {"transfer_not_permitted", "evidence_required"}
	allowed := transfer.decision with input as object.union(small, {"evidence": ["cac"]}) with time.now_ns as late_2025
	allowed.allow
	allowed.basis == "cac"
	allowed.exports == set()
}

_london_route := {"routes": {"aws:eu-west-1": {"aws:eu-west-2": {"bases": ["adequacy"]}}}}

test_a_replication_route_lets_copies_rest_on_more_bases if {
	ledger := {"resource": "eu-payments-ledger", "target_region": "aws:eu-west-2"}
	_codes(_decide(ledger)) == {"transfer_not_permitted"}
	routed := transfer.decision with input as ledger with data.datavisa.transfer_rules as _london_route
		with time.now_ns as _mid_2026
	routed.allow
	routed.basis == "adequacy"

	# only along the route: the same data to Switzerland is still refused
	zurich := transfer.decision with input as object.union(ledger, {"target_region": "aws:eu-central-2"})
		with data.datavisa.transfer_rules as _london_route
		with time.now_ns as _mid_2026
	_codes(zurich) == {"transfer_not_permitted"}

	# and never past a localisation: Russian data stays whatever the route says
	moscow := {"routes": {"onprem:moscow-1": {"onprem:frankfurt-1": {"bases": ["none"]}}}}
	ru := transfer.decision with input as {"resource": "ru-customer-register", "target_region": "onprem:frankfurt-1"}
		with data.datavisa.transfer_rules as moscow
		with time.now_ns as _mid_2026
	_codes(ru) == {"copy_not_permitted"}
}

test_a_jurisdiction_may_ask_for_more_approvers if {
	extra := {"approvals_by_jurisdiction": {"EU": [{"group": "security_officer", "count": 1}]}}
	eu := transfer.decision with input as {"resource": "eu-customer-analytics", "target_region": "azure:westeurope"}
		with data.datavisa.transfer_rules as extra
	[a.group | some a in eu.approvals_required] == ["data_owner", "security_officer"]
	us := transfer.decision with input as {"resource": "us-crm-contacts", "target_region": "aws:us-west-2"}
		with data.datavisa.transfer_rules as extra
	[a.group | some a in us.approvals_required] == ["data_owner"]
}

test_an_adequacy_past_its_until_denies_the_copy if {
	ask := {"resource": "eu-customer-analytics", "target_region": "aws:eu-west-2"}
	_decide(ask).allow
	after := transfer.decision with input as ask with time.now_ns as time.parse_rfc3339_ns("2032-01-01T00:00:00Z")
	_codes(after) == {"transfer_not_permitted"}
}

test_a_category_india_designates_is_never_copied_out_from_2027_05_13 if {
	copy := {"resource": "in-upi-transactions", "target_region": "aws:eu-central-1", "retention_s": 3600}
	before := transfer.decision with input as copy with data.datavisa.designated_localisation.IN.tags as ["payment"]
		with time.now_ns as time.parse_ns("2006-01-02", "2027-05-12")
	before.allow
	after := transfer.decision with input as copy with data.datavisa.designated_localisation.IN.tags as ["payment"]
		with time.now_ns as time.parse_ns("2006-01-02", "2027-05-13")
	{r.code | some r in after.reasons} == {"copy_not_permitted", "transfer_not_permitted"}
}
