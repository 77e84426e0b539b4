# METADATA
# title: Requests by a foreign public authority
# description: |
#   A court, tribunal or administrative authority of a third country asks for data held in
#   a jurisdiction: modelled as a transfer (a copy to the region the authority receives it
#   in) that declares requester_kind foreign_public_authority. Where the data's
#   jurisdiction has a rule for such requests (data.datavisa.foreign_authority_requests,
#   by jurisdiction, then by class: non_personal or personal data), from the rule's date,
#   the request is refused unless each piece of its evidence is on file: in the EU an
#   international agreement (a mutual legal assistance treaty or similar) in force
#   between the requesting country and the Union or a Member State. For non-personal data
#   that is the Data Act (EU) 2023/2854 Art. 32, applicable from 2025-09-12; for personal
#   data GDPR Art. 48. An authority inside the data's jurisdiction is no foreign one. The
#   customer is told of every such request (the monitor's foreign_authority_request
#   alert, sent to the alert webhooks), refused or not.
package datavisa.foreign_authority

import data.datavisa.residency

# METADATA
# title: Requester kinds
# description: The kinds of requester a transfer may declare; none ("") is the organisation's own people.
kinds := {"foreign_public_authority"}

default _rules := {}

_rules := data.datavisa.foreign_authority_requests

_class(tags) := "personal" if "pd" in tags

else := "non_personal"

_started(rule) if not rule.from

_started(rule) if time.parse_ns("2006-01-02", rule.from) <= time.now_ns()

# METADATA
# title: Rule for a request
# description: |
#   The rule the data's jurisdiction has for a foreign authority asking for data of this
#   class (personal when tagged pd, else non-personal), in force now; undefined if none.
rule(ctx) := found if {
	found := _rules[ctx.jurisdiction][_class(ctx.tags)]
	_started(found)
}

# METADATA
# title: Evidence kinds
# description: The kinds of evidence the jurisdiction's rules for foreign authority requests name.
evidence_kinds(jurisdiction) := {kind |
	some found in object.get(_rules, jurisdiction, {})
	some kind in found.evidence
}

# METADATA
# title: Denials
# description: |
#   Why a copy asked by `requester_kind` ("" for none) is refused, as {code, field,
#   message}: an unknown kind (unknown_requester_kind), or a foreign authority's request
#   without the evidence its rule needs (foreign_authority_request).
denials(ctx, requester_kind) := {reason |
	requester_kind != ""
	not requester_kind in kinds
	msg := sprintf("%q is no requester kind (%s)", [requester_kind, concat(", ", sort(kinds))])
	reason := {"code": "unknown_requester_kind", "field": "requester_kind", "message": msg}
} | {reason |
	requester_kind == "foreign_public_authority"
	found := rule(ctx)
	not residency.inside(ctx.jurisdiction, ctx.place)
	missing := {kind | some kind in found.evidence; not kind in ctx.evidence}
	count(missing) > 0
	msg := sprintf("a foreign public authority's request for %s data held in %s is refused without %s on file: %s", [
		replace(_class(ctx.tags), "_", "-"), ctx.jurisdiction,
		concat(" + ", sort(missing)), found.law,
	])
	reason := {"code": "foreign_authority_request", "field": "evidence", "message": msg}
}
