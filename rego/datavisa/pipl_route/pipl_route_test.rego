package datavisa.pipl_route_test

import data.datavisa.approval
import data.datavisa.pipl_route
import data.datavisa.request
import data.datavisa.transfer
import data.datavisa.transfer_check

_mid_2026 := time.parse_rfc3339_ns("2026-06-01T00:00:00Z")

_copy := {"resource": "cn-customer-profiles", "target_region": "aws:ap-northeast-1"}

# acme-china, the data's controller, has sent abroad `individuals` (`sensitive`) this year.
_counted(year, individuals, sensitive) := [{"counter": "pipl_export", "exporter": "acme-china", "year": year, "individuals": individuals, "sensitive_individuals": sensitive}]

_ask(individuals, sensitive, evidence, counts) := object.union(_copy, {
	"individuals": individuals, "sensitive_individuals": sensitive,
	"evidence": evidence, "export_counts": counts,
})

_codes(d) := {r.code | some r in d.reasons}

_route(d) := [e.route | some e in d.exports][0]

_none := []

test_each_route_boundary if {
	cases := [
		# fewer than 100,000 individuals, none sensitive: exempt (Provisions Art. 5(4))
		{"i": 99999, "s": 0, "ev": [], "route": "exempt", "codes": set()},
		# 100,000 is not "fewer than 100,000": the standard contract or certification (Art. 8)
		{"i": 100000, "s": 0, "ev": [], "route": "standard_contract_or_certification", "codes": {"export_route_evidence_required"}},
		{"i": 100000, "s": 0, "ev": ["pipl_standard_contract"], "route": "standard_contract_or_certification", "codes": set()},
		{"i": 999999, "s": 0, "ev": ["pipl_certification"], "route": "standard_contract_or_certification", "codes": set()},
		# the flat `cac` evidence of before is no route's evidence
		{"i": 100000, "s": 0, "ev": ["cac"], "route": "standard_contract_or_certification", "codes": {"export_route_evidence_required"}},
		# 1,000,000 is not "fewer than 1,000,000": the CAC security assessment (Art. 7)
		{"i": 1000000, "s": 0, "ev": ["pipl_standard_contract", "pipl_certification"], "route": "security_assessment", "codes": {"export_route_evidence_required"}},
		{"i": 1000000, "s": 0, "ev": ["cac_security_assessment"], "route": "security_assessment", "codes": set()},
		# any sensitive personal information leaves the exemption; 10,000 sensitive individuals need the assessment
		{"i": 10, "s": 1, "ev": [], "route": "standard_contract_or_certification", "codes": {"export_route_evidence_required"}},
		{"i": 9999, "s": 9999, "ev": ["pipl_standard_contract"], "route": "standard_contract_or_certification", "codes": set()},
		{"i": 10000, "s": 10000, "ev": ["pipl_standard_contract"], "route": "security_assessment", "codes": {"export_route_evidence_required"}},
	]
	[c | some c in cases; not _as_expected(c)] == []
}

_as_expected(c) if {
	d := transfer.decision with input as _ask(c.i, c.s, c.ev, _none) with time.now_ns as _mid_2026
	_route(d) == c.route
	_codes(d) == c.codes
	allowed := count(c.codes) == 0
	d.allow == allowed
}

test_a_critical_information_infrastructure_operator_needs_the_assessment_whatever_the_count if {
	ciio := object.union(data.datavisa.entities, {"acme-china": {"name": "ACME (Shanghai)", "country": "CN", "ciio": true}})
	small := transfer.decision with input as _ask(1, 0, [], _none) with time.now_ns as _mid_2026 with data.datavisa.entities as ciio
	_route(small) == "security_assessment"
	_codes(small) == {"export_route_evidence_required"}
	some r in small.reasons
	contains(r.message, "by a critical information infrastructure operator")
	contains(r.message, "Art. 7")
	assessed := transfer.decision with input as _ask(1, 0, ["cac_security_assessment"], _none) with time.now_ns as _mid_2026 with data.datavisa.entities as ciio
	assessed.allow

	# a resource can be marked too
	marked := object.union(data.datavisa.resources, {"cn-customer-profiles": object.union(data.datavisa.resources["cn-customer-profiles"], {"ciio": true})})
	by_resource := transfer.decision with input as _ask(1, 0, [], _none) with time.now_ns as _mid_2026 with data.datavisa.resources as marked
	_route(by_resource) == "security_assessment"
}

