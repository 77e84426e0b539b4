# METADATA
# title: Filings due after a transfer
# description: |
#   A law may let a transfer happen first and want a filing with the regulator within a
#   time of the exporter's first one: Vietnam's Personal Data Protection Law 91/2025/QH15
#   and Decree 356/2025 (from 2026-01-01) want the cross-border transfer impact
#   assessment dossier filed within 60 days of the first transfer. Policy data,
#   data.datavisa.filing_deadlines, by id: the jurisdiction and data tags whose transfer
#   (access from abroad included) starts it, from its date, within_s to file, the
#   evidence it is (its name makes the overdue reason's code: <evidence>_overdue), and
#   the law. The exporter is the data's controller (resources.*.controller, an entity).
#
#   The engine keeps one deadline per filing and exporter: it starts when a grant or
#   transfer that `started` names becomes active, the first time (due then plus within_s),
#   and ends when the filing is recorded. Until it is, once overdue by the decision
#   point's clock, every further transfer of such data by that exporter is refused.
#
#   Input of the decision (recording a filing): {actor, action: record, filing, exporter,
#   actor_role (optional: the API token's role)}. Output: decision = {allow, reasons:
#   [{code, message, field?}]}: the data protection officers (role dpo) and admins may
#   record one.
package datavisa.filing

import data.datavisa.directory
import data.datavisa.residency

default _deadlines := {}

_deadlines := data.datavisa.filing_deadlines

_started(deadline) if time.parse_ns("2006-01-02", deadline.from) <= time.now_ns()

_format(ns) := time.format([ns, "UTC", "2006-01-02T15:04:05Z07:00"])

# METADATA
# title: Exporter
# description: The legal entity that exports the resource's data (its controller), or "".
exporter(resource) := object.get(resource, "controller", "")

# METADATA
# title: Filings a transfer starts
# description: |
#   The filing deadlines a transfer of `resource` in `ctx` (a residency context) starts,
#   or continues, as {filing, exporter, within_s}: where it crosses the border of the
#   deadline's jurisdiction with data carrying one of its tags, from its date.
started(resource, ctx) := {{"filing": id, "exporter": exporter(resource), "within_s": deadline.within_s} |
	residency.cross_border(ctx)
	some id, deadline in _deadlines
	deadline.jurisdiction == ctx.jurisdiction
	some tag in deadline.tags
	tag in ctx.tags
	_started(deadline)
}

# METADATA
# title: Denials
# description: |
#   Why a transfer of `resource` in `ctx` is refused, given the store's `open` deadlines
#   ([{filing, exporter, first_transfer_id, first_transfer_ns, due_ns}], those not
#   filed): its data names no exporter (exporter_unknown), or the exporter's filing is
#   overdue (<evidence>_overdue, e.g. tia_dossier_overdue).
denials(resource, ctx, open) := {reason |
	some start in started(resource, ctx)
	start.exporter == ""
	msg := sprintf("the data names no controller (resources.*.controller), whose %s deadline this transfer starts: %s", [start.filing, _deadlines[start.filing].law])
	reason := {"code": "exporter_unknown", "field": "resource", "message": msg}
} | {reason |
	some start in started(resource, ctx)
	some due in open
	due.filing == start.filing
	due.exporter == start.exporter
	time.now_ns() >= due.due_ns
	deadline := _deadlines[start.filing]
	msg := sprintf("%s has not filed its %s, due %s (%ds after its first transfer, %s, at %s); its transfers of this data are blocked until the filing is recorded: %s", [
		start.exporter, deadline.evidence, _format(due.due_ns), deadline.within_s,
		due.first_transfer_id, _format(due.first_transfer_ns), deadline.law,
	])
	reason := {"code": sprintf("%s_overdue", [deadline.evidence]), "message": msg}
}

# METADATA
# title: Allow recording a filing
# description: True when the actor may record the filing for the exporter.
default allow := false

allow if count(deny) == 0

# METADATA
# title: Denial reasons
# description: Each reason the filing may not be recorded, as {code, message, field?}.
deny contains {"code": "unknown_action", "message": msg} if {
	input.action != "record"
	msg := sprintf("%q is no filing action (record)", [input.action])
}

deny contains {"code": "unknown_filing", "field": "filing", "message": msg} if {
	not _deadlines[input.filing]
	msg := sprintf("no filing named %q (%s)", [input.filing, concat(", ", sort({id | some id, _ in _deadlines}))])
}

deny contains {"code": "unknown_exporter", "field": "exporter", "message": msg} if {
	not data.datavisa.entities[input.exporter]
	msg := sprintf("no legal entity named %q (entities)", [input.exporter])
}

deny contains {"code": "actor_not_eligible", "message": msg} if {
	not _records
	msg := sprintf("%s may not record a filing: only a data protection officer (dpo) or an admin may", [input.actor])
}

_records if "dpo" in object.get(directory.subject(input.actor), "roles", [])

_records if "admin" in object.get(directory.subject(input.actor), "roles", [])

_records if input.actor_role == "admin"

# METADATA
# title: Decision
# description: The whole answer for the engine.
decision := {"allow": allow, "reasons": deny}
