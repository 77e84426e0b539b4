# METADATA
# title: Transfer decision
# description: |
#   May data be copied or replicated from one region to another, and which approvals does
#   the copy need? The data is a named resource (its region, tier and tags), or described
#   in the input. The target region's place is judged like an accessor's location, with
#   the importing entity (the one operating the target) standing in for the employer;
#   nobody travels. Where the data's tags are localised, the localisation's copy rules
#   decide: never (copy_not_permitted), only with evidence, or only as a temporary copy
#   deleted within max_retention_s. Sectoral rules keep tagged data in their countries.
#   A replication route (data.datavisa.transfer_rules.routes[source][target].bases)
#   lets copies along it rest on bases the tier does not accept for access; the source
#   jurisdiction may ask for more approvals (transfer_rules.approvals_by_jurisdiction).
#   Bulk US sensitive data follows the US Data Security Program (datavisa.us_bulk_data)
#   wherever it is held: to a covered importer or a country of concern, brokerage is
#   refused outright and other copies need the evidence of a restricted transaction.
#
#   A copy a foreign public authority asks for (requester_kind foreign_public_authority)
#   follows datavisa.foreign_authority too (EU Data Act Art. 32, GDPR Art. 48).
#
#   Chinese personal information leaving China follows datavisa.pipl_route from its date
#   (2026-01-01): the copy says how many individuals it carries, and the route its
#   exporter's yearly count reaches with it (exempt, standard contract or certification,
#   CAC security assessment) decides its evidence instead of the localisation's flat copy
#   rule (the rule that names the route gives way; access from abroad keeps its own).
#
#   A reason concerning one field of the ask names it (field: resource, target_region,
#   importer, evidence, keep, requester_kind), as the API and the CLI call it.
#
#   Input: {resource, target_region, evidence: [string] (optional), importer: entity id
#   (optional), retention_s (optional: seconds the copy is kept; absent = permanent),
#   requester_kind (optional: foreign_public_authority when such an authority asks),
#   individuals and sensitive_individuals (optional: how many individuals' personal
#   information the copy carries, and of those with sensitive personal information),
#   export_counts (optional: the store's yearly counts, datavisa.pipl_route)}
#   or, without a resource, {source_region, tier, tags: [string], target_region, ...}.
#   Output: decision = {allow, reasons: [{code, message}], cross_border, basis (as for
#   the request decision), scope (of the adequacy finding, or null), approvals_required:
#   [{group, count}], max_retention_s (how long a copy may be kept, or null for no limit),
#   exports (what the copy adds to its exporter's yearly counts when approved:
#   [{counter, exporter, year, individuals, sensitive_individuals, route}])}
package datavisa.transfer

import data.datavisa.foreign_authority
import data.datavisa.pipl_route
import data.datavisa.residency
import data.datavisa.us_bulk_data

_data := data.datavisa.resources[input.resource] if input.resource

_data := {"region": input.source_region, "tier": input.tier, "tags": object.get(input, "tags", [])} if {
	not input.resource
}

_source := data.datavisa.regions[_data.region]

_target := data.datavisa.regions[input.target_region]

_tier := data.datavisa.tiers[_data.tier]

_ctx := {
	"jurisdiction": _source.jurisdiction,
	"tags": {tag | some tag in _data.tags},
	"place": residency.region_place(_target),
	"entity": object.get(input, "importer", ""),
	"person": false,
	"evidence": {e | some e in object.get(input, "evidence", [])},
}

# A copy on China's export route rests on the route's basis once its evidence is on file.
_basis := pipl_route.basis if {
	_routed
	count(route_denials) == 0
} else := "none" if {
	_routed
} else := residency.basis(_ctx)

_routed if pipl_route.applies(_ctx)

_ask := {
	"individuals": object.get(input, "individuals", null),
	"sensitive_individuals": object.get(input, "sensitive_individuals", null),
}

# METADATA
# title: Export route denials
# description: |
#   Why the copy is refused on China's export route (datavisa.pipl_route), given the
#   store's yearly counts (input.export_counts): asked again when a transfer is approved.
default route_denials := set()

route_denials := pipl_route.denials(_data, _ctx, _ask, object.get(input, "export_counts", []))

# METADATA
# title: Exports
# description: What the copy adds to its exporter's yearly counts when it is approved (datavisa.pipl_route).
default exports := set()

exports := pipl_route.exports(_data, _ctx, _ask, object.get(input, "export_counts", []))

# The localisation's copy evidence, unless the rule names the export route and it decides.
_copy_evidence(copies) := [] if {
	copies.route == "pipl_export"
	_routed
} else := object.get(copies, "evidence", [])

_copies := {rule.copies | some rule in residency.localised(_ctx)}

_retention_limits := {c.max_retention_s | some c in _copies; c.max_retention_s}

default _rules := {}

_rules := data.datavisa.transfer_rules

_route_bases := {basis | some basis in _rules.routes[_data.region][input.target_region].bases}

_known_evidence := (((residency.known_evidence(_ctx) | us_bulk_data.evidence_kinds(_data)) | foreign_authority.evidence_kinds(_source.jurisdiction)) | pipl_route.evidence_kinds(_source.jurisdiction)) | {kind |
	some copies in _copies
	some kind in object.get(copies, "evidence", [])
}

# METADATA
# title: Allow
# description: True when no rule denies the copy.
default allow := false

allow if count(deny) == 0

