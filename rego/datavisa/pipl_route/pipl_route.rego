# METADATA
# title: China's export route for personal information
# description: |
#   Which route a copy of Chinese personal information abroad takes, by how many
#   individuals its exporter has sent abroad since 1 January (Provisions on Promoting and
#   Regulating Cross-Border Data Flows, CAC, 2024-03-22, Art. 5(4), 7 and 8; the CAC/SAMR
#   Measures for Personal Information Protection Certification for Cross-Border Transfer,
#   from 2026-01-01): exempt below 100,000 individuals with none sensitive; the standard
#   contract or certification from 100,000 individuals or any sensitive one; a CAC security
#   assessment from 1,000,000 individuals or 10,000 sensitive ones, or for a critical
#   information infrastructure operator whatever the count. Policy data,
#   data.datavisa.pipl_export: the jurisdiction and tags it holds, from its date, the
#   calendar year's timezone, the routes in order with their thresholds, evidence and law.
#
#   A copy declares how many individuals' personal information it carries (individuals,
#   all of them) and how many of those with sensitive personal information
#   (sensitive_individuals). The engine keeps each exporter's count per calendar year
#   (export_counts, from the store) and adds a copy to it when the copy is approved; the
#   route is picked from that count plus this copy, so splitting an export into small
#   copies reaches the same route as one. The exporter is the data's controller
#   (resources.*.controller). The year is the decision point's, in the route's timezone
#   (Asia/Shanghai): the count starts again on 1 January there.
#
#   export_counts, as the decisions take them: [{counter: "pipl_export", exporter, year,
#   individuals, sensitive_individuals}] (the store's yearly counts).
package datavisa.pipl_route

import data.datavisa.residency

default _export := {}

_export := data.datavisa.pipl_export

_counter := "pipl_export"

# METADATA
# title: In force
# description: |
#   True from the route's date (policy data `from`) in the route's timezone, by the
#   decision point's clock: 1 January 2026 begins at 16:00 UTC on 31 December in Shanghai.
in_force if _today >= _export.from

# Today's date in the route's timezone; ISO dates compare as text.
_today := time.format([time.now_ns(), _export.timezone, "2006-01-02"])

# METADATA
# title: Applies
# description: |
#   True when a copy in `ctx` (a residency context) is on the route: in force, the data
#   held in its jurisdiction and carrying one of its tags, the copy leaving it.
applies(ctx) if {
	in_force
	ctx.jurisdiction == _export.jurisdiction
	some tag in _export.tags
	tag in ctx.tags
	residency.cross_border(ctx)
}

# METADATA
# title: Calendar year
# description: The calendar year now in the route's timezone (Asia/Shanghai), by the decision point's clock.
year := time.date([time.now_ns(), _export.timezone])[0]

# METADATA
# title: Exporter
# description: The legal entity that exports the resource's data (its controller), or "".
exporter(resource) := object.get(resource, "controller", "")

# METADATA
# title: Basis
# description: The basis a copy on its route rests on, as the tiers name it.
basis := _export.basis

# METADATA
# title: Evidence kinds
# description: The evidence the routes name, known for data held in `jurisdiction_id`.
evidence_kinds(jurisdiction_id) := {kind |
	jurisdiction_id == _export.jurisdiction
	some route in _export.routes
	some safeguard in route.safeguards
	some kind in safeguard.evidence
}

_count(value) if {
	is_number(value)
	value >= 0
	floor(value) == value
}

_declared(ask) if {
	_count(ask.individuals)
	_count(ask.sensitive_individuals)
	ask.sensitive_individuals <= ask.individuals
}

_ciio(resource) if resource.ciio == true

_ciio(resource) if data.datavisa.entities[exporter(resource)].ciio == true

# The exporter's count this calendar year, this copy included.
_totals(resource, ask, counts) := {field: total |
	some field in ["individuals", "sensitive_individuals"]
	total := ask[field] + _counted(resource, counts, field)
}

_counted(resource, counts, field) := sum([row[field] |
	some row in counts
	row.counter == _counter
	row.exporter == exporter(resource)
	row.year == year
])

