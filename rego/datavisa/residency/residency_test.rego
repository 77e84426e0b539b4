package datavisa.residency_test

import data.datavisa.residency

# 2026-06-01T00:00:00Z: after the Brazil decision, before the UK one ends.
_mid_2026 := 1780272000000000000

# Resources the default bundle has no dataset for, one per remaining jurisdiction.
_extra := {
	"ca-synthetic": {"region": "azure:canadacentral", "tags": ["pd"]},
	"au-synthetic": {"region": "aws:ap-southeast-2", "tags": ["pd"]},
	"jp-synthetic": {"region": "aws:ap-northeast-1", "tags": ["pd"]},
	"kr-synthetic": {"region": "azure:koreacentral", "tags": ["pd"]},
	"sg-synthetic": {"region": "aws:ap-southeast-1", "tags": ["pd"]},
	"ae-synthetic": {"region": "azure:uaenorth", "tags": ["pd"]},
	"il-synthetic": {"region": "aws:il-central-1", "tags": ["pd"]},
	"za-synthetic": {"region": "azure:southafricanorth", "tags": ["pd"]},
	"cn-metrics": {"region": "aws:cn-north-1", "tags": []},
	"vn-synthetic": {"region": "onprem:hanoi-1", "tags": ["pd"]},
}

# The residency matrix: who, reaching which data, from where, with which evidence, gets
# which basis; and whether that is a cross-border transfer.
_matrix := [
	# EU: inside, EEA, travel, adequacy (whole, scoped, dated), safeguards, none
	{"r": "eu-customer-analytics", "s": "alice", "at": "DE", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "eu-customer-analytics", "s": "alice", "at": "FR", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "eu-customer-analytics", "s": "alice", "at": "NO", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "eu-customer-analytics", "s": "alice", "at": "US", "ev": [], "basis": "same_entity_travel", "xb": false},
	{"r": "eu-customer-analytics", "s": "alice", "at": "unknown", "ev": ["scc"], "basis": "none", "xb": true},
	{"r": "eu-customer-analytics", "s": "etl-eu", "at": "US", "ev": [], "basis": "none", "xb": true},
	{"r": "eu-customer-analytics", "s": "carol", "at": "US", "ev": [], "basis": "adequacy", "xb": true},
	{"r": "eu-customer-analytics", "s": "pat", "at": "US", "ev": [], "basis": "none", "xb": true},
	{"r": "eu-customer-analytics", "s": "pat", "at": "US", "ev": ["scc"], "basis": "scc", "xb": true},
	{"r": "eu-customer-analytics", "s": "kenji", "at": "JP", "ev": [], "basis": "adequacy", "xb": true},
	{"r": "eu-customer-analytics", "s": "liam", "at": "CA", "ev": [], "basis": "adequacy", "xb": true},
	{"r": "eu-customer-analytics", "s": "grace", "at": "GB", "ev": [], "basis": "adequacy", "xb": true},
	{"r": "eu-customer-analytics", "s": "rafael", "at": "BR", "ev": [], "basis": "adequacy", "xb": true},
	{"r": "eu-customer-analytics", "s": "wei", "at": "CN", "ev": [], "basis": "none", "xb": true},
	{"r": "eu-customer-analytics", "s": "wei", "at": "CN", "ev": ["bcr"], "basis": "bcr", "xb": true},
	# Switzerland: its own list, no travel exemption
	{"r": "ch-private-banking", "s": "heidi", "at": "CH", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "ch-private-banking", "s": "heidi", "at": "DE", "ev": [], "basis": "adequacy", "xb": true},
	{"r": "ch-private-banking", "s": "heidi", "at": "US", "ev": [], "basis": "none", "xb": true},
	{"r": "ch-private-banking", "s": "carol", "at": "US", "ev": [], "basis": "adequacy", "xb": true},
	{"r": "ch-private-banking", "s": "rafael", "at": "BR", "ev": ["scc"], "basis": "scc", "xb": true},
	# United Kingdom
	{"r": "uk-employee-records", "s": "grace", "at": "GB", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "uk-employee-records", "s": "heidi", "at": "FR", "ev": [], "basis": "adequacy", "xb": true},
	{"r": "uk-employee-records", "s": "grace", "at": "CN", "ev": [], "basis": "same_entity_travel", "xb": false},
	{"r": "uk-employee-records", "s": "carol", "at": "US", "ev": [], "basis": "adequacy", "xb": true},
	{"r": "uk-employee-records", "s": "wei", "at": "CN", "ev": [], "basis": "none", "xb": true},
	# United States: open, except countries of concern
	{"r": "us-crm-contacts", "s": "carol", "at": "US", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "us-crm-contacts", "s": "alice", "at": "DE", "ev": [], "basis": "not_restricted", "xb": true},
	{"r": "us-crm-contacts", "s": "wei", "at": "CN", "ev": ["scc"], "basis": "none", "xb": true},
	# Canada (PIPEDA) and Québec (Law 25): only Québec itself is inside Québec
	{"r": "ca-synthetic", "s": "liam", "at": "CA", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "ca-synthetic", "s": "alice", "at": "DE", "ev": [], "basis": "none", "xb": true},
	{"r": "ca-synthetic", "s": "alice", "at": "DE", "ev": ["scc"], "basis": "scc", "xb": true},
	{"r": "qc-member-directory", "s": "chloe", "at": "CA-QC", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "qc-member-directory", "s": "chloe", "at": "CA", "ev": [], "basis": "none", "xb": true},
	{"r": "qc-member-directory", "s": "liam", "at": "CA-ON", "ev": ["pia"], "basis": "pia", "xb": true},
	# Brazil
	{"r": "br-loyalty-members", "s": "rafael", "at": "BR", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "br-loyalty-members", "s": "alice", "at": "DE", "ev": [], "basis": "none", "xb": true},
	{"r": "br-loyalty-members", "s": "alice", "at": "DE", "ev": ["scc"], "basis": "scc", "xb": true},
	# China: personal data localised, CAC evidence only; other data open
	{"r": "cn-customer-profiles", "s": "wei", "at": "CN", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "cn-customer-profiles", "s": "alice", "at": "DE", "ev": ["scc", "bcr"], "basis": "none", "xb": true},
	{"r": "cn-customer-profiles", "s": "alice", "at": "DE", "ev": ["cac"], "basis": "cac", "xb": true},
	{"r": "cn-metrics", "s": "alice", "at": "DE", "ev": [], "basis": "not_restricted", "xb": true},
	# Russia: nothing leaves, whatever the evidence
	{"r": "ru-customer-register", "s": "alice", "at": "RU", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "ru-customer-register", "s": "alice", "at": "DE", "ev": ["scc", "bcr", "cac", "pia"], "basis": "none", "xb": true},
	# India: payment data may be processed abroad (copies are the transfer decision's)
	{"r": "in-upi-transactions", "s": "priya", "at": "IN", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "in-upi-transactions", "s": "alice", "at": "DE", "ev": [], "basis": "not_restricted", "xb": true},
	{"r": "in-upi-transactions", "s": "alice", "at": "unknown", "ev": [], "basis": "none", "xb": true},
	# Saudi Arabia: safeguards and a risk assessment
	{"r": "sa-patient-records", "s": "noura", "at": "SA", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "sa-patient-records", "s": "alice", "at": "DE", "ev": ["scc"], "basis": "none", "xb": true},
	{"r": "sa-patient-records", "s": "alice", "at": "DE", "ev": ["scc", "risk_assessment"], "basis": "scc", "xb": true},
	{"r": "sa-patient-records", "s": "alice", "at": "DE", "ev": ["bcr", "risk_assessment"], "basis": "bcr", "xb": true},
	{"r": "sa-patient-records", "s": "alice", "at": "DE", "ev": ["accreditation_certificate"], "basis": "none", "xb": true},
	{"r": "sa-patient-records", "s": "alice", "at": "DE", "ev": ["accreditation_certificate", "risk_assessment"], "basis": "accreditation", "xb": true},
	{"r": "sa-patient-records", "s": "alice", "at": "DE", "ev": ["risk_assessment"], "basis": "none", "xb": true},
	# Australia: My Health Record data never leaves; other personal data with a contract
	{"r": "au-my-health-records", "s": "jack", "at": "AU", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "au-my-health-records", "s": "jack", "at": "NZ", "ev": ["scc"], "basis": "none", "xb": true},
	{"r": "au-synthetic", "s": "jack", "at": "NZ", "ev": ["scc"], "basis": "scc", "xb": true},
	# Japan, Korea, Singapore, UAE, Israel, South Africa
	{"r": "jp-synthetic", "s": "kenji", "at": "JP", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "jp-synthetic", "s": "alice", "at": "DE", "ev": [], "basis": "adequacy", "xb": true},
	{"r": "jp-synthetic", "s": "carol", "at": "US", "ev": [], "basis": "none", "xb": true},
	{"r": "kr-synthetic", "s": "alice", "at": "KR", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "kr-synthetic", "s": "alice", "at": "DE", "ev": ["scc"], "basis": "scc", "xb": true},
	{"r": "sg-synthetic", "s": "alice", "at": "SG", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "sg-synthetic", "s": "alice", "at": "DE", "ev": [], "basis": "none", "xb": true},
	{"r": "ae-synthetic", "s": "alice", "at": "AE", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "ae-synthetic", "s": "alice", "at": "DE", "ev": ["bcr"], "basis": "none", "xb": true},
	{"r": "il-synthetic", "s": "alice", "at": "IL", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "il-synthetic", "s": "alice", "at": "DE", "ev": [], "basis": "adequacy", "xb": true},
	{"r": "il-synthetic", "s": "carol", "at": "US", "ev": ["scc"], "basis": "scc", "xb": true},
	{"r": "za-synthetic", "s": "alice", "at": "ZA", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "za-synthetic", "s": "alice", "at": "DE", "ev": [], "basis": "none", "xb": true},
	# Vietnam: reaching data stored there from abroad is a transfer, its dossier filed after
	{"r": "vn-synthetic", "s": "alice", "at": "VN", "ev": [], "basis": "in_jurisdiction", "xb": false},
	{"r": "vn-synthetic", "s": "alice", "at": "DE", "ev": [], "basis": "tia", "xb": true},
]

