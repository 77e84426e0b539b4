# METADATA
# title: Residency
# description: |
#   Whether, and on which basis, data held in one jurisdiction may be reached from (or
#   copied to) a place. Every decision that involves a location asks here, so the rules
#   live in one module and the data in jurisdictions.yaml.
#
#   A context describes one access or copy: {jurisdiction (of the data), tags (of the data),
#   place: {country, subdivision} (of the accessor, or of the target region), entity (the
#   employing or importing legal entity, or ""), person (true for a person, who may travel),
#   evidence (set of evidence kinds on file)}.
#
#   Bases, tried in this order: in_jurisdiction, same_entity_travel, adequacy, the
#   jurisdiction's safeguards (scc, bcr, pia, cac ...: the evidence on file covers one),
#   not_restricted; else none. An adequacy finding is a basis while its status is in_force
#   or under_appeal (GDPR Art. 45: a decision binds until struck down; the EU-US DPF was
#   upheld by the General Court on 2025-09-03, T-553/23, and is on appeal, C-703/25 P);
#   suspended, it is none, and what rested on it needs its fallback safeguard on file.
#   Remote viewing counts as a transfer; a person employed by an
#   entity established in the data's jurisdiction who travels does not, where the
#   jurisdiction says so; an unknown location is never inside and has no basis. Data
#   carrying a localised tag is reached only on the localisation's own terms; a tag a
#   government designated (designated_localisation, from its date) is not reached from
#   abroad at all.
package datavisa.residency

import data.datavisa.directory

_ns_per_day := 86400000000000

_first_bases := ["in_jurisdiction", "same_entity_travel", "adequacy"]

# METADATA
# title: Jurisdiction of a resource
# description: The jurisdiction whose rules govern the region the resource lives in.
jurisdiction(resource) := data.datavisa.regions[resource.region].jurisdiction

# METADATA
# title: Place of a location
# description: |
#   A location as {country, subdivision}: an ISO 3166-1 alpha-2 code (DE), an ISO 3166-2
#   subdivision (CA-QC), or anything else, such as "unknown", which is no place: its
#   country is "" and it is inside nothing.
place(location) := known if {
	known := data.datavisa.lookup.places[location]
} else := {"country": location, "subdivision": ""} if {
	regex.match(`^[A-Z]{2}$`, location)
} else := {"country": substring(location, 0, 2), "subdivision": location} if {
	regex.match(`^[A-Z]{2}-[A-Z0-9]{1,3}$`, location)
} else := {"country": "", "subdivision": ""}

# METADATA
# title: Place of a region
# description: Where a region is, as {country, subdivision}.
region_place(region) := {"country": region.country, "subdivision": object.get(region, "subdivision", "")}

# METADATA
# title: Inside a jurisdiction
# description: True when the place is one of the jurisdiction's countries or subdivisions.
inside(jurisdiction_id, where) if data.datavisa.lookup.inside[jurisdiction_id].countries[where.country]

inside(jurisdiction_id, where) if data.datavisa.lookup.inside[jurisdiction_id].subdivisions[where.subdivision]

# METADATA
# title: Employed in a jurisdiction
# description: True when the subject's employing entity is established in the jurisdiction.
employed_in(jurisdiction_id, subject) if inside(jurisdiction_id, _entity_place(subject.entity))

_entity_place(entity_id) := region_place(data.datavisa.entities[entity_id])

# METADATA
# title: Context of an access
# description: The residency context of a subject reaching a resource from a location.
context(resource, subject_id, location, evidence) := {
	"jurisdiction": jurisdiction(resource),
	"tags": {tag | some tag in resource.tags},
	"place": place(location),
	"entity": object.get(subject, "entity", ""),
	"person": object.get(subject, "kind", "") == "person",
	"evidence": {e | some e in evidence},
} if {
	subject := directory.entry(subject_id)
}

# METADATA
# title: Basis
# description: |
#   The first lawful basis for the context, or "none": bases(ctx)[0]. Every access check
#   asks this and most are answered by one of the first candidates, so those are tried one
#   at a time before the whole list is built.
basis(ctx) := "in_jurisdiction" if {
	_has_basis(ctx, "in_jurisdiction")
} else := "same_entity_travel" if {
	_has_basis(ctx, "same_entity_travel")
} else := "adequacy" if {
	_has_basis(ctx, "adequacy")
} else := first if {
	first := bases(ctx)[0]
} else := "none"

# METADATA
# title: Bases
# description: Every lawful basis for the context, most natural first.
bases(ctx) := [name | some name in _candidates(ctx); _has_basis(ctx, name)]

_candidates(ctx) := array.concat(array.concat(_first_bases, sort(_evidence_bases(ctx))), ["not_restricted"])

