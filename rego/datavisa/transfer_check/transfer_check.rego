# METADATA
# title: Transfer check
# description: |
#   May a pipeline copy this resource's data to this target region, for this importer,
#   now? Only while an approved transfer covers exactly that source, target and importer
#   inside its window, by the decision point's clock; and the copy is judged again by
#   the current policy (datavisa.transfer, with the transfer's evidence and retention),
#   so a safeguard withdrawn or an adequacy decision past its `until` denies at once.
#
#   Input: {resource, target_region, importer ("" or absent: none), transfer_id
#   (optional: only that transfer counts), transfers: [{id, resource, target_region,
#   importer, evidence, retention_s (null: for ever), requester_kind (null: none),
#   individuals and sensitive_individuals (null: not declared), export_counts (the yearly
#   counts as they stood before the transfer was counted, so that its route is judged
#   again as when it was approved, datavisa.pipl_route), starts_ns, expires_ns}] (the
#   approved transfers the engine holds for the resource)}
#   Output: decision = {allow, reasons: [{code, message, field?}], transfer_id,
#   expires_at (RFC 3339 UTC, when allowed)}
package datavisa.transfer_check

import data.datavisa.transfer

_now := time.now_ns()

_importer(ask) := object.get(ask, "importer", "") if object.get(ask, "importer", "") != null

_importer(ask) := "" if object.get(ask, "importer", "") == null

_named(_) if not input.transfer_id

_named(t) if t.id == input.transfer_id

_covering[t.id] := t if {
	some t in input.transfers
	_named(t)
	t.resource == input.resource
	t.target_region == input.target_region
	_importer(t) == _importer(input)
}

_open[id] := t if {
	some id, t in _covering
	t.starts_ns <= _now
	_now < t.expires_ns
}

# The copy a transfer allows, as datavisa.transfer judges it now.
_judged(t) := judged if {
	judged := transfer.decision with input as _copy(t)
}

_copy(t) := {k: v |
	some k, v in {
		"resource": t.resource, "target_region": t.target_region, "importer": _importer(t),
		"evidence": object.get(t, "evidence", []), "retention_s": object.get(t, "retention_s", null),
		"requester_kind": object.get(t, "requester_kind", null),
		"individuals": object.get(t, "individuals", null),
		"sensitive_individuals": object.get(t, "sensitive_individuals", null),
		"export_counts": object.get(t, "export_counts", []),
	}
	v != null
}

_lawful[id] := t if {
	some id, t in _open
	_judged(t).allow
}

# METADATA
# title: Allow
# description: True when an approved transfer covers the copy now and it is still lawful.
default allow := false

allow if count(_lawful) > 0

# METADATA
# title: Denial reasons
# description: Each reason the copy may not run now, as {code, message, field?}.
deny contains {"code": "no_approved_transfer", "message": msg} if {
	count(_covering) == 0
	msg := sprintf("no approved transfer covers copying %s to %s%s%s", [input.resource, input.target_region, _for_importer, _by_id])
}

deny contains {"code": "transfer_window_closed", "message": msg} if {
	count(_covering) > 0
	count(_open) == 0
	msg := sprintf("the window of transfer %s is not open now", [concat(", ", sort({id | some id, _ in _covering}))])
}

deny contains reason if {
	count(_lawful) == 0
	some t in _open
	some reason in _judged(t).reasons
}

default _for_importer := ""

_for_importer := sprintf(" for importer %s", [_importer(input)]) if _importer(input) != ""

default _by_id := ""

_by_id := sprintf(" (transfer %s)", [input.transfer_id]) if input.transfer_id

# Of the lawful transfers, the one open longest, then the least id.
_chosen := min({[0 - t.expires_ns, id] | some id, t in _lawful})

# METADATA
# title: Transfer id
# description: The transfer that allows the copy; of several, the one open longest.
transfer_id := _chosen[1]

_fields := {"transfer_id": transfer_id, "expires_at": time.format([0 - _chosen[0], "UTC", "2006-01-02T15:04:05Z07:00"])} if allow

default _fields := {}

# METADATA
# title: Decision
# description: The whole answer for pipelines and the engine.
decision := object.union({"allow": allow, "reasons": deny}, _fields)