_ctx(c) := residency.context(_resource(c.r), c.s, c.at, c.ev)

_resource(id) := data.datavisa.resources[id]

_resource(id) := _extra[id]

_cross_border(ctx) if residency.cross_border(ctx)

default _cross_border(_) := false

test_residency_matrix if {
	count(_matrix) >= 40
	every c in _matrix {
		residency.basis(_ctx(c)) == c.basis with time.now_ns as _mid_2026
		_cross_border(_ctx(c)) == c.xb
	}
}

test_matrix_touches_every_jurisdiction if {
	touched := {residency.jurisdiction(_resource(c.r)) | some c in _matrix}
	every id, _ in data.datavisa.jurisdictions {
		id in touched
	}
}

test_adequacy_follows_its_dates if {
	grace := residency.context(_resource("eu-customer-analytics"), "grace", "GB", [])
	residency.basis(grace) == "adequacy" with time.now_ns as time.parse_ns("2006-01-02", "2031-12-27")
	residency.basis(grace) == "none" with time.now_ns as time.parse_ns("2006-01-02", "2031-12-28")
	rafael := residency.context(_resource("eu-customer-analytics"), "rafael", "BR", [])
	residency.basis(rafael) == "none" with time.now_ns as time.parse_ns("2006-01-02", "2026-01-25")
	residency.basis(rafael) == "adequacy" with time.now_ns as time.parse_ns("2006-01-02", "2026-01-26")
	carol := residency.context(_resource("ch-private-banking"), "carol", "US", [])
	residency.basis(carol) == "none" with time.now_ns as time.parse_ns("2006-01-02", "2024-09-14")
}

