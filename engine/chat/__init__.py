"""Chat: approvals and notifications where approvers work (Slack).

A request waiting for approval is posted with Approve and Deny buttons (Block Kit) to the
approvers' channel or to each approver by direct message; a click comes back signed to
POST /slack/interactions, and asks the same approval decision the API asks. Reminders,
escalations and expiry warnings follow policy's timings (rego/datavisa/notification).
Everything sent goes through the notices outbox (notices.py) and is retried and recorded;
nothing here decides who may do what: policy does.
"""
