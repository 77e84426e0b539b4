"""The grant lifecycle, at the centre: requests, approvals, grants, their timers.

Holds the state machine and its transitions (`engine`: `Engine`, which asks policy for
every verdict and commits each change with its audit event), the grant-distribution seam
(`grants`: `Grants`, which takes the store's live grants to the systems that enforce
them: the engine's OPA, and a fleet of sidecar OPAs fed by the bundle service, `fleet`),
what a new policy would decide differently about what is live (`impact`), and the
embedded default for local commands (`local`).

May import: `model`, `store`, `ledger`, `policy`.
"""