_evidence_bases(ctx) := ({name | some name, _ in object.get(_jurisdiction(ctx), "safeguards", {})} | {name |
	some rule in _localised(ctx)
	some name, _ in rule.remote_access
}) - {"not_restricted"}

# METADATA
# title: Cross-border
# description: |
#   True when the access or copy is a transfer: the place is outside the data's
#   jurisdiction (or unknown) and no same-entity travel makes it none.
cross_border(ctx) if {
	not _has_basis(ctx, "in_jurisdiction")
	not _has_basis(ctx, "same_entity_travel")
}

# METADATA
# title: Adequacy scope
# description: The scope of the adequacy finding the context relies on; null for a whole country.
adequacy_scope(ctx) := object.get(_adequacy(ctx), "scope", null)

# METADATA
# title: Known evidence
# description: |
#   The kinds of evidence the data's jurisdiction names: in its safeguards and, for data
#   its localisation rules hold, in their remote access alternatives.
known_evidence(ctx) := {kind |
	some safeguard in object.get(_jurisdiction(ctx), "safeguards", {})
	some kind in safeguard.evidence
} | {kind |
	some rule in _localised(ctx)
	some alternative in object.get(rule, "remote_access", {})
	some kind in alternative.evidence
}

# METADATA
# title: Known evidence, in words
# description: The kinds of evidence a jurisdiction knows, for a message that names them.
known_or_none(known) := sprintf("it knows: %s", [concat(", ", sort(known))]) if count(known) > 0

known_or_none(known) := "it knows none: no safeguard can lift its rules" if count(known) == 0

# METADATA
# title: Localised tags
# description: The localisation rules of the data's jurisdiction that its tags bring in.
localised(ctx) := _localised(ctx)

_jurisdiction(ctx) := data.datavisa.jurisdictions[ctx.jurisdiction]

_localised(ctx) := {rule |
	some tag in ctx.tags
	rule := data.datavisa.localisation[ctx.jurisdiction][tag]
} | _designated(ctx)

# Tags a government designated to stay inside, from the order's date (India, DPDP Rules
# 2025 r. 13(4), from 2027-05-13): a localisation with no way out.
_designated(ctx) := {rule |
	order := data.datavisa.designated_localisation[ctx.jurisdiction]
	_started(order)
	some tag in order.tags
	tag in ctx.tags
	rule := {"law": order.law, "remote_access": {}, "copies": {"allowed": false}}
}

_outside(ctx) if {
	ctx.place.country != ""
	not inside(ctx.jurisdiction, ctx.place)
}

_has_basis(ctx, "in_jurisdiction") if inside(ctx.jurisdiction, ctx.place)

_has_basis(ctx, "same_entity_travel") if {
	count(_localised(ctx)) == 0
	_outside(ctx)
	_jurisdiction(ctx).travel_exemption == true
	ctx.person
	inside(ctx.jurisdiction, _entity_place(ctx.entity))
}

_has_basis(ctx, "adequacy") if {
	count(_localised(ctx)) == 0
	_outside(ctx)
	_adequacy(ctx)
}

_has_basis(ctx, name) if {
	not name in _first_bases
	name != "not_restricted"
	count(_localised(ctx)) == 0
	_outside(ctx)
	safeguard := _jurisdiction(ctx).safeguards[name]
	_started(safeguard)
	_covered(safeguard, ctx.evidence)
}

_has_basis(ctx, "not_restricted") if {
	count(_localised(ctx)) == 0
	_outside(ctx)
	_jurisdiction(ctx).open_transfers == true
	not ctx.place.country in object.get(_jurisdiction(ctx), "restricted_destinations", [])
}

# Localised data: every localisation that applies must admit the basis, with its evidence.
_has_basis(ctx, name) if {
	not name in _first_bases
	count(_localised(ctx)) > 0
	_outside(ctx)
	every rule in _localised(ctx) {
		_covered(rule.remote_access[name], ctx.evidence)
	}
}

_covered(safeguard, evidence) if {
	every needed in safeguard.evidence {
		needed in evidence
	}
}

# The adequacy finding the context relies on: by the place's country, else by a whole
# jurisdiction the place is inside; in force today and within its scope.
_adequacy(ctx) := [finding |
	some finding in _findings(ctx)
	_in_force(finding)
	_in_scope(finding, ctx.entity)
][0]

# A suspended finding the context would otherwise rely on, for a message naming its fallback.
_suspended(ctx) := [finding |
	some finding in _findings(ctx)
	finding.status == "suspended"
	_in_scope(finding, ctx.entity)
][0]

_findings(ctx) := array.concat(
	[finding | finding := _jurisdiction(ctx).adequacy[ctx.place.country]],
	[finding |
		some other, finding in object.get(_jurisdiction(ctx), "adequate_jurisdictions", {})
		inside(other, ctx.place)
	],
)

