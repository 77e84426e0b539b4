"""The policy decision point: OPA, and asking it.

Holds the REST client (`opa`), running the pinned OPA binary (`process`), keeping a
long-running OPA answering and its grants current (`supervisor`), building and
validating the policy bundle (`bundle`, `bundle_schema.json`), asking for a decision and
failing closed (`decide`), asking one with the clock set outside any server (`whatif`),
serving calls that arrive together as one (`coalesce`), and scaffolding a deployment's own
policy repository on top of the shipped rules (`repo`).

May import: `model`, `store`, `ledger` (every decision asked is recorded before use).
"""