test_adequacy_scope_is_reported if {
	carol := residency.context(_resource("eu-customer-analytics"), "carol", "US", [])
	residency.adequacy_scope(carol) == "eu_us_dpf" with time.now_ns as _mid_2026
	grace := residency.context(_resource("eu-customer-analytics"), "grace", "GB", [])
	residency.adequacy_scope(grace) == null with time.now_ns as _mid_2026
}

test_places if {
	residency.place("DE") == {"country": "DE", "subdivision": ""}
	residency.place("CA-QC") == {"country": "CA", "subdivision": "CA-QC"}
	residency.place("unknown") == {"country": "", "subdivision": ""}
	residency.place("de") == {"country": "", "subdivision": ""}

	# codes the data names are looked up (data.datavisa.lookup.places); others are parsed
	residency.place("QQ") == {"country": "QQ", "subdivision": ""}
	residency.place("DE-BY") == {"country": "DE", "subdivision": "DE-BY"}
}

test_unknown_location_is_inside_nothing if {
	every id, _ in data.datavisa.jurisdictions {
		not residency.inside(id, residency.place("unknown"))
	}
}

test_employment_follows_the_entity if {
	residency.employed_in("EU", data.datavisa.subjects.alice)
	not residency.employed_in("EU", data.datavisa.subjects.carol)
	residency.employed_in("QC", data.datavisa.subjects.chloe)
	not residency.employed_in("QC", data.datavisa.subjects.liam)
}