_reaches(route, resource, _) if {
	route.ciio == true
	_ciio(resource)
}

_reaches(route, _, totals) if totals.individuals >= route.from_individuals

_reaches(route, _, totals) if totals.sensitive_individuals >= route.from_sensitive_individuals

_reaches(route, _, _) if {
	not route.ciio
	not route.from_individuals
	not route.from_sensitive_individuals
}

# METADATA
# title: Route
# description: |
#   The route of a copy of `resource` declaring `ask` ({individuals,
#   sensitive_individuals}), given the store's `counts`: the first in order whose
#   threshold the year's count, this copy included, reaches.
route(resource, ask, counts) := [name |
	some name in _export.order
	_reaches(_export.routes[name], resource, _totals(resource, ask, counts))
][0]

_lifted(name, evidence) if {
	some safeguard in _export.routes[name].safeguards
	every needed in safeguard.evidence {
		needed in evidence
	}
}

# METADATA
# title: Exports
# description: |
#   What a copy of `resource` in `ctx` declaring `ask` adds to its exporter's yearly
#   count when approved, as {counter, exporter, year, individuals, sensitive_individuals,
#   route}: nothing when it is not on the route or does not say what it carries.
exports(resource, ctx, ask, counts) := {{
	"counter": _counter,
	"exporter": exporter(resource),
	"year": year,
	"individuals": ask.individuals,
	"sensitive_individuals": ask.sensitive_individuals,
	"route": route(resource, ask, counts),
} |
	applies(ctx)
	exporter(resource) != ""
	_declared(ask)
}

# METADATA
# title: Denials
# description: |
#   Why a copy of `resource` in `ctx` declaring `ask` is refused on the route, given the
#   store's `counts`: its data names no exporter (exporter_unknown), it does not say how
#   many individuals it carries (individuals_required, sensitive_individuals_required,
#   sensitive_exceeds_individuals), or the route the year's count reaches with it needs
#   evidence that is not on file (export_route_evidence_required).
denials(resource, ctx, ask, counts) := (({reason |
	applies(ctx)
	exporter(resource) == ""
	msg := sprintf("the data names no controller (resources.*.controller), whose yearly count of individuals picks the route of this copy: %s, from %s", [_export.name, _export.from])
	reason := {"code": "exporter_unknown", "field": "resource", "message": msg}
} | {reason |
	applies(ctx)
	some field in ["individuals", "sensitive_individuals"]
	not _count(object.get(ask, field, null))
	msg := sprintf("a copy of personal information out of %s says how many individuals it carries (%s: a whole number, 0 or more), which picks its route: %s, from %s", [_export.jurisdiction, field, _export.name, _export.from])
	reason := {"code": sprintf("%s_required", [field]), "field": field, "message": msg}
}) | {reason |
	applies(ctx)
	_count(ask.individuals)
	_count(ask.sensitive_individuals)
	ask.sensitive_individuals > ask.individuals
	msg := sprintf("%d individuals with sensitive personal information, more than the %d individuals the copy carries in all", [ask.sensitive_individuals, ask.individuals])
	reason := {"code": "sensitive_exceeds_individuals", "field": "sensitive_individuals", "message": msg}
}) | {reason |
	applies(ctx)
	exporter(resource) != ""
	_declared(ask)
	name := route(resource, ask, counts)
	not _lifted(name, ctx.evidence)
	totals := _totals(resource, ask, counts)
	msg := sprintf("%s's exports of personal information in %d (calendar year in %s), this copy included, reach %d individuals, %d with sensitive personal information%s: that is the %s route, and none of its evidence is on file (%s): %s", [
		exporter(resource), year, _export.timezone, totals.individuals, totals.sensitive_individuals,
		_ciio_note(resource), replace(name, "_", " "), _ways(name), _export.routes[name].law,
	])
	reason := {"code": "export_route_evidence_required", "field": "evidence", "message": msg}
}

_ciio_note(resource) := ", by a critical information infrastructure operator" if _ciio(resource)

else := ""

_ways(name) := concat(" or ", sort({concat(" + ", safeguard.evidence) | some safeguard in _export.routes[name].safeguards}))
