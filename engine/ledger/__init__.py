"""The tamper-evident records: the decision log and the audit trail.

Holds the decision log (`decision_log`: every decision once, masked, hash-chained,
checkpointed, queryable, in OPA's event format) and the audit trail (`audit`: one
hash-chained event per state change, appended in the change's own transaction).

May import: `model`, `store`.
"""