# Under appeal is still in force: a court has not struck the decision down. Suspended is not.
_in_force(finding) if {
	_started(finding)
	_not_ended(finding)
	object.get(finding, "status", "in_force") != "suspended"
}

# An adequacy finding or a safeguard applies from its `from` date, when it has one.
_started(finding) if not finding.from

_started(finding) if time.parse_ns("2006-01-02", finding.from) <= time.now_ns()

_not_ended(finding) if not finding.until

_not_ended(finding) if time.now_ns() < time.parse_ns("2006-01-02", finding.until) + _ns_per_day

_in_scope(finding, _) if not finding.scope

_in_scope(finding, entity_id) if finding.scope in data.datavisa.entities[entity_id].frameworks

# METADATA
# title: Sectoral denials
# description: |
#   Why sectoral rules (ITAR, CJIS ...) keep this subject from this resource at this
#   location, as {code, message}: a clearance the subject lacks (clearance_required), or a
#   place outside the rule's locations (location_not_permitted). They hold inside the
#   data's jurisdiction too.
sectoral_denials(resource, subject_id, location) := {reason |
	some reason in _missing_clearances(resource, subject_id)
} | {reason |
	some tag in sectoral_outside(resource.tags, place(location))
	msg := sprintf("%s data (%s) may not be reached from %s", [tag, data.datavisa.sectoral_rules[tag].name, location])
	reason := {"code": "location_not_permitted", "message": msg}
}

_missing_clearances(resource, subject_id) := {reason |
	some tag in resource.tags
	rule := data.datavisa.sectoral_rules[tag]
	some needed in rule.requires_clearances
	not needed in object.get(directory.entry(subject_id), "clearances", [])
	msg := sprintf("%s data (%s) is only for subjects cleared %s: %s", [tag, rule.name, needed, rule.why])
	reason := {"code": "clearance_required", "message": msg}
}

# METADATA
# title: Sectoral rules broken by a place
# description: The tags whose sectoral rule does not let the data be reached from, or held in, the place.
sectoral_outside(tags, where) := {tag |
	some tag in tags
	rule := data.datavisa.sectoral_rules[tag]
	not where.country in rule.locations
}

# METADATA
# title: Reached from abroad
# description: |
#   True when the access comes from outside the data's jurisdiction: across a border, or by
#   an employee of the data's own entity travelling (no transfer, but approved as access from
#   abroad is, so travel is never treated worse nor better than a transfer).
from_abroad(ctx) if cross_border(ctx)

from_abroad(ctx) if basis(ctx) == "same_entity_travel"

# METADATA
# title: Why a place is not lawful
# description: |
#   The message of a denial because the tier accepts no basis `found` for the data in `ctx`
#   to be reached from `location`: the data's jurisdiction and its law, and what would make
#   the access lawful: the localisation's law and the evidence that alone lifts it (or that
#   none can: the data is localised), or the safeguards the tier accepts, with their law.
unlawful_message(ctx, tier, found, location) := sprintf("%s data held in %s (%s) may not be reached from %s: %s", [tier, ctx.jurisdiction, data.datavisa.jurisdictions[ctx.jurisdiction].name, location, _why_not(ctx, tier, found)])

_why_not(ctx, tier, found) := sprintf("%s; %s", [concat("; ", sort(laws)), _localised_way(ctx)]) if {
	found == "none"
	laws := {rule.law | some rule in localised(ctx)}
	count(laws) > 0
} else := sprintf("adequacy decision %s is suspended and its fallback, %s, is not on file; lawful with %s", [suspended.decision, suspended.fallback, _safeguard_way(ctx, tier)]) if {
	found == "none"
	suspended := _suspended(ctx)
} else := sprintf("no adequacy decision covers it and no safeguard is on file; lawful with %s", [_safeguard_way(ctx, tier)]) if {
	found == "none"
} else := sprintf("%s is not accepted for %s data", [found, tier])

_localised_way(ctx) := sprintf("reached from abroad only with %s", [concat(" or ", sort(ways))]) if {
	ways := {sprintf("evidence of %s", [concat(" + ", alternative.evidence)]) |
		some rule in localised(ctx)
		some alternative in object.get(rule, "remote_access", {})
	}
	count(ways) > 0
} else := "no evidence can make that lawful: the data is localised"

_safeguard_way(ctx, tier) := sprintf("evidence of %s", [concat(" or ", sort(ways))]) if {
	ways := {sprintf("%s (%s)", [concat(" + ", safeguard.evidence), safeguard.law]) |
		some name, safeguard in data.datavisa.jurisdictions[ctx.jurisdiction].safeguards
		name in data.datavisa.tiers[tier].bases
		_started(safeguard)
	}
	count(ways) > 0
} else := "no safeguard this tier accepts"