test_sectoral_rules if {
	itar := data.datavisa.resources["us-itar-designs"]
	cjis := data.datavisa.resources["us-cjis-records"]
	residency.sectoral_denials(itar, "ursula", "US") == set()
	{r.code | some r in residency.sectoral_denials(itar, "viktor", "US")} == {"clearance_required"}
	{r.code | some r in residency.sectoral_denials(itar, "ursula", "DE")} == {"location_not_permitted"}
	residency.sectoral_denials(cjis, "jade", "US") == set()
	{r.code | some r in residency.sectoral_denials(cjis, "carol", "US")} == {"clearance_required"}
	{r.code | some r in residency.sectoral_denials(cjis, "nobody", "unknown")} == {"clearance_required", "location_not_permitted"}
	residency.sectoral_outside(["itar", "pd"], residency.place("GB")) == {"itar"}
}

test_travel_and_transfers_are_both_from_abroad_and_home_is_not if {
	at_home := residency.context(data.datavisa.resources["eu-customer-analytics"], "alice", "DE", [])
	travelling := residency.context(data.datavisa.resources["eu-customer-analytics"], "alice", "US", [])
	transfer := residency.context(data.datavisa.resources["eu-customer-analytics"], "carol", "US", [])
	not residency.from_abroad(at_home)
	residency.from_abroad(travelling)
	residency.from_abroad(transfer)
}

_suspend_us := {"decision": "(EU) 2023/1795", "from": "2023-07-10", "scope": "eu_us_dpf", "status": "suspended", "fallback": "scc"}

test_an_adequacy_under_appeal_is_still_a_basis if {
	data.datavisa.jurisdictions.EU.adequacy.US.status == "under_appeal"
	carol := residency.context(_resource("eu-customer-analytics"), "carol", "US", [])
	residency.basis(carol) == "adequacy" with time.now_ns as _mid_2026
}

test_a_suspended_adequacy_switches_to_its_fallback if {
	carol := residency.context(_resource("eu-customer-analytics"), "carol", "US", [])
	residency.basis(carol) == "none" with data.datavisa.jurisdictions.EU.adequacy.US as _suspend_us
		with time.now_ns as _mid_2026
	with_scc := residency.context(_resource("eu-customer-analytics"), "carol", "US", ["scc"])
	residency.basis(with_scc) == "scc" with data.datavisa.jurisdictions.EU.adequacy.US as _suspend_us
		with time.now_ns as _mid_2026
	msg := residency.unlawful_message(carol, "confidential", "none", "US") with data.datavisa.jurisdictions.EU.adequacy.US as _suspend_us
		with time.now_ns as _mid_2026
	contains(msg, "adequacy decision (EU) 2023/1795 is suspended and its fallback, scc, is not on file")

	# pat's employer holds no DPF certification: the suspension is not what stops him
	pat := residency.context(_resource("eu-customer-analytics"), "pat", "US", [])
	not contains(residency.unlawful_message(pat, "confidential", "none", "US"), "suspended") with data.datavisa.jurisdictions.EU.adequacy.US as _suspend_us
		with time.now_ns as _mid_2026
}

test_every_fallback_is_a_safeguard_of_its_jurisdiction if {
	every jurisdiction in data.datavisa.jurisdictions {
		every _, finding in object.union(object.get(jurisdiction, "adequacy", {}), object.get(jurisdiction, "adequate_jurisdictions", {})) {
			jurisdiction.safeguards[finding.fallback]
		}
	}
}

