# METADATA
# title: Who may call the OPA the engine runs
# description: |
#   OPA's own API authorization (system.authz), for the OPA the engine starts with
#   --authentication=token --authorization=basic. The engine makes a fresh secret at each
#   start and loads it as data.system.authz.engine_token from a private file, never from a
#   bundle; a caller bearing it may do anything. Anyone else may only ask for an access
#   decision and probe health: grants are the engine's to write, and nobody else's to read.
#   Without the secret (a bundle served elsewhere) no caller is the engine.
#   The engine loads this module next to the bundle; the bundle never carries it.
#   Input: OPA's authorization input ({identity, method, path, params, ...}).
#   Output: allow = {allowed, reason}
package system.authz

# METADATA
# title: Allow
# description: |
#   OPA's verdict on one call to its API: {"allowed": true}, or refused with the reason,
#   which OPA sends back in its 401 answer.
allow := {"allowed": true} if _allowed

allow := {"allowed": false, "reason": _refused} if not _allowed

_refused := sprintf(
	"this OPA answers only the DataVisa engine that runs it (bearing the secret made at its start); others may only POST /v1/data/datavisa/access/decision (query parameters: %s) and GET /health",
	[concat(", ", sort(_harmless_params))],
)

_allowed if _engine

_allowed if _public

_engine if {
	token := data.system.authz.engine_token
	token != ""
	input.identity == token
}

_public if {
	input.method == "GET"
	input.path == ["health"]
}

_public if {
	input.method == "POST"
	input.path == ["v1", "data", "datavisa", "access", "decision"]
	every name, _ in input.params {
		name in _harmless_params
	}
}

# Not explain, instrument or provenance: a trace lays out the data the decision read,
# which holds the subject's grants.
_harmless_params := {"pretty", "metrics"}
