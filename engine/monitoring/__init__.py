"""Monitoring and notifications: what happens after a decision is recorded.

Holds the monitor (`monitor`: judges recorded decisions against the alert rules in Rego,
keeps the alerts) and the notifier (`notify`: sends alerts and new requests to webhooks,
with retries).

May import: `model`, `store`, `ledger`, `policy`.
"""