# METADATA
# title: Denial reasons
# description: Each reason the copy is refused, as {code, message}.
deny contains {"code": "unknown_resource", "field": "resource", "message": msg} if {
	input.resource
	not data.datavisa.resources[input.resource]
	msg := sprintf("no resource named %q", [input.resource])
}

deny contains {"code": "unknown_region", "field": field, "message": msg} if {
	some field, region in {"source_region": _data.region, "target_region": input.target_region}
	not data.datavisa.regions[region]
	msg := sprintf("no region named %q", [region])
}

deny contains {"code": "unknown_importer", "field": "importer", "message": msg} if {
	object.get(input, "importer", "") != ""
	not data.datavisa.entities[input.importer]
	msg := sprintf("no legal entity named %q (entities)", [input.importer])
}

deny contains {"code": "same_region", "field": "target_region", "message": msg} if {
	_data.region == input.target_region
	msg := sprintf("the data is already in %s: name another target region", [input.target_region])
}

deny contains {"code": "unknown_evidence", "field": "evidence", "message": msg} if {
	_source
	some kind in object.get(input, "evidence", [])
	not kind in _known_evidence
	msg := sprintf("%q is no evidence the law of %s knows (%s)", [kind, _source.jurisdiction, residency.known_or_none(_known_evidence)])
}

deny contains {"code": "unknown_tier", "message": msg} if {
	not data.datavisa.tiers[_data.tier]
	msg := sprintf("no tier named %q", [_data.tier])
}

deny contains {"code": "transfer_not_permitted", "field": "target_region", "message": msg} if {
	_tier.residency_checked
	not _basis in _tier.bases
	not _basis in _route_bases
	count(route_denials) == 0 # the route's own reasons say why
	msg := sprintf("%s data held in %s may not be copied to %s (basis: %s)", [_data.tier, _source.jurisdiction, input.target_region, _basis])
}

deny contains {"code": "copy_not_permitted", "field": "target_region", "message": msg} if {
	residency.cross_border(_ctx)
	some rule in residency.localised(_ctx)
	not rule.copies.allowed
	msg := sprintf("no copy may be kept outside %s: %s", [_source.jurisdiction, rule.law])
}

deny contains {"code": "evidence_required", "field": "evidence", "message": msg} if {
	residency.cross_border(_ctx)
	some copies in _copies
	some needed in _copy_evidence(copies)
	not needed in _ctx.evidence
	msg := sprintf("a copy outside %s needs %s evidence on file", [_source.jurisdiction, needed])
}

deny contains {"code": "retention_exceeds_localisation_max", "field": "keep", "message": msg} if {
	residency.cross_border(_ctx)
	some limit in _retention_limits
	object.get(input, "retention_s", limit + 1) > limit
	msg := sprintf("a copy outside %s must be deleted within %ds; keep it at most that long", [_source.jurisdiction, limit])
}

deny contains {"code": "retention_invalid", "field": "keep", "message": "a copy must be kept for a positive time"} if {
	input.retention_s <= 0
}

deny contains {"code": "transfer_not_permitted", "field": "target_region", "message": msg} if {
	some tag in residency.sectoral_outside(_data.tags, residency.region_place(_target))
	msg := sprintf("%s data (%s) must stay in %s", [tag, data.datavisa.sectoral_rules[tag].name, concat(", ", data.datavisa.sectoral_rules[tag].locations)])
}

deny contains reason if {
	input.resource
	_target
	some reason in us_bulk_data.copy_denials(_data, residency.region_place(_target), object.get(input, "importer", ""), _ctx.evidence)
}

deny contains reason if {
	_target
	some reason in route_denials
}

deny contains reason if {
	_target
	some reason in foreign_authority.denials(_ctx, object.get(input, "requester_kind", ""))
}

# METADATA
# title: Cross-border
# description: True when the copy leaves the data's jurisdiction.
default cross_border := false

cross_border := residency.cross_border(_ctx)

# METADATA
# title: Approvals required
# description: |
#   The tier's transfer approvals, plus its cross-border approvals (the data protection
#   officer of the source jurisdiction) when personal data leaves it, plus what the
#   source jurisdiction asks of every copy (transfer_rules.approvals_by_jurisdiction).
default approvals_required := []

approvals_required := array.concat(
	array.concat(_tier.transfer_approvals, _cross_border_approvals),
	_jurisdiction_approvals,
)

default _jurisdiction_approvals := []

_jurisdiction_approvals := _rules.approvals_by_jurisdiction[_source.jurisdiction]

default _cross_border_approvals := []

_cross_border_approvals := _tier.cross_border_approvals if {
	"pd" in _data.tags
	cross_border
}

# METADATA
# title: Maximum retention
# description: How long a copy outside the jurisdiction may be kept, in seconds; null for no limit.
default max_retention_s := null

max_retention_s := min(_retention_limits) if {
	cross_border
	count(_retention_limits) > 0
}

default _basis_or_none := "none"

_basis_or_none := _basis

default _scope := null

_scope := residency.adequacy_scope(_ctx) if _basis == "adequacy"

# METADATA
# title: Decision
# description: The whole answer for pipelines and the engine.
decision := {
	"allow": allow,
	"reasons": deny,
	"cross_border": cross_border,
	"basis": _basis_or_none,
	"scope": _scope,
	"approvals_required": approvals_required,
	"max_retention_s": max_retention_s,
	"exports": exports,
}