test_saudi_safeguards_apply_from_the_amended_transfer_regulation if {
	with_scc := residency.context(_resource("sa-patient-records"), "alice", "DE", ["scc", "risk_assessment"])
	residency.basis(with_scc) == "none" with time.now_ns as time.parse_ns("2006-01-02", "2024-08-31")
	residency.basis(with_scc) == "scc" with time.now_ns as time.parse_ns("2006-01-02", "2024-09-01")
	without := residency.context(_resource("sa-patient-records"), "alice", "DE", ["scc"])
	msg := residency.unlawful_message(without, "confidential", "none", "DE") with time.now_ns as _mid_2026
	contains(msg, "accreditation_certificate + risk_assessment (PDPL Art. 29; Transfer Regulation as amended 2024-09-01, Art. 4: a certificate of accreditation")
	contains(msg, "scc + risk_assessment")
	contains(msg, "bcr + risk_assessment")
	before := residency.unlawful_message(without, "confidential", "none", "DE") with time.now_ns as time.parse_ns("2006-01-02", "2024-08-31")
	contains(before, "lawful with no safeguard this tier accepts")
}

_in_pd := {"region": "aws:ap-south-1", "tags": ["pd"]}

_duties_from := time.parse_ns("2006-01-02", "2027-05-13")

_day_before_duties := time.parse_ns("2006-01-02", "2027-05-12")

test_india_designates_no_category_yet_and_rbi_stays_as_it_is if {
	data.datavisa.designated_localisation.IN.tags == []
	data.datavisa.designated_localisation.IN.from == "2027-05-13"
	upi := residency.context(_resource("in-upi-transactions"), "alice", "DE", [])
	residency.basis(upi) == "not_restricted" with time.now_ns as _duties_from
	pd := residency.context(_in_pd, "alice", "DE", [])
	residency.basis(pd) == "not_restricted" with time.now_ns as _duties_from
	{rule.law | some rule in residency.localised(upi)} == {data.datavisa.localisation.IN.payment.law} with time.now_ns as _duties_from
}

test_a_designated_category_stays_in_india_from_the_dpdp_duties if {
	pd := residency.context(_in_pd, "alice", "DE", [])
	residency.basis(pd) == "not_restricted" with data.datavisa.designated_localisation.IN.tags as ["pd"]
		with time.now_ns as _day_before_duties
	residency.basis(pd) == "none" with data.datavisa.designated_localisation.IN.tags as ["pd"]
		with time.now_ns as _duties_from
	msg := residency.unlawful_message(pd, "confidential", "none", "DE") with data.datavisa.designated_localisation.IN.tags as ["pd"]
		with time.now_ns as _duties_from
	contains(msg, "DPDP Rules 2025 r. 13(4) (notified 2025-11-13, in force from 2027-05-13)")
	contains(msg, "no evidence can make that lawful")

	# designated on top of RBI's: payment data processed abroad no more
	upi := residency.context(_resource("in-upi-transactions"), "alice", "DE", [])
	residency.basis(upi) == "none" with data.datavisa.designated_localisation.IN.tags as ["payment"]
		with time.now_ns as _duties_from
	inside := residency.context(_in_pd, "priya", "IN", [])
	residency.basis(inside) == "in_jurisdiction" with data.datavisa.designated_localisation.IN.tags as ["pd"]
		with time.now_ns as _duties_from
}

test_vietnam_reached_from_abroad_is_a_transfer_from_the_pdp_law if {
	abroad := residency.context(_extra["vn-synthetic"], "alice", "DE", [])
	residency.basis(abroad) == "none" with time.now_ns as time.parse_ns("2006-01-02", "2025-12-31")
	residency.basis(abroad) == "tia" with time.now_ns as time.parse_ns("2006-01-02", "2026-01-01")
	residency.cross_border(abroad)
	msg := residency.unlawful_message(abroad, "confidential", "none", "DE") with time.now_ns as time.parse_ns("2006-01-02", "2025-12-31")
	contains(msg, "no safeguard this tier accepts")
}