test_the_refusal_cites_the_law_the_date_and_the_count if {
	d := transfer.decision with input as _ask(40000, 0, [], _counted(2026, 60000, 0)) with time.now_ns as _mid_2026
	[r] := [r | some r in d.reasons]
	r.field == "evidence"
	contains(r.message, "acme-china's exports of personal information in 2026 (calendar year in Asia/Shanghai)")
	contains(r.message, "reach 100000 individuals")
	contains(r.message, "standard contract or certification route")
	contains(r.message, "pipl_certification or pipl_standard_contract")
	contains(r.message, "Provisions on Promoting and Regulating Cross-Border Data Flows (CAC, 2024-03-22) Art. 8")
	contains(r.message, "from 2026-01-01")
}

test_splitting_cannot_dodge_the_route if {
	# 60,000 sent this year: 39,999 more stays exempt, 40,000 more is the standard contract's
	under := transfer.decision with input as _ask(39999, 0, [], _counted(2026, 60000, 0)) with time.now_ns as _mid_2026
	under.allow
	_route(under) == "exempt"
	over := transfer.decision with input as _ask(40000, 0, [], _counted(2026, 60000, 0)) with time.now_ns as _mid_2026
	_codes(over) == {"export_route_evidence_required"}

	# counts are the exporter's, of this year, of this counter
	others := [
		{"counter": "pipl_export", "exporter": "acme-gmbh", "year": 2026, "individuals": 900000, "sensitive_individuals": 0},
		{"counter": "pipl_export", "exporter": "acme-china", "year": 2025, "individuals": 900000, "sensitive_individuals": 0},
		{"counter": "other", "exporter": "acme-china", "year": 2026, "individuals": 900000, "sensitive_individuals": 0},
	]
	unrelated := transfer.decision with input as _ask(40000, 0, [], others) with time.now_ns as _mid_2026
	_route(unrelated) == "exempt"
}

test_the_route_starts_on_1_january_2026_in_shanghai if {
	before := time.parse_rfc3339_ns("2025-12-31T15:59:59Z") # 23:59:59 in Shanghai
	from := time.parse_rfc3339_ns("2025-12-31T16:00:00Z") # 00:00 on 1 January 2026 there
	old := transfer.decision with input as _ask(10, 0, [], _none) with time.now_ns as before
	_codes(old) == {"evidence_required", "transfer_not_permitted"}
	old.exports == set()
	new := transfer.decision with input as _ask(10, 0, [], _none) with time.now_ns as from
	new.allow
	new.exports == {{"counter": "pipl_export", "exporter": "acme-china", "year": 2026, "individuals": 10, "sensitive_individuals": 0, "route": "exempt"}}
}

test_a_new_year_in_shanghai_starts_the_count_again if {
	counts := _counted(2026, 950000, 0)
	last_second := time.parse_rfc3339_ns("2026-12-31T15:59:59Z")
	new_year := time.parse_rfc3339_ns("2026-12-31T16:00:00Z") # 1 January 2027 in Shanghai, still 2026 in UTC
	late := transfer.decision with input as _ask(50000, 0, ["pipl_standard_contract"], counts) with time.now_ns as last_second
	_route(late) == "security_assessment"
	not late.allow
	next := transfer.decision with input as _ask(50000, 0, [], counts) with time.now_ns as new_year
	next.allow
	next.exports == {{"counter": "pipl_export", "exporter": "acme-china", "year": 2027, "individuals": 50000, "sensitive_individuals": 0, "route": "exempt"}}
	pipl_route.year == 2027 with time.now_ns as new_year
}

test_a_copy_names_its_exporter if {
	nameless := json.patch(data.datavisa.resources, [{"op": "remove", "path": "/cn-customer-profiles/controller"}])
	d := transfer.decision with input as _ask(10, 0, [], _none) with time.now_ns as _mid_2026 with data.datavisa.resources as nameless
	_codes(d) == {"exporter_unknown"}
	d.exports == set()
}

test_copies_inside_china_and_other_data_are_not_on_the_route if {
	inside := transfer.decision with input as {"resource": "cn-customer-profiles", "target_region": "aws:cn-northwest-1"} with time.now_ns as _mid_2026
	inside.allow
	inside.exports == set()
	eu := transfer.decision with input as {"resource": "eu-customer-analytics", "target_region": "aws:us-east-1", "evidence": ["scc"]} with time.now_ns as _mid_2026
	eu.allow
	eu.exports == set()
}

test_access_from_abroad_stays_on_the_cac_evidence if {
	ask := {"subject": "alice", "resource": "cn-customer-profiles", "actions": ["read"], "duration_s": 1200, "location": "DE", "reason": "INC-1"}
	bare := request.decision with input as ask with time.now_ns as _mid_2026
	not bare.allow
	routed := request.decision with input as object.union(ask, {"evidence": ["pipl_standard_contract"]}) with time.now_ns as _mid_2026
	not routed.allow
	flat := request.decision with input as object.union(ask, {"evidence": ["cac"]}) with time.now_ns as _mid_2026
	flat.allow
	flat.transfer.basis == "cac"
}

_transfer := {
	"id": "t1", "requester": "alice", "resource": "cn-customer-profiles", "actions": ["copy"],
	"duration_s": 3600, "location": "JP", "kind": "transfer", "target_region": "aws:ap-northeast-1",
	"importer": "", "evidence": [], "individuals": 40000, "sensitive_individuals": 0,
}

test_approval_judges_the_route_on_the_counts_of_now if {
	quiet := approval.decision with input as {"approver": "bob", "request": _transfer, "approvals": [], "export_counts": _counted(2026, 50000, 0)} with time.now_ns as _mid_2026
	quiet.allow
	quiet.exports == {{"counter": "pipl_export", "exporter": "acme-china", "year": 2026, "individuals": 40000, "sensitive_individuals": 0, "route": "exempt"}}

	# others' copies approved meanwhile pushed the year past 100,000
	crowded := approval.decision with input as {"approver": "bob", "request": _transfer, "approvals": [], "export_counts": _counted(2026, 60000, 0)} with time.now_ns as _mid_2026
	not crowded.allow
	"export_route_evidence_required" in _codes(crowded)

	# access requests carry no exports
	access := object.union(_transfer, {"kind": "access", "actions": ["read"]})
	plain := approval.decision with input as {"approver": "bob", "request": access, "approvals": []} with time.now_ns as _mid_2026
	plain.exports == set()
}

test_a_transfer_check_judges_the_route_as_when_it_was_approved if {
	held := object.union(_transfer, {"starts_ns": _mid_2026 - 1, "expires_ns": _mid_2026 + 3600000000000, "retention_s": null, "requester_kind": null})
	before_it := object.union(held, {"export_counts": _counted(2026, 50000, 0)})
	ok := transfer_check.decision with input as {"resource": held.resource, "target_region": held.target_region, "transfers": [before_it]} with time.now_ns as _mid_2026
	ok.allow
	undeclared := object.remove(held, ["individuals"])
	refused := transfer_check.decision with input as {"resource": held.resource, "target_region": held.target_region, "transfers": [undeclared]} with time.now_ns as _mid_2026
	_codes(refused) == {"individuals_required"}
}
